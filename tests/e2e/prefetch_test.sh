#!/usr/bin/env bash
# End-to-end: prefetching (DESIGN.md §5) with a real chaind and real processes.
#   - a `spawn` task is prewarmed while its predecessor runs, takes its input only when its run
#     reaches it (a hit), and reads its run's context from $CHAIN_CONTEXT_FILE;
#   - a wrong prewarm (its task is skipped) never gets input and is stopped by its keep-alive,
#     counted as waste;
#   - a staged input replaced, or changed in place, between staging and use: the task sees the
#     new content;
#   - with a budget of one warm process, never more than one, whatever the runs want;
#   - no prewarmed process outlives chaind's shutdown;
#   - --no-prefetch prewarms nothing; GET /metrics is Prometheus text; chainctl stats.
# Waits are bounded polls on what the daemon or the tasks report. Needs CHAINCTL, CHAIND.
set -uo pipefail
: "${CHAINCTL:?}" "${CHAIND:?}"

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
daemon_setup chainctl-prefetch

ctl() { "$CHAINCTL" "$@"; }
marks=$tmp/marks
mkdir -p "$marks" "$tmp/data"

# poll_until SECONDS COMMAND...: runs COMMAND every 20 ms until it succeeds (bounded).
poll_until() {
  local limit=$1
  shift
  local end=$((SECONDS + limit))
  until "$@"; do
    ((SECONDS > end)) && return 1
    sleep 0.02
  done
}
alive() { kill -0 "$1" 2>/dev/null; }
# wait_run RUN: until the run has ended (bounded); its record is then in $tmp/run.json.
run_ended() {
  ctl get run "$1" -o json > "$tmp/run.json" 2>/dev/null &&
    ! grep -q '"status": *"running"' "$tmp/run.json"
}
wait_run() { poll_until 60 run_ended "$1"; }
gone() { ! kill -0 "$1" 2>/dev/null; }

# A spawn task: starts up (50 ms: prewarms gain only on a start-up of 10 ms or more, and a bare
# shell may be ready sooner on an idle machine), notes its pid, then blocks on its input; only
# then does its work (notes the input), and answers with what its context file says.
cat > "$tmp/spawned.sh" <<'SH'
#!/bin/sh
sleep 0.05
pwd -P > "$MARKS/$NAME.pwd"
echo $$ >> "$MARKS/$NAME.spawned"
input=$(cat)
echo $$ >> "$MARKS/$NAME.took"
echo "$input" >> "$MARKS/$NAME.inputs"
run=$(sed -n 's/.*"run_id":"\([^"]*\)".*/\1/p' "$CHAIN_CONTEXT_FILE")
printf '{"prewarmed":"%s","run":"%s"}' "${CHAIN_PREWARMED:-0}" "$run"
SH
chmod +x "$tmp/spawned.sh"

# A task that waits (bounded) until the test lets it go: the handshake for "while it runs".
cat > "$tmp/gate.sh" <<'SH'
#!/bin/sh
cat > /dev/null
for _ in $(seq 1 3000); do [ -e "$MARKS/go" ] && break; sleep 0.01; done
rm -f "$MARKS/go"
echo '{"passed": true}'
SH
chmod +x "$tmp/gate.sh"

# gated_chain CHAIN_ID < TASKS: $tmp/CHAIN_ID.yaml, the gate first, then the tasks' YAML.
gated_chain() {
  cat > "$tmp/$1.yaml" <<EOF
chain_id: $1
tasks:
  - task_id: gate
    executable_code_location: $tmp/gate.sh
    env: {MARKS: $marks}
    prewarm: off
EOF
  cat >> "$tmp/$1.yaml"
}

gated_chain pair <<EOF
  - task_id: work
    executable_code_location: $tmp/spawned.sh
    dependencies: [gate]
    prewarm: spawn
    env: {MARKS: $marks, NAME: work}
EOF

cat > "$tmp/skip.yaml" <<EOF
chain_id: skip
tasks:
  - task_id: first
    command: "cat > /dev/null; echo '{\"go\": false}'"
    prewarm: off
  - task_id: never
    executable_code_location: $tmp/spawned.sh
    dependencies: [first]
    when: {path: /first/go, op: eq, value: true}
    prewarm: spawn
    env: {MARKS: $marks, NAME: never}
EOF

echo "first version" > "$tmp/data/in.txt"
# One chain per case: a staging measured fast (a local file is linked in a millisecond) is not
# staged ahead again, so each case is the first of its chain.
for c in staged staged-replace staged-in-place; do
  gated_chain $c <<EOF
  - task_id: reader
    command: "cat > /dev/null; cat \$CHAIN_WORKDIR/inputs/files/in.txt"
    dependencies: [gate]
    inputs: {files: ["$tmp/data/in.txt"]}
EOF
done

start_chaind --prefetch-ttl 2s --prefetch-processes 4
for c in pair skip staged staged-replace staged-in-place; do check "apply $c" ctl apply -f "$tmp/$c.yaml" > /dev/null; done

# --- A hit: `work` prewarmed while `gate` waits, given its input only when its turn comes. ---
run=$(ctl trigger pair)
check "work is prewarmed while gate runs" poll_until 30 test -s "$marks/work.spawned"
warm_pid=$(head -n 1 "$marks/work.spawned")
check "the prewarmed process got no input yet" test ! -e "$marks/work.inputs"
check "it is in the warm pool" bash -c "'$CHAINCTL' prefetch status -o json |
  python3 -c \"import json,sys; b=json.load(sys.stdin); sys.exit(0 if any(e['task_id']=='work' and e['level']=='spawn' for e in b['pool']) else 1)\""
touch "$marks/go"
check "the run ends" wait_run "$run"
check "the run succeeded" python3 -c "import json,sys; b=json.load(open('$tmp/run.json')); sys.exit(0 if b['status']=='succeeded' else 1)"
check "the prewarmed process did the work" test "$(wc -l < "$marks/work.spawned")" -ge 1
check "with its run's context and input" python3 -c "
import json,sys
b = json.load(open('$tmp/run.json'))
out = b['output']
sys.exit(0 if out['prewarmed'] == '1' and out['run'] == '$run' else 1)"
check "the prewarmed process took it: its pid did the work" grep -qx "$warm_pid" "$marks/work.took"
check "it had started in the chain file's folder, as a task does" grep -qx "$(cd "$tmp" && pwd -P)" "$marks/work.pwd"
status_is 200 GET /prefetch
check "GET /prefetch counts the hit" json_has "b['hits'] >= 1 and any(t['task_id']=='work' and t['hits']==1 for t in b['tasks'])"

# --- A wrong prewarm: `never` is skipped; its process never gets input, its keep-alive ends it. ---
rm -f "$marks"/never.*
check "run skip" ctl run -f "$tmp/skip.yaml" > /dev/null 2>&1
check "never was prewarmed" poll_until 30 test -s "$marks/never.spawned"
never_pid=$(head -n 1 "$marks/never.spawned")
check "stopped by its keep-alive (--prefetch-ttl 2s)" poll_until 30 gone "$never_pid"
check "it never got input" test ! -e "$marks/never.inputs"
status_is 200 GET /prefetch
check "counted as waste, with its cost" json_has "any(t['task_id']=='never' and t['wasted']>=1 for t in b['tasks']) and b['wasted']['mb_seconds'] > 0"

# --- Staged data: replaced (new inode) and changed in place between staging and use. ---
for how in replace in-place; do
  echo "old $how" > "$tmp/data/in.txt"
  run=$(ctl trigger "staged-$how")
  check "$how: reader's input staged while gate runs" poll_until 30 bash -c "'$CHAINCTL' prefetch status -o json |
    python3 -c \"import json,sys; b=json.load(sys.stdin); sys.exit(0 if any(e['chain_id']=='staged-$how' and e['task_id']=='reader' and e.get('staging') is False for e in b['pool']) else 1)\""
  if [[ $how == replace ]]; then
    echo "new $how" > "$tmp/data/in.txt.tmp" && mv "$tmp/data/in.txt.tmp" "$tmp/data/in.txt"
  else
    echo "new $how, longer" > "$tmp/data/in.txt"
  fi
  touch "$marks/go"
  check "$how: the run ends" wait_run "$run"
  check "$how: the task saw the new content" python3 -c "
import json,sys
b = json.load(open('$tmp/run.json'))
sys.exit(0 if b['status']=='succeeded' and b['output']['stdout'].startswith('new $how') else 1)"
done
# The staging at the replaced input's use was measured: a millisecond, not worth staging ahead.
run=$(ctl trigger staged-replace)
touch "$marks/go"
check "a run after a fast staging ends" wait_run "$run"
status_is 200 GET /prefetch
check "and its input was not staged ahead again" json_has "[t['prewarms'] for t in b['tasks'] if t['chain_id']=='staged-replace' and t['task_id']=='reader'] == [1]"
check "history records the bytes staged" bash -c "'$CHAINCTL' history --task reader -o json |
  python3 -c \"import json,sys; b=json.load(sys.stdin); sys.exit(0 if b['records'] and all(r.get('bytes_staged',0)>0 for r in b['records']) else 1)\""

# --- Figures ---
status_is 200 GET /metrics
check "GET /metrics is Prometheus text" grep -q '^chaind_prefetch_hits_total [0-9]' "$tmp/body"
check "with chaind's own CPU" grep -q '^chaind_cpu_seconds_total ' "$tmp/body"
check "chainctl stats" bash -c "'$CHAINCTL' stats -o table | grep -q 'hit rate'"
check "chainctl prefetch status" bash -c "'$CHAINCTL' prefetch status -o table | grep -q 'warm processes'"

# --- Shutdown: a prewarmed process does not outlive chaind. ---
rm -f "$marks"/work.*
run=$(ctl trigger pair)
check "work prewarmed again" poll_until 30 test -s "$marks/work.spawned"
warm_pid=$(head -n 1 "$marks/work.spawned")
check "alive before the shutdown" alive "$warm_pid"
kill -TERM "$chaind_pid"
touch "$marks/go"
check "chaind stops" poll_until 60 gone "$chaind_pid"
check "the prewarmed process is gone with it" gone "$warm_pid"
check "no budget was ever exceeded" bash -c "! grep -q 'over budget' '$tmp/chaind.log'"
check "what was measured is kept for the next start" python3 -c "
import json
t = json.load(open('$CHAINCTL_STATE_DIR/prefetch.json'))['tasks']
assert any(v['task_id'] == 'work' and v['startups'] for v in t.values())"

# --- Tight budget: one warm process; four spawn tasks wanted at once. ---
gated_chain fan <<EOF
$(for i in 1 2 3 4; do printf '  - {task_id: w%s, executable_code_location: %s, dependencies: [gate], prewarm: spawn, env: {MARKS: %s, NAME: w%s}}\n' "$i" "$tmp/spawned.sh" "$marks" "$i"; done)
EOF
start_chaind --prefetch-processes 1 --prefetch-ttl 2s
check "apply fan" ctl apply -f "$tmp/fan.yaml"
# Warm processes: started (w*.spawned), alive, and not yet given their input (w*.took).
warm_count() {
  local n=0 pid
  for pid in $(cat "$marks"/w*.spawned 2>/dev/null); do
    grep -qsx "$pid" "$marks"/w*.took && continue
    # Alive, not a zombie: one just stopped is dead, only not reaped yet.
    [[ $(cut -d' ' -f3 "/proc/$pid/stat" 2> /dev/null) == [RSD] ]] && n=$((n + 1))
  done
  echo "$n"
}
# sample_warm: notes the most warm processes seen; succeeds once one is warm.
max_seen=0
sample_warm() {
  local n
  n=$(warm_count)
  ((n > max_seen)) && max_seen=$n
  ((n >= 1))
}
for round in 1 2 3; do
  run=$(ctl trigger fan)
  # The first run teaches the model; from the second on, a w* is prewarmed while the gate waits.
  ((round > 1)) && check "fan run $round: one w* is prewarmed while the gate waits" \
    poll_until 20 sample_warm
  for _ in $(seq 1 25); do
    sample_warm
    sleep 0.02
  done
  touch "$marks/go"
  check "fan run $round ends" wait_run "$run"
done
check "one warm process at most (seen $max_seen)" test "$max_seen" -le 1
status_is 200 GET /prefetch
check "the daemon reports the budget" json_has "b['budgets']['processes'] == 1 and b['warm']['processes'] <= 1"
check "no budget was ever exceeded (the daemon checks at every prewarm)" bash -c "! grep -q 'over budget' '$tmp/chaind.log'"
kill -TERM "$chaind_pid"
check "chaind stops" poll_until 60 gone "$chaind_pid"

# --- --no-prefetch: nothing prewarmed, inputs still staged at start. ---
rm -f "$marks"/*
start_chaind --no-prefetch
run=$(ctl trigger pair)
check "gate runs" poll_until 30 bash -c "'$CHAINCTL' get run $run -o json | grep -q '\"running\"'"
status_is 200 GET /prefetch
check "no prewarm with --no-prefetch" json_has "b['enabled'] is False and b['prewarms'] == 0 and b['pool'] == []"
touch "$marks/go"
check "the run ends" wait_run "$run"
check "the task ran cold" python3 -c "
import json,sys
b = json.load(open('$tmp/run.json'))
sys.exit(0 if b['status']=='succeeded' and b['output']['prewarmed']=='0' else 1)"
echo "changed" > "$tmp/data/in.txt"
touch "$marks/go"
check "inputs are staged without prefetching" bash -c "'$CHAINCTL' run -f '$tmp/staged.yaml' | grep -q changed"

finish
