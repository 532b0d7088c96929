#!/usr/bin/env bash
# End-to-end, issue 15 item 4: what chaind keeps of ended runs. The store records of the newest
# --keep-runs ended runs and their folders (fewer with --keep-run-files) are kept; with
# --keep-runs-for, none older than that, records and folder alike, without another run ending.
# A folder never outlives its records: one left without them is removed at start.
# Needs CHAINCTL, CHAIND (set by ctest).
set -uo pipefail
: "${CHAINCTL:?}" "${CHAIND:?}"

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
daemon_setup chainctl-retention
runs=$CHAINCTL_STATE_DIR/runs

cat > "$tmp/two.yaml" <<'YAML'
chain_id: two
tasks:
  - {task_id: a, command: "echo '{\"n\": 1}'"}
  - {task_id: b, command: "cat", dependencies: [a]}
YAML

listed() { # listed N: `chainctl list runs` lists N runs
  [[ $("$CHAINCTL" list runs --output json | python3 -c "import json,sys; print(len(json.load(sys.stdin)['runs']))") == "$1" ]]
}
folders() { # folders "run-4 run-5": exactly these run folders exist
  local found
  found=$(cd "$runs" && ls -d run-* 2> /dev/null | sort -V)
  [[ "$(echo $found)" == "$1" ]]
}

check "bad --keep-runs-for is refused" bash -c "'$CHAIND' --keep-runs-for 5 --socket '$sock' 2>&1 | grep -q 'keep-runs-for: duration \"5\" has no unit'"
check "chaind starts" start_chaind --keep-runs 3 --keep-run-files 2
check "apply" bash -c "'$CHAINCTL' apply -f '$tmp/two.yaml' > /dev/null"
for i in 1 2 3 4 5; do
  check "run $i succeeds" bash -c "'$CHAINCTL' trigger two --wait > /dev/null"
done
check "the newest 3 runs are listed" poll 20 listed 3
check "run-2 is a 404 that says why" status_is 404 GET /runs/run-2
check "  (--keep-runs)" json_has "'removed (chaind keeps the newest 3 ended runs: --keep-runs)' in b['error']['message']"
check "run-3 is kept" status_is 200 GET /runs/run-3
check "the folders of the newest 2 only" poll 20 folders "run-4 run-5"
check "stopped" stop_chaind

# A folder without records (here made by hand; chaind stopped between a deletion's commit and
# the folder's removal, or a run never stored) goes at start.
mkdir -p "$runs/run-2/a"
check "restarted with --keep-runs-for 1h" start_chaind --keep-runs 3 --keep-run-files 2 --keep-runs-for 1h
check "the folder without records is removed" poll 20 folders "run-4 run-5"
check "the 3 runs are still listed" listed 3
check "stopped" stop_chaind

check "restarted with --keep-runs-for 2s" start_chaind --keep-runs 3 --keep-run-files 2 --keep-runs-for 2s
check "the older runs expire at start, records and folders" poll 20 listed 0
check "  and no folder is left" poll 20 folders ""
check "run-5 is a 404 that says why" status_is 404 GET /runs/run-5
check "  (--keep-runs-for)" json_has "'none older than 2s: --keep-runs, --keep-runs-for)' in b['error']['message']"
check "a new run succeeds" bash -c "'$CHAINCTL' trigger two --wait > /dev/null"
check "  and is kept for now" status_is 200 GET /runs/run-6
check "  with its folder" folders "run-6"
check "it expires 2 s after its end, with no other run ending" poll 30 listed 0
check "  and its folder goes" poll 20 folders ""
check "stopped again" stop_chaind

finish
