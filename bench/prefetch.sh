#!/usr/bin/env bash
# Prefetching benchmarks 1, 2 and 4 (bench/prefetch.py): a 5-task python3 chain cold, warm, as
# workers and against an oracle; a 70/20/10 router's hit rate at warm budgets 1 and 3; chaind's
# own CPU and memory with prefetching on and off. Options pass through (--runs N, --pause S,
# --only 1|2, ...). Takes a few minutes.
set -euo pipefail
/usr/bin/python3 "$(dirname "$0")/prefetch.py" --chainctl "$BUILD_DIR/cli/chainctl" \
  --chaind "$BUILD_DIR/daemon/chaind" "$@"
