#!/usr/bin/env bash
# End-to-end, issue 18: a full disk under the task cache. A result that does not fit is not
# stored (chaind's log says why), the task and its run still succeed, nothing half-written is
# left in the cache, and the next run runs the task again; once there is room, results are
# stored and restored as usual.
# The cache is put on a small tmpfs: needs root (mount); skipped (exit 77) otherwise.
# Needs CHAINCTL, CHAIND (set by ctest).
set -uo pipefail
: "${CHAINCTL:?}" "${CHAIND:?}"

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
daemon_setup chainctl-cache-full
cache=$tmp/cache
tmpfs_or_skip "$cache" 1m "the cache"

proj=$tmp/proj
mkdir -p "$proj/src" "$tmp/counts"
printf 'one\n' > "$proj/src/a.txt"
printf '%s\n' 2000000 > "$tmp/size"  # bytes the task writes to $CHAIN_OUTDIR: over the tmpfs
cat > "$proj/chain.yaml" << 'YAML'
chain_id: full
tasks:
  - task_id: big
    sources: ['src/*.txt']
    command: >-
      echo run >> "$COUNTS/big" &&
      head -c "$(cat "$SIZE_FILE")" /dev/zero > "$CHAIN_OUTDIR/blob" && echo '{"ok": true}'
YAML
export COUNTS=$tmp/counts SIZE_FILE=$tmp/size
runs() { wc -l < "$COUNTS/big"; }
run_chain() { (cd "$proj" && "$CHAINCTL" run -f chain.yaml > /dev/null 2>> "$tmp/runs.err"); }
entries() { find "$cache" -name manifest.json | wc -l; }
leftovers() { find "$cache/tmp" -mindepth 1 2> /dev/null | wc -l; }

start_chaind --cache-dir "$cache" || exit 1

check "a run whose result does not fit the cache succeeds" run_chain
check "its result was not stored" test "$(entries)" = 0
check "nothing half-written is left in the cache" test "$(leftovers)" = 0
check "chaind's log says why" grep -q 'task cache: big: .*No space left on device' "$tmp/chaind.log"
check "the next run succeeds" run_chain
check "and runs the task again" test "$(runs)" = 2

printf '%s\n' 1000 > "$tmp/size"  # a result that fits (the command is the same: same key)
printf 'two\n' > "$proj/src/a.txt"  # a new key, so that the small result is stored
check "a result that fits is stored" run_chain
check "one entry" test "$(entries)" = 1
check "and restored by the next run" run_chain
check "without running the task" test "$(runs)" = 3

finish
