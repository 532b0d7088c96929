#!/usr/bin/env bash
# Prefetching benchmark 3 (bench/staging.py): a 200 MB http input from a throttled loopback
# server, staged while a 2 s predecessor runs, against --no-prefetch. Options pass through.
set -euo pipefail
/usr/bin/python3 "$(dirname "$0")/staging.py" --chainctl "$BUILD_DIR/cli/chainctl" \
  --chaind "$BUILD_DIR/daemon/chaind" "$@"
