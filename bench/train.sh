#!/usr/bin/env bash
# Predictor training on 1,000,000 history records (TrainFromHistory) against reading them and
# against learning alone, prediction latency against a hash-map lookup, and the persisted
# model's size; ratios measured in the same run. Options pass through: --records N, --calls N.
set -euo pipefail
"$BUILD_DIR/bench/bench_train" "$@"
