#!/usr/bin/env bash
# End-to-end: crash recovery and resume (DESIGN.md §4 "Durability"). chaind is killed with
# SIGKILL at 30 random moments while a 20-task chain with data passing (JSON and files) runs;
# after each restart the store is intact (mdb_stat, mdb_dump), no task process is left, and
# `chainctl resume` completes the run with outputs identical to an uninterrupted run. Also:
# --resume-interrupted, resuming a failed run from its failed task, and resume's refusals.
# Needs CHAINCTL, CHAIND, SOURCE_DIR (set by ctest).
set -uo pipefail
: "${CHAINCTL:?}" "${CHAIND:?}" "${SOURCE_DIR:?}"

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
daemon_setup chainctl-recovery

ctl() { "$CHAINCTL" "$@"; }
# run_json RUN PYTHON-EXPR: prints the expression, evaluated with `b` = the run's record
run_json() {
  "$CHAINCTL" get run "$1" -o json |
    python3 -c "import json,sys; b=json.load(sys.stdin); print($2)"
}
store_intact() {
  mdb_stat -efa "$CHAINCTL_STATE_DIR/store" > /dev/null &&
    mdb_dump -a "$CHAINCTL_STATE_DIR/store" > /dev/null
}
# No process that is, or was started by, a task of this daemon (they all have CHAIN_WORKDIR
# in its runs folder) is alive.
no_task_left() {
  local f left=0
  for f in $(grep -lz "^CHAIN_WORKDIR=$CHAINCTL_STATE_DIR/runs/" /proc/[0-9]*/environ 2> /dev/null); do
    local p=${f%/environ}
    [[ $(cut -d' ' -f3 "$p/stat" 2> /dev/null) == [ZX] || ! -e $p ]] && continue
    echo "  left: $(tr '\0' ' ' < "$p/cmdline" 2> /dev/null)" >&2
    left=1
  done
  return $left
}
kill_chaind() {
  kill -9 "$chaind_pid"
  wait "$chaind_pid" 2> /dev/null
}

# --- The chain: 20 shell tasks; each hashes its input and its dependencies' files into its
# output and into a file of its own, so any lost, stale or doubled hand-off shows. ---
task=$tmp/task.sh
cat > "$task" <<SH
#!/bin/sh
# While $tmp/hold exists, every task but t1 waits for it to go.
while [ "\$CHAIN_TASK_ID" != t1 ] && [ -e $tmp/hold ]; do sleep 0.02; done
SH
cat >> "$task" <<'SH'
files=$(cat "$CHAIN_WORKDIR"/inputs/*/data.txt 2> /dev/null)
count=$(ls "$CHAIN_WORKDIR"/inputs 2> /dev/null | wc -l)
digest=$({ echo "$CHAIN_TASK_ID"; cat; echo "$files"; } | sha256sum | cut -c1-16)
echo "$CHAIN_TASK_ID:$digest" > "$CHAIN_OUTDIR/data.txt"
sleep 0.1  # the task's work
printf '{"task": "%s", "digest": "%s", "files": %d}\n' "$CHAIN_TASK_ID" "$digest" "$count"
SH
chmod +x "$task"
{
  echo "chain_id: crash20"
  echo "tasks:"
  for k in $(seq 1 20); do
    echo "  - task_id: t$k"
    echo "    executable_code_location: $task"
    deps=()
    ((k > 1)) && deps+=("t$((k / 2))")
    ((k > 3 && k % 3 == 0)) && deps+=("t$((k - 1))")
    (( ${#deps[@]} )) && echo "    dependencies: [$(IFS=,; echo "${deps[*]}")]"
  done
} > "$tmp/crash20.yaml"

check "chaind starts" start_chaind --jobs 2
check "apply crash20" bash -c "'$CHAINCTL' apply -f '$tmp/crash20.yaml' > /dev/null"
check "an uninterrupted run" bash -c "'$CHAINCTL' trigger crash20 --input '{\"seed\": 7}' --wait > '$tmp/reference.json'"
check "its output is every leaf's" python3 -c "import json; b=json.load(open('$tmp/reference.json')); assert len(b) >= 5 and all(len(v['digest']) == 16 for v in b.values()), b"

# --- 30 kills at random moments. Odd rounds kill the resumed run a second time. ---
interrupted=0 ended_first=0
for round in $(seq 1 30); do
  run=$("$CHAINCTL" trigger crash20 --input '{"seed": 7}')
  kills=1
  ((round % 2)) && kills=2
  for ((k = 1; k <= kills; k++)); do
    sleep "0.$(printf '%03d' $((RANDOM % 1000)))"  # a random moment of the run, not a wait
    kill_chaind
    check "round $round kill $k: store intact" store_intact
    check "round $round kill $k: chaind restarts" start_chaind --jobs 2
    check "round $round kill $k: no task process left" no_task_left
    status=$(run_json "$run" "b['status']")
    if [[ $status == interrupted ]]; then
      ((k == 1)) && interrupted=$((interrupted + 1))
      ((k < kills)) && "$CHAINCTL" resume "$run" > /dev/null
    elif ((k == 1)); then
      ended_first=$((ended_first + 1))
    fi
  done
  status=$(run_json "$run" "b['status']")
  if [[ $status != succeeded ]]; then
    check "round $round: resume $run ($status)" bash -c "'$CHAINCTL' resume $run --wait > '$tmp/out.json'"
  else
    "$CHAINCTL" get run "$run" -o json | python3 -c "import json,sys; print(json.dumps(json.load(sys.stdin)['output']))" > "$tmp/out.json"
  fi
  check "round $round: output identical to the uninterrupted run" python3 -c \
    "import json; assert json.load(open('$tmp/out.json')) == json.load(open('$tmp/reference.json'))"
done
echo "kills: $interrupted of 30 first kills interrupted a run, $ended_first came after it ended"
check "most kills hit a running run" test "$interrupted" -ge 15
check "the history has an attempt per task run" bash -c "'$CHAINCTL' history --chain crash20 --limit 100000 -o json > '$tmp/hist.json'"
check "no task ran twice to success in a run" python3 -c "
import json, collections
c = collections.Counter((r['run_id'], r['task_id']) for r in json.load(open('$tmp/hist.json'))['records'] if r['status'] == 'succeeded')
assert max(c.values()) == 1, c.most_common(3)"

# --- chaind --resume-interrupted: a killed run completes by itself after the restart. ---
touch "$tmp/hold"  # the run cannot end before the kill
run=$("$CHAINCTL" trigger crash20 --input '{"seed": 7}')
for _ in $(seq 1 500); do  # until its first task has ended
  [[ $(run_json "$run" "b['tasks'][0]['state']") == succeeded ]] && break
  sleep 0.02
done
kill_chaind
rm "$tmp/hold"
check "restart with --resume-interrupted" start_chaind --jobs 2 --resume-interrupted
for _ in $(seq 1 1000); do
  [[ $(run_json "$run" "b['status']") == succeeded ]] && break
  sleep 0.05
done
resumed=$(run_json "$run" "b['status'], b.get('resumed')")
check "the run resumed by itself and succeeded ($resumed)" test "$resumed" = "succeeded 1"
check "with the same output" python3 -c "import json,subprocess; o=json.loads(subprocess.check_output(['$CHAINCTL','get','run','$run','-o','json']))['output']; assert o == json.load(open('$tmp/reference.json'))"
check "t1 did not run again" test "$(run_json "$run" "b['tasks'][0]['attempts']")" = 1

# --- A failed run resumes from its failed task; what succeeded is not run again. ---
cat > "$tmp/flaky.yaml" <<YAML
chain_id: flaky
tasks:
  - task_id: first
    command: echo '{"n":1}'
  - task_id: gate
    dependencies: [first]
    command: test -e $tmp/gate-open && cat
  - task_id: after
    dependencies: [gate]
    command: cat
YAML
check "apply flaky" bash -c "'$CHAINCTL' apply -f '$tmp/flaky.yaml' > /dev/null"
check "flaky fails: exit 1" bash -c "'$CHAINCTL' trigger flaky --wait > /dev/null 2>&1; test \$? -eq 1"
failed_run=$("$CHAINCTL" list runs --chain flaky -o json | python3 -c "import json,sys; print(json.load(sys.stdin)['runs'][0]['run_id'])")
check "resume of an unknown run is refused (exit 4, not found)" bash -c "'$CHAINCTL' resume run-999999 2> '$tmp/resume.err'; test \$? -eq 4 && grep -q 'no run run-999999' '$tmp/resume.err'"
touch "$tmp/hold"  # it cannot end before the resume is asked for
running=$("$CHAINCTL" trigger crash20)
check "resume of a running run is refused (exit 3)" bash -c "'$CHAINCTL' resume $running 2> '$tmp/resume.err'; test \$? -eq 3 && grep -q 'is running' '$tmp/resume.err'"
rm "$tmp/hold"
touch "$tmp/gate-open"
check "resume the failed run" bash -c "'$CHAINCTL' resume $failed_run --wait > '$tmp/flaky.out'"
check "its output" python3 -c "import json; assert json.load(open('$tmp/flaky.out')) == {'n': 1}"
check "first ran once, gate twice, after once" test \
  "$(run_json "$failed_run" "[t['attempts'] for t in b['tasks']]")" = "[1, 2, 1]"
check "gate's first attempt's log is kept" bash -c "'$CHAINCTL' logs $failed_run gate > /dev/null"
check "events: run_finished failed, run_resumed, run_finished succeeded" bash -c \
  "curl -s --unix-socket '$sock' http://localhost/runs/$failed_run/events | python3 -c \"
import json,sys
e = [json.loads(l) for l in sys.stdin]
t = [(x['type'], x.get('status')) for x in e if x['type'] in ('run_finished', 'run_resumed')]
assert t == [('run_finished', 'failed'), ('run_resumed', None), ('run_finished', 'succeeded')], t
assert [x['seq'] for x in e] == list(range(1, len(e) + 1))\""
check "a succeeded run has nothing to resume (exit 3)" bash -c \
  "'$CHAINCTL' resume $failed_run 2> '$tmp/resume.err'; test \$? -eq 3 && grep -q 'nothing to resume' '$tmp/resume.err'"

finish
