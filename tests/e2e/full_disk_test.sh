#!/usr/bin/env bash
# End-to-end, issue 15 item 3: a full disk under the store. chaind used to tell `trigger --wait`
# "succeeded" for a run whose commit then failed ("a commit of 6 write(s) failed, they are
# lost"), and kept it "running" forever. Now a run's end reaches clients only once stored; a
# failed commit makes chaind degraded (GET /health says so, new runs, chain writes and imports
# are answered 507) and is retried until space comes back; a chaind stopped meanwhile says in
# its log what was lost, and the run reads back interrupted, never succeeded.
# The store is put on a small tmpfs: needs root (mount); skipped (exit 77) otherwise.
# Needs CHAINCTL, CHAIND (set by ctest).
set -uo pipefail
: "${CHAINCTL:?}" "${CHAIND:?}"

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
daemon_setup chainctl-fulldisk
store=$CHAINCTL_STATE_DIR/store
tmpfs_or_skip "$store" 8m "the store"

health() { curl -s --max-time 10 --unix-socket "$sock" http://localhost/health; }
degraded() { health | python3 -c "import json,sys; b=json.load(sys.stdin); sys.exit(0 if b['status'] == 'degraded' and not b['store']['ok'] else 1)"; }
healthy() { health | python3 -c "import json,sys; b=json.load(sys.stdin); sys.exit(0 if b['status'] == 'ok' and b['store']['ok'] else 1)"; }
fill() { dd if=/dev/zero of="$store/filler" bs=64k > /dev/null 2>&1; [[ -s "$store/filler" ]]; }
run_is() {  # run_is RUN PYTHON-EXPR: GET /runs/RUN, `b` the record
  curl -s --max-time 10 --unix-socket "$sock" "http://localhost/runs/$1" |
    python3 -c "import json,sys; b=json.load(sys.stdin); sys.exit(0 if ($2) else 1)"
}
waiting() { [[ ! -e "$tmp/wait.rc" ]]; }

echo "import json; print(json.dumps({'x': 'a' * 1000000}))" > "$tmp/big.py"
cat > "$tmp/big.yaml" <<YAML
chain_id: big
tasks:
  - {task_id: t, command: "python3 $tmp/big.py"}
YAML

check "chaind starts" start_chaind
check "apply" bash -c "'$CHAINCTL' apply -f '$tmp/big.yaml' > /dev/null"
check "healthy at first" healthy

# --- The disk fills up under a run: its end is not told before it is stored. ---
check "the store's disk is full" fill
("$CHAINCTL" trigger big --wait > "$tmp/out.json" 2> "$tmp/wait.err"; echo $? > "$tmp/wait.rc") &
waiter=$!
check "a commit fails: chaind is degraded (GET /health)" poll 20 degraded
check "/health says why" bash -c "curl -s --unix-socket '$sock' http://localhost/health | grep -q 'No space left on device'"
check "chainctl daemon status says DEGRADED" bash -c "'$CHAINCTL' daemon status | grep -q '^DEGRADED: the store cannot write'"
check "the task has run; the run shows running, its end pending" \
  poll 20 run_is run-1 "b['status'] == 'running' and b.get('ending') is True and b['tasks'][0]['state'] == 'succeeded'"
check "the waiting client has not been told anything" waiting
check "new runs: 507" status_is 507 POST /chains/big/trigger
check "saying why" json_has "b['error']['code'] == 'insufficient_storage' and 'refused' in b['error']['message']"
check "chain writes: 507" status_is 507 POST /chains -H 'Content-Type: application/yaml' --data-binary "@$tmp/big.yaml"
check "history imports: 507" status_is 507 POST /history -H 'Content-Type: application/x-ndjson' --data-binary '{}'
check "chainctl trigger: exit 3 with the message" bash -c \
  "'$CHAINCTL' trigger big > /dev/null 2> '$tmp/t.err'; test \$? -eq 3 && grep -q 'store cannot write' '$tmp/t.err'"
check "still nothing told" waiting

# --- Space comes back: the retry stores the end, then the client is told. ---
rm -f "$store/filler"
check "the waiting client returns" poll 30 bash -c "! kill -0 $waiter 2> /dev/null"
check "with exit 0" test "$(cat "$tmp/wait.rc" 2> /dev/null)" = 0
check "and the output" python3 -c "import json; assert len(json.load(open('$tmp/out.json'))['x']) == 1000000"
check "chaind is healthy again" poll 10 healthy
check "the run is stored succeeded" run_is run-1 "b['status'] == 'succeeded' and 'ending' not in b"
check "new runs are taken again" bash -c "'$CHAINCTL' trigger big --wait > /dev/null"

# --- Nothing lost: a restarted chaind reads it all back. ---
check "chaind stops" stop_chaind
check "chaind starts again" start_chaind
check "run-1 reads back succeeded, with its output" run_is run-1 "b['status'] == 'succeeded' and len(b['output']['x']) == 1000000"
check "its history record is there" bash -c "curl -s --unix-socket '$sock' 'http://localhost/history?run=run-1' | grep -q '\"status\":\"succeeded\"'"
check "its events end with run_finished" bash -c \
  "curl -s --unix-socket '$sock' http://localhost/runs/run-1/events | tail -n 1 | grep -q '\"type\":\"run_finished\"'"

# --- Stopped while the disk is full: the loss is said, the run is not "succeeded". ---
check "the disk is full again" fill
("$CHAINCTL" trigger big --wait > /dev/null 2> "$tmp/wait2.err"; echo $? > "$tmp/wait2.rc") &
waiter=$!
check "degraded again" poll 20 degraded
check "the run's task has run" poll 20 run_is run-3 "b['tasks'][0]['state'] == 'succeeded'"
check "SIGTERM stops chaind all the same" stop_chaind
check "its log says what was lost" grep -q "failed while chaind stops, they are lost" "$tmp/chaind.log"
check "the waiting client returns" poll 30 bash -c "! kill -0 $waiter 2> /dev/null"
check "without exit 0" bash -c "test \"\$(cat '$tmp/wait2.rc')\" != 0"
rm -f "$store/filler"
check "chaind starts with space" start_chaind
check "run-3 is not succeeded: interrupted (or not stored at all)" bash -c \
  "code=\$(curl -s -o '$tmp/run3' -w '%{http_code}' --unix-socket '$sock' http://localhost/runs/run-3);
   [[ \$code == 404 ]] || grep -q '\"status\":\"interrupted\"' '$tmp/run3'"

finish
