#!/usr/bin/env bash
# End-to-end, issue 17: chaind's configuration (--config FILE, else
# $XDG_CONFIG_HOME/chainctl/chaind.conf; CHAIND_* variables; the command line wins over the
# environment, which wins over the file) reaching a chaind that chainctl autostarts too, and
# chaind's lifetime on CI machines: --exit-when-idle, --parent-pid, and CI=true at autostart.
# Needs CHAINCTL, CHAIND (set by ctest).
set -uo pipefail
: "${CHAINCTL:?}" "${CHAIND:?}"

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
daemon_setup chainctl-config

# Nothing of the caller's: no CI, no CHAIND_* variable (CHAIND, the binary, is not one), and a
# configuration folder of the test's own.
unset CI
while read -r name; do unset "$name"; done < <(compgen -e | grep '^CHAIND_')
export XDG_CONFIG_HOME=$tmp/config
mkdir -p "$XDG_CONFIG_HOME/chainctl"
conf=$XDG_CONFIG_HOME/chainctl/chaind.conf
log=$tmp/chaind.log  # start_chaind's

# The --jobs a chaind took, from the line it logs at start: jobs_are N LOGFILE.
jobs_are() {
  local got
  got=$(grep -o 'tasks run [0-9]* at once' "$2" | tail -n 1)
  [[ "$got" == "tasks run $1 at once" ]] || { echo "  $2: got '$got', want $1" >&2; return 1; }
}
gone() { ! kill -0 "$1" 2> /dev/null; }
stopped() { "$CHAINCTL" daemon stop > /dev/null && poll 30 gone "$1"; }

# --- Configuration --------------------------------------------------------------------------

cat > "$conf" <<'CONF'
# chaind's settings for this user
jobs = 3
cpus = 2.5
gpus = 0,1  # a list: commas, or [0, 1]
CONF

# An autostarted chaind (no flags but the socket, state and log) reads the file.
check "chainctl autostarts chaind" bash -c "'$CHAINCTL' list chains > /dev/null"
pid=$(daemon_pid)
check "the file's jobs reach it" jobs_are 3 "$CHAINCTL_STATE_DIR/chaind.log"
check "GET /health shows the file's cpus" status_is 200 GET /health
check "  capacity.cpu is 2.5" json_has "b['resources']['capacity']['cpu'] == 2.5"
check "  and its gpus" json_has "b['resources']['capacity']['gpus'] == ['0', '1']"
check "stopped" stopped "$pid"

: > "$log"
check "chaind starts with CHAIND_JOBS=5" eval 'CHAIND_JOBS=5 start_chaind'
check "  CHAIND_JOBS beats the file" jobs_are 5 "$log"
check "  and the file still gives the rest" status_is 200 GET /health
check "  cpu 2.5" json_has "b['resources']['capacity']['cpu'] == 2.5"
check "  stopped" stop_chaind

: > "$log"
check "chaind starts with CHAIND_JOBS=5 --jobs 7" eval 'CHAIND_JOBS=5 start_chaind --jobs 7'
check "  --jobs beats CHAIND_JOBS and the file" jobs_are 7 "$log"
check "  stopped" stop_chaind

: > "$log"
cat > "$tmp/other.conf" <<'CONF'
jobs = 4
"no-prefetch" = true   # a flag without value
CONF
check "chaind --config FILE starts" start_chaind --config "$tmp/other.conf"
check "  FILE is read instead" jobs_are 4 "$log"
check "  its flag too" grep -q "prefetching off" "$log"
check "  stopped" stop_chaind

: > "$log"
check "chaind starts with CHAIND_CONFIG" eval 'CHAIND_CONFIG=$tmp/other.conf start_chaind'
check "  CHAIND_CONFIG names the file" jobs_are 4 "$log"
check "  stopped" stop_chaind

# What is wrong in a file: exit 2, saying which file (and line).
bad() {  # bad EXPECTED-TEXT CHAIND-ARGS...: exit 2 and stderr has the text
  local expected=$1 rc
  shift
  "$CHAIND" --socket "$sock" --state-dir "$CHAINCTL_STATE_DIR" "$@" > "$tmp/out" 2> "$tmp/err"
  rc=$?
  [[ $rc == 2 ]] && grep -qF -- "$expected" "$tmp/err" ||
    { echo "  exit $rc, stderr: $(head -c 400 "$tmp/err")" >&2; return 1; }
}
printf 'jobs = 3\njbos = 4\n' > "$tmp/typo.conf"
check "an unknown key: exit 2, the file and line" \
  bad "config file $tmp/typo.conf: line 2: unknown key \"jbos\"" --config "$tmp/typo.conf"
printf '[daemon]\njobs = 3\n' > "$tmp/section.conf"
check "a section: exit 2, the file and line" \
  bad "config file $tmp/section.conf: line 1: [daemon]" --config "$tmp/section.conf"
printf '# ok\njobs = many\n' > "$tmp/value.conf"
check "a value that does not parse: exit 2, the file and line" \
  bad "(in $tmp/value.conf, line 2)" --config "$tmp/value.conf"
printf 'max-body = 0\n' > "$tmp/zero.conf"
check "a value chaind refuses: exit 2, the file and line" \
  bad "--max-body: must be above 0 (in $tmp/zero.conf, line 1)" --config "$tmp/zero.conf"
check "a missing --config: exit 2" bad "$tmp/nope.conf" --config "$tmp/nope.conf"
check "a missing CHAIND_CONFIG: exit 2" eval 'CHAIND_CONFIG=$tmp/nope.conf bad "$tmp/nope.conf"'
cp "$tmp/typo.conf" "$conf"
check "a bad default file: exit 2, named" bad "config file $conf: line 2"
check "the command line does not hide it" bad "config file $conf" --jobs 2
rm "$conf"

check "--help lists --config, the CHAIND_* names and --exit-when-idle" bash -c \
  "'$CHAIND' --help | grep -q -- '--config' && '$CHAIND' --help | grep -q 'CHAIND_JOBS' &&
   '$CHAIND' --help | grep -q -- '--exit-when-idle' && '$CHAIND' --help | grep -q 'CHAIND_EXIT_WHEN_IDLE'"

# --- --exit-when-idle -----------------------------------------------------------------------

# A task that runs until the test writes to its fifo (a handshake).
mkfifo "$tmp/go"
cat > "$tmp/wait.yaml" <<YAML
chain_id: wait
tasks:
  - {task_id: t, command: "cat $tmp/go > /dev/null; echo '{\"done\": true}'"}
YAML
task_running() {
  curl -s --unix-socket "$sock" "http://localhost/runs/$1" |
    python3 -c "import json,sys; sys.exit(0 if json.load(sys.stdin)['tasks'][0]['state'] == 'running' else 1)" 2> /dev/null
}

: > "$log"
check "chaind --exit-when-idle 1s starts" start_chaind --exit-when-idle 1s
pid=$chaind_pid
check "  it says so" grep -q "exits after 1s with no run active and no client connected" "$log"
check "apply" bash -c "'$CHAINCTL' apply -f '$tmp/wait.yaml' > /dev/null"
# trigger without --wait: it returns once the run is accepted, so no client stays connected and
# only the run keeps chaind.
check "trigger" bash -c "'$CHAINCTL' trigger wait > /dev/null 2>&1"
check "the task runs" poll 20 task_running run-1
# The duration under test, not a wait for an event: twice the idle time with a run active.
sleep 2
check "chaind stays while the run is active, no client connected" kill -0 "$pid"
check "the task reads its fifo" timeout 20 bash -c "echo > '$tmp/go'"
run_succeeded() {
  curl -s --unix-socket "$sock" http://localhost/runs/run-1 |
    python3 -c "import json,sys; sys.exit(0 if json.load(sys.stdin)['status'] == 'succeeded' else 1)" 2> /dev/null
}
check "the run ends" poll 30 run_succeeded
check "then chaind exits" poll 10 gone "$pid"
wait "$pid"
check "  with status 0, as on SIGTERM" test $? = 0
check "  saying why" grep -q "idle for 1s (--exit-when-idle): shutting down" "$log"
check "  and stopped in order" grep -q "stopped$" "$log"
check "  its socket removed" test ! -e "$sock"

# A client connected, even without a request, keeps chaind.
: > "$log"
check "chaind --exit-when-idle 1s again" start_chaind --exit-when-idle 1s
pid=$chaind_pid
mkfifo "$tmp/hold"
python3 -c "
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
open(sys.argv[2], 'w').write('connected')
open(sys.argv[3]).read()  # until the test writes the fifo
" "$sock" "$tmp/connected" "$tmp/hold" &
client=$!
check "a client connects" poll 20 test -s "$tmp/connected"
sleep 2  # the duration under test, as above
check "chaind stays while it is connected" kill -0 "$pid"
check "the client reads its fifo" timeout 20 bash -c "echo > '$tmp/hold'"
check "the client goes" poll 20 gone "$client"
check "then chaind exits" poll 10 gone "$pid"
check "  for idleness" grep -q "idle for 1s (--exit-when-idle)" "$log"

check "--exit-when-idle refuses what is not a duration" bad "--exit-when-idle" --exit-when-idle soon

# --- --parent-pid ---------------------------------------------------------------------------

: > "$log"
bash -c "'$CHAIND' --socket '$sock' --state-dir '$CHAINCTL_STATE_DIR' --parent-pid \$\$ \
  >> '$log' 2>&1 & echo \$! > '$tmp/child'; exec sleep 600" &
parent=$!
check "chaind --parent-pid PARENT answers" poll 20 status_is 200 GET /health
child=$(cat "$tmp/child")
check "  it says so" grep -q "exits when process $parent exits" "$log"
kill -9 "$parent"
wait "$parent" 2> /dev/null
check "the parent is killed (SIGKILL): chaind exits" poll 20 gone "$child"
check "  saying why" grep -q "the parent process $parent exited (--parent-pid): shutting down" "$log"
check "  in order" grep -q "stopped$" "$log"
check "--parent-pid of a process that is not its parent: refused" bash -c \
  "'$CHAIND' --socket '$sock' --state-dir '$CHAINCTL_STATE_DIR' --parent-pid 1 > '$tmp/err' 2>&1;
   test \$? = 1 && grep -q 'is not chaind.s parent' '$tmp/err'"

# --- CI=true at autostart -------------------------------------------------------------------

environ_has() {  # environ_has PID TEXT: chaind's environment has the line TEXT
  tr '\0' '\n' < "/proc/$1/environ" | grep -qx -- "$2"
}
autostart() {  # autostart [VAR=value...]: chainctl autostarts chaind under that environment
  env "$@" "$CHAINCTL" list chains > /dev/null && pid=$(daemon_pid)
}
state_log=$CHAINCTL_STATE_DIR/chaind.log

: > "$state_log"
check "CI=true: chainctl autostarts chaind" autostart CI=true
check "  with CHAIND_EXIT_WHEN_IDLE=5m" environ_has "$pid" CHAIND_EXIT_WHEN_IDLE=5m
check "  chainctl says so in the log" grep -q "chainctl: CI=true: starting chaind with CHAIND_EXIT_WHEN_IDLE=5m" "$state_log"
check "  and chaind takes it" grep -q "exits after 5m with no run active" "$state_log"
check "  stopped" stopped "$pid"

: > "$state_log"
check "CI=true and CHAIND_EXIT_WHEN_IDLE set: kept" autostart CI=true CHAIND_EXIT_WHEN_IDLE=2m
check "  2m" environ_has "$pid" CHAIND_EXIT_WHEN_IDLE=2m
check "  chaind takes it" grep -q "exits after 2m " "$state_log"
check "  stopped" stopped "$pid"

: > "$state_log"
echo "exit-when-idle = 1m" > "$conf"
check "CI=true and the file sets it: no variable" autostart CI=true
check "  none in its environment" bash -c "! tr '\0' '\n' < /proc/$pid/environ | grep -q '^CHAIND_EXIT_WHEN_IDLE='"
check "  the file's 1m holds" grep -q "exits after 1m " "$state_log"
check "  stopped" stopped "$pid"
rm "$conf"

: > "$state_log"
check "without CI: chainctl autostarts chaind" autostart
check "  which stays" bash -c "! grep -q 'exits after' '$state_log' &&
  ! tr '\0' '\n' < /proc/$pid/environ | grep -q '^CHAIND_EXIT_WHEN_IDLE='"
check "  stopped" stopped "$pid"

finish
