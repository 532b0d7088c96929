#!/usr/bin/env bash
# End-to-end, issue 18: the task cache with real processes and real chainds. A second run
# restores what the first stored (state cached, the same output, the project's outputs and the
# files dependents get); an edit re-runs only its task and those after it; --no-cache runs
# everything; a corrupted entry is detected and never restored; two chainds share one cache
# folder, also at the same time; history says cached: true.
# Needs CHAINCTL, CHAIND (set by ctest).
set -uo pipefail
: "${CHAINCTL:?}" "${CHAIND:?}"

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
daemon_setup chainctl-task-cache
cache=$tmp/cache

proj=$tmp/proj
mkdir -p "$proj/src" "$proj/other" "$tmp/counts"
printf 'alpha\n' > "$proj/src/a.txt"
printf 'beta\n' > "$proj/src/b.txt"
printf 'gamma\n' > "$proj/other/c.txt"
# Each task counts its runs in $COUNTS/TASK (a file outside the project and the sources).
cat > "$proj/chain.yaml" <<'YAML'
chain_id: cached
tasks:
  - task_id: gen
    sources: ['src/*.txt']
    outputs: ['build/gen.txt']
    command: >-
      echo run >> "$COUNTS/gen" && mkdir -p build && cat src/*.txt > build/gen.txt &&
      cp build/gen.txt "$CHAIN_OUTDIR/table.txt" &&
      printf '{"lines": %s}' "$(wc -l < build/gen.txt)"
  - task_id: use
    dependencies: [gen]
    command: >-
      echo run >> "$COUNTS/use" &&
      printf '{"in": %s, "table": "%s"}' "$(cat)" "$(tr '\n' ' ' < "$CHAIN_WORKDIR/inputs/gen/table.txt")"
  - task_id: other
    sources: ['other/**']
    command: >-
      echo run >> "$COUNTS/other" && printf '{"other": "%s"}' "$(cat other/c.txt)"
YAML
export COUNTS=$tmp/counts

runs_of() { [[ -f "$COUNTS/$1" ]] && wc -l < "$COUNTS/$1" || echo 0; }
state_of() {  # state_of TASK: its state in the newest run
  "$CHAINCTL" list runs -o json | python3 -c '
import json, subprocess, sys
run = json.load(sys.stdin)["runs"][0]["run_id"]
rec = json.loads(subprocess.run([sys.argv[1], "get", "run", run, "-o", "json"], capture_output=True, text=True).stdout)
print(next(t["state"] for t in rec["tasks"] if t["task_id"] == sys.argv[2]))' "$CHAINCTL" "$1"
}
run_chain() { (cd "$proj" && "$CHAINCTL" run -f chain.yaml "$@"); }

start_chaind --cache-dir "$cache" || exit 1

first=$(run_chain 2> "$tmp/first.err")
check "first run succeeds" test -n "$first"
check "first run ran every task" test "$(runs_of gen)$(runs_of use)$(runs_of other)" = 111
rm -rf "$proj/build"
second=$(run_chain 2> "$tmp/second.err")
check "second run gives the same output" test "$second" = "$first"
check "second run did not run gen or other" test "$(runs_of gen)$(runs_of other)" = 11
check "use (no sources: caching off) ran again" test "$(runs_of use)" = 2
check "gen ended cached" test "$(state_of gen)" = cached
check "other ended cached" test "$(state_of other)" = cached
check "use ended succeeded" test "$(state_of use)" = succeeded
check "the project output was restored" cmp "$proj/build/gen.txt" <(cat "$proj/src/a.txt" "$proj/src/b.txt")
check "use saw gen's files on the cached run" grep -q '"table": "alpha beta "' <<< "$second"
check "progress says cached" grep -q 'cached gen' "$tmp/second.err"
check "history records cached: true" bash -c \
  "'$CHAINCTL' history --task gen -o json | grep -q '\"cached\": *true'"

# An edit: gen and use run, other stays cached.
printf 'alpha two\n' > "$proj/src/a.txt"
third=$(run_chain --explain 2> "$tmp/third.err")
check "an edit re-runs its task" test "$(runs_of gen)" = 2
check "an edit leaves other cached" test "$(runs_of other)" = 1
check "the edited run's output is new" grep -q '"table": "alpha two beta "' <<< "$third"
check "--explain names the changed source" grep -q 'gen: ran: src/a.txt changed' "$tmp/third.err"
check "--explain says other was cached" grep -q 'other: cached' "$tmp/third.err"
check "--explain says why use is not cached" grep -q 'use: not cached' "$tmp/third.err"

# The API: "no_cache" must be a boolean.
check "no_cache that is not a boolean is a 400" \
  grep -q '^400 .*bad_no_cache' <<< "$(http POST /chains/cached/trigger -d '{"no_cache": "yes"}')"

# --no-cache runs everything.
run_chain --no-cache > /dev/null 2>&1
check "--no-cache runs every task" test "$(runs_of gen)$(runs_of other)" = 32

# A corrupted entry: every stored copy of gen.txt gets other bytes of the same length.
corrupted=0
while IFS= read -r f; do
  printf 'ALPHA TWO\nBETA\n' > "$f"
  corrupted=$((corrupted + 1))
done < <(find "$cache" -path '*project*' -name gen.txt)
check "the cache holds gen's project output" test "$corrupted" -ge 1
rm -rf "$proj/build"
fourth=$(run_chain 2> "$tmp/fourth.err")
check "a corrupted entry is not restored: gen ran" test "$(runs_of gen)" = 4
check "the run's output is the right one" test "$fourth" = "$third"
check "the project output is the task's, not the corrupted copy" \
  cmp "$proj/build/gen.txt" <(cat "$proj/src/a.txt" "$proj/src/b.txt")

# A second chaind with its own state and socket shares the cache folder: it restores.
sock2=$tmp/second.sock
"$CHAIND" --socket "$sock2" --state-dir "$tmp/state2" --cache-dir "$cache" >> "$tmp/chaind2.log" 2>&1 &
chaind2=$!
poll 20 curl -sf --unix-socket "$sock2" http://localhost/health -o /dev/null
second_daemon() { CHAINCTL_SOCKET=$sock2 CHAINCTL_STATE_DIR=$tmp/state2 "$@"; }
shared=$(cd "$proj" && second_daemon "$CHAINCTL" run -f chain.yaml 2> /dev/null)
check "a second chaind on the same cache gets hits" test "$(runs_of gen)$(runs_of other)" = 42
check "and the same output" test "$shared" = "$third"

# Both at once on a fresh source: each runs or restores; neither fails; then both hit.
printf 'delta\n' > "$proj/src/b.txt"
(cd "$proj" && "$CHAINCTL" run -f chain.yaml > "$tmp/c1.out" 2>&1) &
p1=$!
(cd "$proj" && second_daemon "$CHAINCTL" run -f chain.yaml > "$tmp/c2.out" 2>&1) &
p2=$!
check "concurrent run on chaind 1 succeeds" wait "$p1"
check "concurrent run on chaind 2 succeeds" wait "$p2"
before=$(runs_of gen)
run_chain > /dev/null 2>&1
(cd "$proj" && second_daemon "$CHAINCTL" run -f chain.yaml > /dev/null 2>&1)
check "after them both chainds hit" test "$(runs_of gen)" = "$before"
kill "$chaind2" && wait "$chaind2" 2> /dev/null

finish
