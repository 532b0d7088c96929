#!/usr/bin/env bash
# 100 clients x 20 chains against a fresh chaind; ratios against GET /health.
set -euo pipefail
"$BUILD_DIR/bench/registry_load" "$BUILD_DIR/daemon/chaind" 100 20
