#!/usr/bin/env bash
# End-to-end, issue 15 item 6: a task's descendant that calls setsid() leaves the task's process
# group, so the group's SIGKILL missed it and it outlived the task (reparented to PID 1). Now
# chaind kills such escapees when the task ends: on success, failure, timeout and cancel, for a
# worker and a prewarmed process too; with the task's cgroup where chaind can make one (then an
# escapee that also clears its environment too), else found by the CHAIN_WORKDIR they inherited.
# Needs CHAINCTL, CHAIND (set by ctest).
set -uo pipefail
: "${CHAINCTL:?}" "${CHAIND:?}"

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
daemon_setup chainctl-escapees

gone() { [[ ! -e /proc/$1 || $(cut -d' ' -f3 "/proc/$1/stat" 2> /dev/null) == [ZX] ]]; }
alive() { ! gone "$1"; }
# A task's shell code: a new session that sleeps, its output nowhere (it must not hold the
# task's stdout open). Once it has called setsid it says its pid on a fifo (a handshake: the
# task goes on only then, so it cannot end while the escapee is still in its group); the task
# writes that pid to the file $1.
# A second argument goes before sh (and sleep): "env -i /bin/" clears the escapee's environment.
escape() {
  echo "mkfifo $tmp/$1.fifo; setsid ${2:-}sh -c 'echo \$\$ > $tmp/$1.fifo; exec ${2:+/bin/}sleep 300'" \
    "< /dev/null > /dev/null 2>&1 & read p < $tmp/$1.fifo; echo \$p > $tmp/$1"
}

mkfifo "$tmp/go"
cat > "$tmp/escape.yaml" <<YAML
chain_id: escape
tasks:
  - {task_id: ok, command: "$(escape ok.pid); echo '{}'"}
  - {task_id: bad, dependencies: [ok], command: "$(escape bad.pid); exit 3"}
YAML
cat > "$tmp/slow.yaml" <<YAML
chain_id: slow
tasks:
  - task_id: slow
    command: "$(escape slow.pid); sleep 100"
    resource_requirements: {timeout: 1s}
YAML
cat > "$tmp/held.yaml" <<YAML
chain_id: held
tasks:
  - {task_id: held, command: "$(escape held.pid); cat $tmp/go > /dev/null; echo '{}'"}
YAML
# A worker whose start-up leaves an escapee, and that then fails its first request.
cat > "$tmp/worker.py" <<PY
import os, subprocess, sys
p = subprocess.Popen(["sleep", "300"], start_new_session=True, stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
open("$tmp/worker.pid", "w").write(str(p.pid))
sys.stdin.readline()
os._exit(5)
PY
cat > "$tmp/worker.yaml" <<YAML
chain_id: worker
tasks:
  - {task_id: w, mode: worker, command: "python3 $tmp/worker.py"}
YAML

check "chaind starts" start_chaind
for chain in escape slow held worker; do
  check "apply $chain" bash -c "'$CHAINCTL' apply -f '$tmp/$chain.yaml' > /dev/null"
done
check "escape: the second task fails (exit 1)" \
  bash -c "'$CHAINCTL' trigger escape --wait > /dev/null 2>&1; test \$? -eq 1"
check "a succeeded task's escapee is killed" poll 10 gone "$(cat "$tmp/ok.pid")"
check "a failed task's escapee is killed" poll 10 gone "$(cat "$tmp/bad.pid")"

check "slow: times out (exit 1)" \
  bash -c "'$CHAINCTL' trigger slow --wait > /dev/null 2> '$tmp/slow.err'; test \$? -eq 1"
check "saying so" grep -q "timed out after 1s" "$tmp/slow.err"
check "a timed-out task's escapee is killed" poll 10 gone "$(cat "$tmp/slow.pid")"

run=$("$CHAINCTL" trigger held)
check "held: the escapee has started" poll 20 test -s "$tmp/held.pid"
held=$(cat "$tmp/held.pid")
check "and lives while its task runs" alive "$held"
check "cancel" bash -c "'$CHAINCTL' cancel '$run' > /dev/null"
check "a cancelled task's escapee is killed" poll 10 gone "$held"
exec 3<> "$tmp/go"  # nobody reads the fifo any more: keep the write end from blocking anyone

check "worker: its request fails (exit 1)" \
  bash -c "'$CHAINCTL' trigger worker --wait > /dev/null 2>&1; test \$? -eq 1"
check "a worker's escapee is killed with the worker" poll 10 gone "$(cat "$tmp/worker.pid")"

# Nothing else was touched: a session chaind did not start keeps running.
setsid sleep 300 < /dev/null > /dev/null 2>&1 &
bystander=$!
check "another escape run" bash -c "'$CHAINCTL' trigger escape --wait > /dev/null 2>&1; test \$? -eq 1"
check "a process without the task's CHAIN_WORKDIR is left alone" alive "$bystander"
kill "$bystander"
check "chaind is still alive" status_is 200 GET /health

# An escapee that also clears its environment has no CHAIN_WORKDIR to be found by: only a cgroup
# holds it. Where chaind can make cgroups it is killed with its task.
cat > "$tmp/noenv.yaml" <<YAML
chain_id: noenv
tasks:
  - {task_id: t, command: "$(escape noenv.pid "env -i /bin/"); echo '{}'"}
YAML
status_is 200 GET /health
if json_has "b['task_cgroups']['dir'] is not None"; then
  check "the log says tasks run in cgroups" grep -q "each task runs in a cgroup of its own" "$tmp/chaind.log"
  check "apply noenv" bash -c "'$CHAINCTL' apply -f '$tmp/noenv.yaml' > /dev/null"
  check "noenv: succeeds" bash -c "'$CHAINCTL' trigger noenv --wait > /dev/null"
  check "an escapee without environment is killed (cgroup)" poll 10 gone "$(cat "$tmp/noenv.pid")"
else
  echo "SKIP: chaind runs tasks without cgroups here: $(grep -o 'tasks run without cgroups ([^)]*)' "$tmp/chaind.log")"
fi

# Without cgroups (--no-task-cgroups, or none can be made) escapees are found by CHAIN_WORKDIR.
check "stopped" stop_chaind
rm -f "$tmp"/ok.pid "$tmp"/bad.pid "$tmp"/*.fifo
check "chaind starts with --no-task-cgroups" start_chaind --no-task-cgroups
check "  and says so" grep -q "tasks run without cgroups (--no-task-cgroups)" "$tmp/chaind.log"
check "  /health too" status_is 200 GET /health
check "  (task_cgroups)" json_has "b['task_cgroups'] == {'dir': None, 'why_not': '--no-task-cgroups'}"
check "escape again: the second task fails (exit 1)" \
  bash -c "'$CHAINCTL' trigger escape --wait > /dev/null 2>&1; test \$? -eq 1"
check "a succeeded task's escapee is killed (CHAIN_WORKDIR)" poll 10 gone "$(cat "$tmp/ok.pid")"
check "a failed task's escapee is killed (CHAIN_WORKDIR)" poll 10 gone "$(cat "$tmp/bad.pid")"

finish
