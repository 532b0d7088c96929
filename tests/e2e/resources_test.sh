#!/usr/bin/env bash
# End-to-end: resource admission and limits on a real chaind started with
# --jobs 2 --memory 1Gi --gpus 0 — memory requests over capacity run one after the other, a
# task that can never fit is refused at apply, GPUs reach tasks through CUDA_VISIBLE_DEVICES,
# and rlimits stop a task that allocates or computes past its requests. No sleeps to wait for
# something: bounded polls and marker-file handshakes. Needs CHAINCTL, CHAIND (set by ctest).
set -uo pipefail
: "${CHAINCTL:?}" "${CHAIND:?}"

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
daemon_setup chainctl-res
export CHAINCTL_NO_AUTOSTART=1  # only the daemon started here, with its flags

ctl() { "$CHAINCTL" "$@"; }
py() { python3 -c "$@"; }
# The JSON of `chainctl get run RUN`, checked by a Python expression on `b`.
run_has() {  # run_has RUN EXPR
  "$CHAINCTL" get run "$1" -o json > "$tmp/run.json" &&
    python3 -c "import json,sys; b=json.load(open('$tmp/run.json')); sys.exit(0 if ($2) else 1)" ||
    { echo "  $1: $(head -c 600 "$tmp/run.json")" >&2; return 1; }
}
last_run() {  # last_run CHAIN
  ctl list runs --chain "$1" -o json | py "import json,sys; print(json.load(sys.stdin)['runs'][0]['run_id'])"
}

mkdir -p "$tmp/chains" "$tmp/marks"
"$CHAIND" --socket "$sock" --state-dir "$CHAINCTL_STATE_DIR" --jobs 2 --memory 1Gi --gpus 0 \
  2> "$tmp/chaind.log" &
chaind_pid=$!
for _ in $(seq 1 500); do  # bounded poll until it answers
  curl -sf --unix-socket "$sock" http://localhost/health > "$tmp/health.json" 2>/dev/null && break
  sleep 0.02
done
check "chaind --jobs 2 --memory 1Gi --gpus 0 answers" test -s "$tmp/health.json"
check "/health gives the capacity" py "
import json; r = json.load(open('$tmp/health.json'))['resources']
assert r['capacity']['memory_bytes'] == 1 << 30 and r['capacity']['gpus'] == ['0'], r
assert r['in_use'] == {'cpu': 0, 'memory_bytes': 0, 'gpus': 0}, r"
check "the log names the capacity" grep -q 'tasks run 2 at once, admitted against .* 1Gi of memory, GPUs 0' \
  "$tmp/chaind.log"

# --- Two roots that --jobs 2 runs in parallel (shown by a handshake: each waits for the
# other to have started)... ---
cat > "$tmp/chains/parallel.yaml" <<YAML
chain_id: parallel
tasks:
  - task_id: a
    command: |
      touch $tmp/marks/a; for i in \$(seq 1 600); do [ -e $tmp/marks/b ] && break; sleep 0.05; done
      [ -e $tmp/marks/b ] && echo '{"saw": "b"}'
  - task_id: b
    command: |
      touch $tmp/marks/b; for i in \$(seq 1 600); do [ -e $tmp/marks/a ] && break; sleep 0.05; done
      [ -e $tmp/marks/a ] && echo '{"saw": "a"}'
YAML
check "without memory requests, a and b run at once" bash -c \
  "'$CHAINCTL' run -f '$tmp/chains/parallel.yaml' > '$tmp/parallel.out' 2> '$tmp/parallel.err'"

# --- ...wait for each other when their memory requests (700Mi each) sum over 1Gi. ---
cat > "$tmp/chains/memory.yaml" <<YAML
chain_id: memory
tasks:
  - task_id: a
    command: |
      echo "start a" >> $tmp/marks/order; [ -e $tmp/marks/running ] && exit 9
      touch $tmp/marks/running
      python3 -c 'b = bytearray(100 << 20); print("{}")'
      rm $tmp/marks/running; echo "end a" >> $tmp/marks/order
    resource_requirements: {memory: 700Mi}
  - task_id: b
    command: |
      echo "start b" >> $tmp/marks/order; [ -e $tmp/marks/running ] && exit 9
      touch $tmp/marks/running
      python3 -c 'b = bytearray(100 << 20); print("{}")'
      rm $tmp/marks/running; echo "end b" >> $tmp/marks/order
    resource_requirements: {memory: 700Mi}
YAML
check "with 700Mi each on 1Gi, the chain succeeds" bash -c \
  "'$CHAINCTL' run -f '$tmp/chains/memory.yaml' > /dev/null 2> '$tmp/memory.err'"
check "one after the other (task markers)" py "
lines = open('$tmp/marks/order').read().split()
assert lines in (['start', 'a', 'end', 'a', 'start', 'b', 'end', 'b'],
                 ['start', 'b', 'end', 'b', 'start', 'a', 'end', 'a']), lines"
memory_run=$(last_run memory)
check "one after the other (start and end times of the run)" run_has "$memory_run" "
b['status'] == 'succeeded' and
(lambda a, c: a['ended_unix_ms'] <= c['started_unix_ms'] or c['ended_unix_ms'] <= a['started_unix_ms'])(
    b['tasks'][0], b['tasks'][1])"

# --- A task that can never fit is refused when applied, naming the task, field and capacity. ---
cat > "$tmp/chains/greedy.yaml" <<'YAML'
chain_id: greedy
tasks:
  - {task_id: prep, command: "echo '{}'"}
  - task_id: train
    command: "echo '{}'"
    dependencies: [prep]
    resource_requirements: {gpu: 2}
YAML
check "apply of a 2-GPU task on a 1-GPU chaind: exit 2" bash -c \
  "'$CHAINCTL' apply -f '$tmp/chains/greedy.yaml' > /dev/null 2> '$tmp/greedy.err'; test \$? -eq 2"
check "the message names the task, the field and the capacity" grep -q \
  'tasks\[1\].resource_requirements.gpu: task train needs 2 GPUs; chaind has 1 (--gpus 0)' "$tmp/greedy.err"
check "run refuses it too: exit 2" bash -c \
  "'$CHAINCTL' run -f '$tmp/chains/greedy.yaml' > /dev/null 2>&1; test \$? -eq 2"
check "and nothing was stored" bash -c "! '$CHAINCTL' get chain greedy > /dev/null 2>&1"
sed -i 's/{gpu: 2}/{memory: 2Gi}/' "$tmp/chains/greedy.yaml"
check "memory over --memory: exit 2, with the capacity" bash -c \
  "'$CHAINCTL' apply -f '$tmp/chains/greedy.yaml' 2>&1 >/dev/null |
   grep -q 'task train needs 2Gi of memory; chaind has 1Gi (--memory)'"

# --- GPUs: granted through CUDA_VISIBLE_DEVICES, empty for a task without one. ---
cat > "$tmp/chains/gpu.yaml" <<'YAML'
chain_id: gpu
tasks:
  - task_id: trainer
    command: |
      printf '{"cuda": "%s"}' "$CUDA_VISIBLE_DEVICES"
    resource_requirements: {gpu: 1}
  - task_id: cpu_only
    command: |
      printf '{"cuda": "%s"}' "${CUDA_VISIBLE_DEVICES-unset}"
YAML
check "a 1-GPU task sees CUDA_VISIBLE_DEVICES=0, another sees it empty" bash -c \
  "'$CHAINCTL' run -f '$tmp/chains/gpu.yaml' 2>/dev/null | python3 -c \"
import json,sys; b=json.load(sys.stdin); assert b == {'trainer': {'cuda': '0'}, 'cpu_only': {'cuda': ''}}, b\""

# --- Limits: memory is RLIMIT_DATA, cpu x timeout is RLIMIT_CPU. ---
cat > "$tmp/chains/limits.yaml" <<'YAML'
chain_id: limits
tasks:
  - task_id: hog
    command: |
      python3 -c 'b = bytearray(200 << 20); print("{}")'
    resource_requirements: {memory: 64Mi}
  - task_id: spin
    command: |
      while :; do :; done
    resource_requirements: {cpu: 0.1, timeout: 20s}
YAML
check "tasks over their limits fail: exit 1" bash -c \
  "'$CHAINCTL' run -f '$tmp/chains/limits.yaml' > /dev/null 2> '$tmp/limits.err'; test \$? -eq 1"
limits_run=$(last_run limits)
check "the memory hog failed under its limit" run_has "$limits_run" \
  "b['tasks'][0]['state'] == 'failed' and 'under a memory limit of 64Mi' in b['tasks'][0]['error']"
check "and its log has the MemoryError" bash -c "'$CHAINCTL' logs $limits_run hog | grep -q MemoryError"
check "the spinner was stopped by its CPU-time limit (2s), not the timeout" run_has "$limits_run" \
  "b['tasks'][1]['error'] == 'killed by signal 24 (SIGXCPU): over its CPU-time limit of 2s (cpu x timeout)'"
check "history gives the cause" bash -c "'$CHAINCTL' history --run $limits_run -o json | python3 -c \"
import json,sys; r={x['task_id']: x['cause'] for x in json.load(sys.stdin)['records']}
assert r == {'hog': 'exit 1', 'spin': 'signal 24 (cpu limit)'}, r\""

check "nothing is held once all is done" bash -c "curl -s --unix-socket '$sock' http://localhost/health |
  python3 -c \"import json,sys; r=json.load(sys.stdin)['resources']['in_use']; assert r == {'cpu': 0, 'memory_bytes': 0, 'gpus': 0}, r\""

# --- Restarted with fewer GPUs, a stored chain that needs more is refused at trigger. ---
sed -i 's/{memory: 2Gi}/{gpu: 1}/' "$tmp/chains/greedy.yaml"
check "apply a 1-GPU chain" bash -c "'$CHAINCTL' apply -f '$tmp/chains/greedy.yaml' > /dev/null"
kill "$chaind_pid"
check "chaind stops on SIGTERM" wait "$chaind_pid"
"$CHAIND" --socket "$sock" --state-dir "$CHAINCTL_STATE_DIR" 2>> "$tmp/chaind.log" &
chaind_pid=$!
for _ in $(seq 1 500); do
  curl -sf --unix-socket "$sock" http://localhost/health > /dev/null 2>&1 && break
  sleep 0.02
done
check "trigger on a chaind without GPUs: exit 2" bash -c \
  "'$CHAINCTL' trigger greedy > /dev/null 2> '$tmp/trigger.err'; test \$? -eq 2"
check "saying why" grep -q 'task train needs 1 GPU; chaind has none (--gpus not given)' "$tmp/trigger.err"
kill "$chaind_pid"
check "chaind stops again" wait "$chaind_pid"

finish
