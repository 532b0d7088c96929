#!/usr/bin/env bash
# ProcessRunner spawning 1,000 /bin/true at ~20 MB and ~500 MB RSS, against raw posix_spawn
# and fork+exec loops; ratios measured in the same run.
set -euo pipefail
"$BUILD_DIR/bench/spawn_rss" 1000 3
