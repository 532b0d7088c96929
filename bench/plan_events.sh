#!/usr/bin/env bash
# Plan time per event against chain width, 10 to 10,000 tasks (bench_plan_events); options pass
# through: --events N.
set -euo pipefail
"$BUILD_DIR/bench/bench_plan_events" "$@"
