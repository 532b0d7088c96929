#!/usr/bin/env bash
# End-to-end: execution control on a real chaind (DESIGN.md §2, §4) — a router's output picks
# one of three branches, trigger rules, retries with their backoff visible in the history,
# a task's timeout killing it and its child (which ignore SIGTERM) within grace + 1 s, and
# the chain's timeout. Needs CHAINCTL, CHAIND, SOURCE_DIR (set by ctest).
set -uo pipefail
: "${CHAINCTL:?}" "${CHAIND:?}" "${SOURCE_DIR:?}"

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
daemon_setup chainctl-control

# run_json RUN PYTHON-EXPR: prints the expression, evaluated with `b` = the run's record
run_json() {
  "$CHAINCTL" get run "$1" -o json |
    python3 -c "import json,sys; b=json.load(sys.stdin); print($2)"
}
last_run() {
  "$CHAINCTL" list runs --limit 1 -o json |
    python3 -c "import json,sys; print(json.load(sys.stdin)['runs'][0]['run_id'])"
}
now_ms() { date +%s%3N; }
# A process that has exited (a zombie waiting for its parent counts as gone).
gone() { [[ ! -e /proc/$1 || $(cut -d' ' -f3 "/proc/$1/stat" 2> /dev/null) == [ZX] ]]; }

check "chaind starts" start_chaind --jobs 4 --kill-grace 2s

# --- A router picks one of three branches; the others are skipped. ---
cat > "$tmp/branches.yaml" <<'YAML'
chain_id: branches
tasks:
  - task_id: router
    command: cat
    output_schema: {type: object, required: [route], properties: {route: {enum: [a, b, c]}}}
  - {task_id: a, dependencies: [router], command: "echo '{\"took\":\"a\"}'", when: {path: /router/route, op: eq, value: a}}
  - {task_id: b, dependencies: [router], command: "echo '{\"took\":\"b\"}'", when: {path: /router/route, op: eq, value: b}}
  - {task_id: c, dependencies: [router], command: "echo '{\"took\":\"c\"}'", when: {path: /router/route, op: eq, value: c}}
  - task_id: join          # one_success: runs after the branch taken
    dependencies: [a, b, c]
    trigger_rule: one_success
    command: cat
  - task_id: strict        # all_success: skipped with the branches not taken
    dependencies: [a, b, c]
    command: cat
YAML
check "apply branches" bash -c "'$CHAINCTL' apply -f '$tmp/branches.yaml' > /dev/null"
for route in a b c; do
  check "route $route runs" bash -c "'$CHAINCTL' trigger branches --input '{\"route\": \"$route\"}' --wait > /dev/null"
  run=$(last_run)
  check "route $route: only branch $route ran, the others were skipped" test \
    "$(run_json "$run" "{t['task_id']: t['state'] for t in b['tasks'] if t['task_id'] in 'abc'}")" = \
    "$(python3 -c "print({x: 'succeeded' if x == '$route' else 'skipped' for x in 'abc'})")"
  check "route $route: join got the branch's output and null for the others" test \
    "$("$CHAINCTL" get run "$run" -o json | python3 -c "import json,sys; print(json.load(sys.stdin)['output']['join'])")" = \
    "$(python3 -c "print({x: {'took': x} if x == '$route' else None for x in 'abc'})")"
  check "route $route: strict (all_success) skipped" test "$(run_json "$run" "b['tasks'][5]['state']")" = skipped
  check "route $route: the skips say why" bash -c "'$CHAINCTL' get run $run -o json | grep -q 'when: '"
done
check "a route outside the schema fails the router: exit 1" bash -c \
  "'$CHAINCTL' trigger branches --input '{\"route\": \"d\"}' --wait > /dev/null 2> '$tmp/d.err'; test \$? -eq 1"
check "and says which field" grep -q "output_schema: /route" "$tmp/d.err"

# --- Trigger rules with a failed dependency. ---
cat > "$tmp/rules.yaml" <<'YAML'
chain_id: rules
tasks:
  - {task_id: ok, command: "echo '{\"fine\":true}'"}
  - {task_id: bad, command: "exit 3"}
  - {task_id: after_all, dependencies: [ok, bad], trigger_rule: all_done, command: cat}
  - {task_id: after_success, dependencies: [ok, bad], command: cat}
  - {task_id: after_one, dependencies: [ok, bad], trigger_rule: one_success, command: cat}
YAML
check "apply rules" bash -c "'$CHAINCTL' apply -f '$tmp/rules.yaml' > /dev/null"
check "rules: the run fails (exit 1)" bash -c "'$CHAINCTL' trigger rules --wait > /dev/null 2>&1; test \$? -eq 1"
run=$(last_run)
check "all_done ran, all_success is upstream_failed, one_success ran" test \
  "$(run_json "$run" "[t['state'] for t in b['tasks']]")" = \
  "['succeeded', 'failed', 'succeeded', 'upstream_failed', 'succeeded']"
check "one_success got null for the failed dependency" bash -c \
  "'$CHAINCTL' logs $run > /dev/null && curl -s --unix-socket '$sock' http://localhost/runs/$run/tasks/after_one/output | grep -q '\"bad\":null'"

# --- Fails twice, then succeeds: three attempts, 300 ms then 600 ms apart (75% to 125%: jitter). ---
cat > "$tmp/retry.yaml" <<YAML
chain_id: retry
tasks:
  - task_id: flaky
    command: |
      n=\$(cat $tmp/count 2> /dev/null || echo 0); echo \$((n + 1)) > $tmp/count
      test \$n -ge 2 || { echo "failing attempt \$CHAIN_ATTEMPT" >&2; exit 7; }
      echo '{"attempt": '\$CHAIN_ATTEMPT'}'
    retry: {max_attempts: 3, initial_backoff: 300ms, multiplier: 2, max_backoff: 10s}
YAML
check "apply retry" bash -c "'$CHAINCTL' apply -f '$tmp/retry.yaml' > /dev/null"
check "retry: succeeds on attempt 3" bash -c \
  "'$CHAINCTL' trigger retry --wait > '$tmp/retry.out' && grep -q '\"attempt\": 3' '$tmp/retry.out'"
run=$(last_run)
check "history: three attempts, their causes and the backoff between them" bash -c \
  "'$CHAINCTL' history --run $run -o json | python3 -c \"
import json,sys
r = sorted(json.load(sys.stdin)['records'], key=lambda r: r['attempt'])
assert [(x['attempt'], x['status'], x.get('cause') or '') for x in r] == [(1, 'failed', 'exit 7'), (2, 'failed', 'exit 7'), (3, 'succeeded', '')], r
gaps = [r[i + 1]['start_unix_ms'] - r[i]['end_unix_ms'] for i in range(2)]
assert 225 <= gaps[0] and 450 <= gaps[1], gaps  # the backoff with its least jitter
print('backoff gaps (ms):', gaps, file=sys.stderr)\""
check "each attempt has its own log" bash -c \
  "curl -s --unix-socket '$sock' 'http://localhost/runs/$run/tasks/flaky/log?attempt=2' | grep -q 'failing attempt 2'"

# --- timeout: 1s on a task that ignores SIGTERM and has a child: SIGKILL after the grace. ---
cat > "$tmp/stuck.yaml" <<YAML
chain_id: stuck
tasks:
  - task_id: stuck
    command: |
      trap '' TERM
      sleep 1000 &
      echo \$\$ \$! > $tmp/stuck.pids
      sleep 1000
    resource_requirements: {timeout: 1s}
YAML
check "apply stuck" bash -c "'$CHAINCTL' apply -f '$tmp/stuck.yaml' > /dev/null"
check "stuck: times out (exit 1)" bash -c "'$CHAINCTL' trigger stuck --wait > /dev/null 2> '$tmp/stuck.err'; test \$? -eq 1"
read -r shell child < "$tmp/stuck.pids"
for _ in $(seq 1 500); do  # SIGKILL is asynchronous: until both are gone, at most 10 s
  gone "$shell" && gone "$child" && break
  sleep 0.02
done
gone_ms=$(now_ms)
check "the task and its child are gone" bash -c "$(declare -f gone); gone $shell && gone $child"
check "the failure says timeout" grep -q "timed out after 1s" "$tmp/stuck.err"
"$CHAINCTL" history --chain stuck -o json > "$tmp/stuck.json"
check "history cause: timeout" grep -q '"cause": "timeout"' "$tmp/stuck.json"
started_ms=$(python3 -c "import json; print(json.load(open('$tmp/stuck.json'))['records'][0]['start_unix_ms'])")
elapsed=$((gone_ms - started_ms))
check "gone within timeout + grace + 1 s of its start (${elapsed} ms)" test "$elapsed" -le 4000

# --- The chain's timeout stops the whole run. ---
cat > "$tmp/late.yaml" <<'YAML'
chain_id: late
timeout: 1s
tasks:
  - {task_id: first, command: "echo '{}'"}
  - {task_id: forever, dependencies: [first], command: "exec sleep 1000"}
  - {task_id: never, dependencies: [forever], command: cat}
YAML
check "apply late" bash -c "'$CHAINCTL' apply -f '$tmp/late.yaml' > /dev/null"
check "late: fails (exit 1)" bash -c "'$CHAINCTL' trigger late --wait > /dev/null 2> '$tmp/late.err'; test \$? -eq 1"
check "saying the chain's timeout passed" grep -q "went over its timeout of 1s" "$tmp/late.err"
run=$(last_run)
check "first succeeded, forever and never cancelled" test \
  "$(run_json "$run" "[t['state'] for t in b['tasks']]")" = "['succeeded', 'cancelled', 'cancelled']"

# --- Ctrl-C on `chainctl trigger --wait` cancels the run and exits 130. ---
cat > "$tmp/idle.yaml" <<'YAML'
chain_id: idle
tasks:
  - {task_id: idle, command: "exec sleep 1000"}
YAML
check "apply idle" bash -c "'$CHAINCTL' apply -f '$tmp/idle.yaml' > /dev/null"
"$CHAINCTL" trigger idle --wait > /dev/null 2> "$tmp/idle.err" &
waiter=$!
for _ in $(seq 1 500); do  # until its task runs
  run=$(last_run)
  [[ $(run_json "$run" "b['chain_id'], b['tasks'][0]['state']") == "idle running" ]] && break
  sleep 0.02
done
kill -INT $waiter
wait $waiter
check "Ctrl-C on trigger --wait exits 130" test $? -eq 130
check "and cancels the run" grep -q "interrupted: $run cancelled" "$tmp/idle.err"

finish
