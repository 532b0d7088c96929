#!/usr/bin/env bash
# End-to-end, issue 15 item 8: SIGHUP used to kill chaind silently, leaving its socket file and
# its tasks. Now it follows the logrotate convention: the --log-file is opened anew, and chaind
# and its runs go on. Needs CHAINCTL, CHAIND (set by ctest).
set -uo pipefail
: "${CHAINCTL:?}" "${CHAIND:?}"

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
daemon_setup chainctl-sighup

alive() { kill -0 "$1" 2> /dev/null && [[ "$(daemon_pid)" == "$1" ]]; }
task_running() {
  curl -s --unix-socket "$sock" http://localhost/runs/run-1 |
    python3 -c "import json,sys; sys.exit(0 if json.load(sys.stdin)['tasks'][0]['state'] == 'running' else 1)"
}

# A task that runs until the test writes to its fifo (a handshake, no sleep).
mkfifo "$tmp/go"
cat > "$tmp/wait.yaml" <<YAML
chain_id: wait
tasks:
  - {task_id: t, command: "cat $tmp/go > /dev/null; echo '{\"done\": true}'"}
YAML

check "chaind starts with --log-file" start_chaind --log-file "$tmp/d.log"
pid=$chaind_pid
check "it logs there" grep -q "listening on" "$tmp/d.log"
check "apply" bash -c "'$CHAINCTL' apply -f '$tmp/wait.yaml' > /dev/null"
("$CHAINCTL" trigger wait --wait > "$tmp/out.json" 2> /dev/null; echo $? > "$tmp/wait.rc") &
waiter=$!
check "the task runs" poll 20 task_running

# logrotate: rename, then SIGHUP.
mv "$tmp/d.log" "$tmp/d.log.1"
kill -HUP "$pid"
check "a new log file is opened" poll 20 grep -q "log file reopened (SIGHUP)" "$tmp/d.log"
check "the old one ends saying so" bash -c "tail -n 1 '$tmp/d.log.1' | grep -q 'received SIGHUP: reopening the log file'"
check "chaind is alive, the same process" alive "$pid"
check "its socket answers" status_is 200 GET /health
check "the task still runs" task_running
echo > "$tmp/go"
check "the run succeeds" poll 30 bash -c "! kill -0 $waiter 2> /dev/null"
check "exit 0 with the output" bash -c "test \"\$(cat '$tmp/wait.rc')\" = 0 && grep -q '\"done\": true' '$tmp/out.json'"
kill -HUP "$pid"
kill -HUP "$pid"
check "more SIGHUPs: still alive" poll 20 bash -c "[[ \$(grep -c 'log file reopened' '$tmp/d.log') -ge 2 ]]"
check "still the same process" alive "$pid"
check "SIGTERM still stops it" bash -c "kill $pid; for i in \$(seq 1 500); do kill -0 $pid 2>/dev/null || exit 0; sleep 0.02; done; exit 1"
check "and removes its socket" test ! -e "$sock"

# Without --log-file there is nothing to reopen: chaind says so and goes on.
check "chaind starts without --log-file" start_chaind
pid=$chaind_pid
kill -HUP "$pid"
check "SIGHUP is logged" poll 20 grep -q "received SIGHUP: no --log-file to reopen; going on" "$tmp/chaind.log"
check "and chaind goes on" alive "$pid"
check "stopped" bash -c "kill $pid; for i in \$(seq 1 500); do kill -0 $pid 2>/dev/null || exit 0; sleep 0.02; done; exit 1"

# chainctl starts chaind with --log-file STATE_DIR/chaind.log: logrotate works on it too.
check "chainctl daemon start" bash -c "'$CHAINCTL' daemon start > /dev/null"
pid=$(daemon_pid)
log=$CHAINCTL_STATE_DIR/chaind.log
check "its log is STATE_DIR/chaind.log" grep -q "listening on" "$log"
mv "$log" "$log.1"
kill -HUP "$pid"
check "rotated by SIGHUP" poll 20 grep -q "log file reopened (SIGHUP)" "$log"
check "alive" alive "$pid"

finish
