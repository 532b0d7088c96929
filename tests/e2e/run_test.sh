#!/usr/bin/env bash
# End-to-end: running chains on a real chaind with real task processes — data passing (JSON
# and files), a 500-task DAG, failures of every kind, history, events, logs, and no zombies
# or leaked descriptors after 1,000 runs. Needs CHAINCTL, CHAIND, SOURCE_DIR (set by ctest).
set -uo pipefail
: "${CHAINCTL:?}" "${CHAIND:?}" "${SOURCE_DIR:?}"

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
daemon_setup chainctl-run

ctl() { "$CHAINCTL" "$@"; }
py() { python3 -c "$@"; }
# json_file_has FILE PYTHON-EXPR: evaluated with `b` = the JSON in FILE
json_file_has() {
  python3 -c "import json,sys; b=json.load(open('$1')); sys.exit(0 if ($2) else 1)" ||
    { echo "  $1: $(head -c 400 "$1")" >&2; return 1; }
}

mkdir -p "$tmp/chains"

# --- A diamond: JSON through stdin/stdout, files through CHAIN_OUTDIR. ---
cat > "$tmp/chains/diamond.yaml" <<'YAML'
chain_id: diamond
tasks:
  - task_id: src
    command: |
      python3 -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps({"n": d["n"] + 1}))'
      printf 'made by src\n' > "$CHAIN_OUTDIR/data.txt"
    input_schema: {type: object, required: [n], properties: {n: {type: integer}}}
    output_schema: {type: object, required: [n]}
  - task_id: double
    dependencies: [src]
    command: |
      python3 -c 'import json,sys; print(json.dumps({"twice": json.load(sys.stdin)["n"] * 2}))'
  - task_id: readfile
    dependencies: [src]
    command: |
      test "$(cat "$CHAIN_INPUT_FILE")" = "$(cat)" || exit 9
      printf '{"file": "%s", "attempt": %s}' "$(cat "$CHAIN_WORKDIR/inputs/src/data.txt")" "$CHAIN_ATTEMPT"
  - task_id: join
    dependencies: [double, readfile]
    command: cat
YAML
check "run diamond" bash -c "'$CHAINCTL' run -f '$tmp/chains/diamond.yaml' --input '{\"n\": 4}' \
  > '$tmp/diamond.out' 2> '$tmp/diamond.err'"
check "diamond output is the join of both branches" json_file_has "$tmp/diamond.out" \
  "b == {'double': {'twice': 10}, 'readfile': {'file': 'made by src', 'attempt': 1}}"
check "plain progress names every task" bash -c "grep -q 'ok join' '$tmp/diamond.err' && grep -q 'succeeded in' '$tmp/diamond.err'"
run_id=$(ctl list runs -o json | py "import json,sys; print(json.load(sys.stdin)['runs'][0]['run_id'])")
check "get run shows four succeeded tasks" bash -c "'$CHAINCTL' get run $run_id -o json > '$tmp/run.json'"
check "run record" json_file_has "$tmp/run.json" \
  "b['status'] == 'succeeded' and [t['state'] for t in b['tasks']] == ['succeeded'] * 4"
check "history has every attempt" bash -c "'$CHAINCTL' history --run $run_id -o json > '$tmp/hist.json'"
check "four history records with measurements" json_file_has "$tmp/hist.json" \
  "len(b['records']) == 4 and all(r['status'] == 'succeeded' and 'cpu_s' in r and r['end_unix_ms'] >= r['start_unix_ms'] for r in b['records'])"

# --- Invalid input never starts a run. ---
check "input not JSON: exit 2" bash -c "'$CHAINCTL' trigger diamond --input '{n:' 2>/dev/null; test \$? -eq 2"
check "input against input_schema: exit 2" bash -c \
  "'$CHAINCTL' trigger diamond --input '{\"n\": \"x\"}' 2> '$tmp/input.err' >/dev/null; test \$? -eq 2"
check "and names the task and field" grep -q 'task src: /n: expected integer' "$tmp/input.err"

# --- Failures: each a clear error, the daemon keeps serving. ---
cat > "$tmp/chains/fail.yaml" <<'YAML'
chain_id: failures
tasks:
  - task_id: bad_schema
    command: |
      echo '{"rows": "seven"}'
    output_schema: {type: object, properties: {rows: {type: integer}}}
  - task_id: after_bad
    command: cat
    dependencies: [bad_schema]
  - task_id: huge
    command: head -c 5000000 /dev/zero | tr '\0' 'x'
    resource_requirements: {max_output: 1Mi}
  - task_id: crash
    command: |
      echo 'about to crash' >&2; kill -SEGV $$
  - task_id: exit3
    command: |
      echo 'something went wrong' >&2; exit 3
YAML
check "failing chain: exit 1" bash -c "'$CHAINCTL' run -f '$tmp/chains/fail.yaml' > /dev/null 2> '$tmp/fail.err'; test \$? -eq 1"
check "schema violation names the field" grep -q 'bad_schema .*output_schema: /rows: expected integer' "$tmp/fail.err"
check "dependent of a failure does not run" grep -q 'upstream_failed after_bad' "$tmp/fail.err"
check "huge output fails clearly" grep -q 'huge .*over the 1Mi limit (max_output)' "$tmp/fail.err"
check "crash is a signal" grep -q 'crash .*killed by signal 11' "$tmp/fail.err"
check "exit status is reported" grep -q 'exit3 .*exited with status 3' "$tmp/fail.err"
check "failure shows the end of the task's log" grep -q 'something went wrong' "$tmp/fail.err"
fail_run=$(ctl list runs --chain failures -o json | py "import json,sys; print(json.load(sys.stdin)['runs'][0]['run_id'])")
check "logs RUN TASK prints the stderr" bash -c "'$CHAINCTL' logs $fail_run crash | grep -q 'about to crash'"

# logs -f follows a running task's log until the task ends.
cat > "$tmp/chains/chatty.yaml" <<'YAML'
chain_id: chatty
tasks:
  - task_id: talk
    command: |
      echo first >&2; sleep 0.5; echo second >&2; echo '{}'
YAML
check "apply chatty" bash -c "'$CHAINCTL' apply -f '$tmp/chains/chatty.yaml' >/dev/null"
chatty_run=$("$CHAINCTL" trigger chatty)
check "logs -f prints the log as it grows, to the task's end" bash -c \
  "timeout 60 '$CHAINCTL' logs -f $chatty_run talk > '$tmp/chatty.log' && grep -q first '$tmp/chatty.log' && grep -q second '$tmp/chatty.log'"

# A missing executable: valid when applied, deleted before the run.
cp /bin/true "$tmp/vanishing"
cat > "$tmp/chains/missing.yaml" <<YAML
chain_id: missing
tasks:
  - {task_id: gone, executable_code_location: $tmp/vanishing}
YAML
check "apply with the executable present" bash -c "'$CHAINCTL' apply -f '$tmp/chains/missing.yaml' >/dev/null"
rm "$tmp/vanishing"
check "missing executable fails the run" bash -c "'$CHAINCTL' trigger missing --wait 2> '$tmp/missing.err' >/dev/null; test \$? -eq 1"
check "and says which file" grep -q "$tmp/vanishing" "$tmp/missing.err"
check "the daemon still answers" bash -c "curl -sf --unix-socket '$sock' http://localhost/health >/dev/null"

# --- curl: trigger, follow the events (two followers at once), outputs. ---
cat > "$tmp/chains/slow.yaml" <<'YAML'
chain_id: slow
tasks:
  - {task_id: first, command: 'sleep 0.5; echo "{\"a\": 1}"'}
  - {task_id: second, command: cat, dependencies: [first]}
YAML
check "apply slow" bash -c "'$CHAINCTL' apply -f '$tmp/chains/slow.yaml' >/dev/null"
check "POST /chains/slow/trigger is 202" bash -c "curl -s -o '$tmp/trig.json' -w '%{http_code}' --unix-socket '$sock' \
  -X POST -H 'Content-Type: application/json' -d '{\"input\": {}}' http://localhost/chains/slow/trigger | grep -q 202"
slow_run=$(py "import json; print(json.load(open('$tmp/trig.json'))['run_id'])")
for f in 1 2; do
  curl -s -N --max-time 60 --unix-socket "$sock" "http://localhost/runs/$slow_run/events?follow=1" > "$tmp/events$f" &
done
wait
for f in 1 2; do
  check "follower $f saw the run to its end" py "
import json
ev = [json.loads(l) for l in open('$tmp/events$f')]
assert ev[0]['type'] == 'run_started' and ev[-1]['type'] == 'run_finished', ev
assert ev[-1]['status'] == 'succeeded' and ev[-1]['output'] == {'a': 1}, ev[-1]
assert [e['seq'] for e in ev] == list(range(1, len(ev) + 1))"
done
check "GET task output" bash -c "curl -s --unix-socket '$sock' http://localhost/runs/$slow_run/tasks/first/output | grep -q '\"a\":1'"
check "unknown run is 404" bash -c "curl -s -o /dev/null -w '%{http_code}' --unix-socket '$sock' http://localhost/runs/run-999999 | grep -q 404"

# --- Ctrl-C on a waiting `chainctl run` cancels the run (exit 130); the task's group is killed. ---
forever="sleep 1000$$"  # seconds; unique, so that pgrep finds only this test's processes
cat > "$tmp/chains/forever.yaml" <<YAML
chain_id: forever
tasks:
  - {task_id: wait, command: '$forever & $forever'}
YAML
"$CHAINCTL" run -f "$tmp/chains/forever.yaml" --progress plain > /dev/null 2> "$tmp/forever.err" &
waiter=$!
for _ in $(seq 1 200); do grep -q 'start wait' "$tmp/forever.err" && break; sleep 0.05; done
kill -INT $waiter
wait $waiter
check "Ctrl-C exits 130" test $? -eq 130
check "and says the run was cancelled" grep -q 'interrupted: run-[0-9]* cancelled' "$tmp/forever.err"
forever_run=$(grep -o 'run-[0-9]*' "$tmp/forever.err" | head -n 1)
for _ in $(seq 1 200); do
  "$CHAINCTL" get run "$forever_run" -o json | grep -q '"status":"cancelled"\|"status": "cancelled"' && break
  sleep 0.05
done
check "the run is cancelled" bash -c "'$CHAINCTL' get run $forever_run -o json | python3 -c \"import json,sys; b=json.load(sys.stdin); assert b['status'] == 'cancelled', b\""
for _ in $(seq 1 200); do pgrep -f "$forever" >/dev/null || break; sleep 0.05; done
check "no process of the task is left" test -z "$(pgrep -f "$forever")"

# --- A 500-task DAG. ---
py "
import random
random.seed(7)
print('chain_id: big\ntasks:')
for i in range(500):
    deps = sorted(set(random.sample(range(i), min(i, 3)))) if i else []
    print(f'  - {{task_id: t{i}, executable_code_location: /bin/true, dependencies: [{\", \".join(f\"t{d}\" for d in deps)}]}}')
" > "$tmp/chains/big.yaml"
check "500-task DAG runs" bash -c "'$CHAINCTL' run -f '$tmp/chains/big.yaml' --progress quiet > '$tmp/big.out'"
big_run=$(ctl list runs --chain big -o json | py "import json,sys; print(json.load(sys.stdin)['runs'][0]['run_id'])")
check "all 500 succeeded" bash -c "'$CHAINCTL' get run $big_run -o json | python3 -c \"import json,sys; b=json.load(sys.stdin); assert [t['state'] for t in b['tasks']].count('succeeded') == 500\""

# --- History export is JSONL v1. ---
check "history export" bash -c "'$CHAINCTL' history export '$tmp/history.jsonl' 2>/dev/null"
check "JSONL v1 records" py "
import json
n = 0
for line in open('$tmp/history.jsonl'):
    r = json.loads(line)
    for k in ('run_id', 'chain_id', 'task_id', 'start', 'end', 'status'):
        assert k in r, (k, r)
    assert r['status'] in ('succeeded', 'failed') and r['end'] >= r['start'] > 1e9
    n += 1
assert n >= 4 + 5 + 500, n"

# --- 1,000 runs: no zombies, no leaked descriptors. ---
cat > "$tmp/chains/tiny.yaml" <<'YAML'
chain_id: tiny
tasks:
  - {task_id: one, command: 'echo "{\"ok\": true}"'}
  - {task_id: two, command: cat, dependencies: [one]}
YAML
check "apply tiny" bash -c "'$CHAINCTL' apply -f '$tmp/chains/tiny.yaml' >/dev/null"
pid=$(daemon_pid)
fds_before=$(ls /proc/$pid/fd | wc -l)
for i in $(seq 1 1000); do
  curl -s -o /dev/null --unix-socket "$sock" -X POST -d '{}' http://localhost/chains/tiny/trigger
done
# Bounded poll until every run ended.
for _ in $(seq 1 600); do
  running=$(curl -s --unix-socket "$sock" "http://localhost/runs?chain=tiny&limit=1000" |
    py "import json,sys; print(sum(r['status'] == 'running' for r in json.load(sys.stdin)['runs']))")
  [[ $running == 0 ]] && break
  sleep 0.5
done
check "1,000 runs succeeded" bash -c "curl -s --unix-socket '$sock' 'http://localhost/runs?chain=tiny&limit=1000' | python3 -c \"
import json,sys; r=json.load(sys.stdin)['runs']; assert len(r) == 1000 and all(x['status'] == 'succeeded' for x in r), len(r)\""
check "no zombie children" bash -c "! ps --ppid $pid -o stat= | grep -q Z"
check "no child left at all" bash -c "test -z \"\$(ps --ppid $pid -o pid=)\""
# The last client's connection may still be closing: a bounded poll for the count to settle.
for _ in $(seq 1 100); do
  fds_after=$(ls /proc/$pid/fd | wc -l)
  [[ $fds_after -le $fds_before ]] && break
  sleep 0.1
done
check "no leaked descriptors ($fds_before before, $fds_after after)" test "$fds_after" -le "$fds_before"

# --- SIGTERM while a run runs: its task is stopped, the run is stored as interrupted. ---
check "trigger forever" bash -c "'$CHAINCTL' trigger forever > '$tmp/forever.id'"
stopped_run=$(cat "$tmp/forever.id")
for _ in $(seq 1 200); do
  "$CHAINCTL" get run "$stopped_run" -o json | grep -q '"attempts": 1' && break
  sleep 0.05
done
check "daemon stop with a run running" bash -c "'$CHAINCTL' daemon stop >/dev/null"
check "no process of the stopped task is left" test -z "$(pgrep -f "$forever")"
check "the run is interrupted after a restart" bash -c "'$CHAINCTL' get run $stopped_run -o json | python3 -c \"import json,sys; b=json.load(sys.stdin); assert b['status'] == 'interrupted' and b['tasks'][0]['state'] == 'cancelled', b\""

# --- Restart: finished runs and their events are still there. ---
check "daemon stop" bash -c "'$CHAINCTL' daemon stop >/dev/null"
check "run survives a restart" bash -c "'$CHAINCTL' get run $run_id -o json | grep -q '\"succeeded\"'"
check "events of a finished run replay" bash -c "curl -s --unix-socket '$sock' http://localhost/runs/$run_id/events | tail -n 1 | grep -q run_finished"

finish
