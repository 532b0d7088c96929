#!/usr/bin/env bash
# End-to-end: the predictor (DESIGN.md §5). `chainctl model evaluate` offline on a generated
# history; with a real chaind: an imported 70/20/10 branch trained and predicted, the model
# persisted across a restart, a chain with no history predicted from its definition's
# prefetch_weight, and live runs learned online. Needs CHAINCTL, CHAIND (set by ctest).
set -uo pipefail
: "${CHAINCTL:?}" "${CHAIND:?}"

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
daemon_setup chainctl-predict

ctl() { "$CHAINCTL" "$@"; }
# json_is FILE PYTHON-EXPR: evaluated with `b` = the JSON in FILE
json_is() {
  python3 -c "import json,sys; b=json.load(open('$1')); sys.exit(0 if ($2) else 1)" ||
    { echo "  $1: $(head -c 400 "$1")" >&2; return 1; }
}

# --- A history: 100 runs of `route` (router, then x/y/z at 70/20/10, then report) and 20 runs
# of `etl` (fetch, parse, load), interleaved, 1 s between task starts. ---
python3 - "$tmp/trace.jsonl.gz" <<'PY'
import gzip, json, sys
pattern = "xxyxxzxxyx"  # 7 x, 2 y, 1 z
t = 1_700_000_000.0
with gzip.open(sys.argv[1], "wt") as f:
    def run(chain, rid, tasks):
        global t
        for task in tasks:
            f.write(json.dumps({"run_id": rid, "chain_id": chain, "task_id": task, "start": t,
                                "end": t + 0.5, "status": "succeeded"}) + "\n")
            t += 1
        t += 10
    for i in range(100):
        run("route", f"route-{i}", ["router", pattern[i % 10], "report"])
        if i % 5 == 0:
            run("etl", f"etl-{i}", ["fetch", "parse", "load"])
PY

# --- Offline: no daemon needed. ---
check "model evaluate runs without a daemon" bash -c \
  "CHAINCTL_NO_AUTOSTART=1 CHAINCTL_SOCKET=$tmp/none.sock '$CHAINCTL' model evaluate \
     --history '$tmp/trace.jsonl.gz' -o json > '$tmp/eval.json'"
check "it reports records, runs, the model and the three baselines" json_is "$tmp/eval.json" \
  "b['records'] == 360 and b['runs'] == 120 and
   set(b['baselines']) == {'frequency', 'markov1', 'markov2'} and
   all(set(s) == {'top1', 'top3', 'logloss'} for s in [b['model'], *b['baselines'].values()])"
check "the model is at least as good as the best baseline, with a lower log-loss" \
  json_is "$tmp/eval.json" \
  "b['model']['top1'] >= max(s['top1'] for s in b['baselines'].values()) and
   b['model']['logloss'] < min(s['logloss'] for s in b['baselines'].values())"
check "--chain keeps one chain's records" bash -c \
  "'$CHAINCTL' model evaluate --history '$tmp/trace.jsonl.gz' --chain etl -o json > '$tmp/etl.json'"
check "60 records of etl" json_is "$tmp/etl.json" "b['records'] == 60 and b['runs'] == 20"
check "the table names every predictor" bash -c \
  "'$CHAINCTL' model evaluate --history '$tmp/trace.jsonl.gz' -o table |
     grep -c '^\(model\|frequency\|markov1\|markov2\) ' | grep -qx 4"
printf '{"run_id":"a","chain_id":"c","task_id":"t","start":1,"end":2,"status":"succeeded"}\n{oops\n' \
  > "$tmp/bad.jsonl"
ctl model evaluate --history "$tmp/bad.jsonl" > /dev/null 2> "$tmp/bad.err"
check "a bad line: exit 2" test $? -eq 2
check "naming the file and line" grep -q "^chainctl: $tmp/bad.jsonl:2: " "$tmp/bad.err"
ctl model evaluate --history "$tmp/trace.jsonl.gz" --set max_order=7 > /dev/null 2> "$tmp/set.err"
check "a parameter out of range: exit 2" test $? -eq 2
check "saying which" grep -q "max_order" "$tmp/set.err"
ctl model evaluate --history "$tmp/trace.jsonl.gz" --set nope=1 > /dev/null 2> "$tmp/set.err"
check "an unknown parameter: exit 2" test $? -eq 2
ctl model evaluate > /dev/null 2>&1
check "no --history: exit 2" test $? -eq 2

# --- With chaind: import, train, predict. ---
check "chaind starts" start_chaind --train-every 100000 --train-interval 1h
check "history import" bash -c "'$CHAINCTL' history import '$tmp/trace.jsonl.gz' 2> /dev/null"
check "model train" bash -c "'$CHAINCTL' model train -o json > '$tmp/train.json'"
check "the trained model learned every record" json_is "$tmp/train.json" \
  "b['records'] == 360 and b['through_seq'] == 360 and b['version'] >= 1"
version=$(python3 -c "import json; print(json.load(open('$tmp/train.json'))['version'])")
check "predict --after router --chain route" bash -c \
  "'$CHAINCTL' predict --after router --chain route -o json > '$tmp/p.json'"
check "x, y, z ranked with about 0.7, 0.2, 0.1" json_is "$tmp/p.json" "
  [c['task_id'] for c in b['candidates'][:3]] == ['x', 'y', 'z'] and
  abs(b['candidates'][0]['probability'] - 0.7) < 0.06 and
  abs(b['candidates'][1]['probability'] - 0.2) < 0.06 and
  abs(b['candidates'][2]['probability'] - 0.1) < 0.06 and
  b['candidates'][0]['expected_in_ms'] == 1000 and b['model_version'] == $version"
check "without --chain the task's chain is found" bash -c \
  "'$CHAINCTL' predict --after router -o json > '$tmp/p2.json'"
check "the same answer" json_is "$tmp/p2.json" \
  "b['chain_id'] == 'route' and b['candidates'] == json.load(open('$tmp/p.json'))['candidates']"
check "several --after: the run's last tasks" bash -c \
  "'$CHAINCTL' predict --after router --after x --chain route -o json > '$tmp/p3.json'"
check "after x comes the report" json_is "$tmp/p3.json" \
  "b['candidates'][0]['task_id'] == 'report' and b['candidates'][0]['probability'] > 0.9"
check "predict without arguments: the next chain" bash -c \
  "'$CHAINCTL' predict -o json > '$tmp/chains.json'"
check "after route, route again, 13 s on (3 tasks and the pause)" json_is "$tmp/chains.json" \
  "b['chains'][0]['chain_id'] == 'route' and b['chains'][0]['expected_in_ms'] == 13000"
ctl predict --after nope > /dev/null 2> "$tmp/nope.err"
check "an unknown task: exit 4 (not found)" test $? -eq 4
check "saying to name the chain" grep -q "no chain in the history has run task nope" "$tmp/nope.err"
check "limit=x: 400" status_is 400 GET '/predictions?after=router&limit=x'
check "naming limit" json_has "b['error']['code'] == 'bad_parameter' and 'limit' in b['error']['message']"

# --- The model is persisted: a restarted chaind answers with it at once. ---
kill -TERM "$chaind_pid" && wait "$chaind_pid"
check "chaind restarts" start_chaind --train-every 100000 --train-interval 1h
check "model status" bash -c "'$CHAINCTL' model status -o json > '$tmp/status.json'"
check "the same model version, not training" json_is "$tmp/status.json" \
  "b['version'] == $version and not b['training'] and b['records'] == 360"
check "the same predictions" bash -c \
  "'$CHAINCTL' predict --after router --chain route -o json > '$tmp/p4.json'"
check "equal to those before the restart" json_is "$tmp/p4.json" \
  "b['candidates'] == json.load(open('$tmp/p.json'))['candidates']"

# --- A chain without history: its definition and prefetch weights decide. ---
cat > "$tmp/fan.yaml" <<'YAML'
chain_id: fan
tasks:
  - {task_id: start, command: "echo '{}'"}
  - {task_id: light, dependencies: [start], prefetch_weight: 0.2, command: "echo '{}'"}
  - {task_id: heavy, dependencies: [start], prefetch_weight: 0.9, command: "echo '{}'"}
  - {task_id: medium, dependencies: [start], prefetch_weight: 0.5, command: "echo '{}'"}
  - {task_id: end, dependencies: [light, heavy, medium], command: "echo '{}'"}
YAML
check "apply fan" bash -c "'$CHAINCTL' apply -f '$tmp/fan.yaml' > /dev/null"
check "predict --chain fan: its root first" bash -c \
  "'$CHAINCTL' predict --chain fan -o json > '$tmp/f1.json'"
check "only the root can start first" json_is "$tmp/f1.json" \
  "[c['task_id'] for c in b['candidates']] == ['start'] and b['from_definition']"
check "predict --after start --chain fan" bash -c \
  "'$CHAINCTL' predict --after start --chain fan -o json > '$tmp/f2.json'"
check "ranked by prefetch_weight, end ruled out" json_is "$tmp/f2.json" \
  "[c['task_id'] for c in b['candidates']] == ['heavy', 'medium', 'light']"

# --- Live runs are learned online, without a training. ---
for _ in 1 2 3; do
  ctl run -f "$tmp/fan.yaml" --progress quiet > /dev/null 2>&1
done
check "model status counts the live attempts" bash -c \
  "'$CHAINCTL' model status -o json > '$tmp/status2.json'"
check "15 attempts learned since the training" json_is "$tmp/status2.json" \
  "b['observed_since_training'] == 15 and b['version'] == $version"
check "predict --after start --chain fan again" bash -c \
  "'$CHAINCTL' predict --after start --chain fan -o json > '$tmp/f3.json'"
check "history now weighs in: every candidate has a timing" json_is "$tmp/f3.json" \
  "all(c['timing'] is not None and c['timing']['duration_ms']['n'] == 3
       for c in b['candidates'])"

finish
