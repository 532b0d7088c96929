#!/usr/bin/env bash
# End-to-end, issue 15 items 1, 2 and 9: what a task prints, a worker replies, a client sends, a
# file is named or an input file gives are bytes until checked (DESIGN.md §3). Bytes that are not UTF-8 and JSON
# nested 100,000 deep used to kill chaind (type_error.316, SIGSEGV); now the task fails with
# the cause (or the request is refused), and chaind goes on, with everything stored readable.
# Needs CHAINCTL, CHAIND (set by ctest).
set -uo pipefail
: "${CHAINCTL:?}" "${CHAIND:?}"

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
daemon_setup chainctl-hostile

check "chaind starts" start_chaind
pid=$chaind_pid

# task_error RUN TASK: the task's error in the run's record
task_error() {
  "$CHAINCTL" get run "$1" -o json |
    python3 -c "import json,sys; print(next(t.get('error', '') for t in json.load(sys.stdin)['tasks'] if t['task_id'] == '$2'))"
}
alive() { kill -0 "$pid" 2> /dev/null && [[ "$(daemon_pid)" == "$pid" ]]; }

# A worker whose reply holds the byte 0xff in a string; JSON nested 100,000 deep.
cat > "$tmp/bad_worker.py" <<'PY'
import json, sys
for line in sys.stdin.buffer:
    request = json.loads(line)
    sys.stdout.buffer.write(b'{"id": %d, "output": "a\xff"}\n' % request["id"])
    sys.stdout.buffer.flush()
PY
echo "print('[' * 100000 + ']' * 100000)" > "$tmp/deep.py"
echo "print('{\"a\": ' * 100000 + '1' + '}' * 100000)" > "$tmp/deep_objects.py"
mkdir -p "$tmp/files/d$(printf '\377')"  # a folder whose name is not UTF-8, matched by a glob

cat > "$tmp/hostile.yaml" <<YAML
chain_id: hostile
tasks:
  - {task_id: raw, command: "printf '\\\\377'"}
  - {task_id: in_json, command: "printf '{\"name\": \"\\\\377\"}'"}
  - task_id: in_json_schema
    command: "printf '{\"name\": \"\\\\377\"}'"
    output_schema: {type: object}
  - {task_id: deep, command: "python3 $tmp/deep.py"}
  - {task_id: deep_objects, command: "python3 $tmp/deep_objects.py"}
  - {task_id: worker, mode: worker, command: "python3 $tmp/bad_worker.py"}
  - {task_id: named, command: "cat > /dev/null; echo '{}'", inputs: {files: ["$tmp/files/*"]}}
  - {task_id: pseudo, command: "cat > /dev/null; echo '{}'", inputs: {files: [/proc/cpuinfo]}}
  - {task_id: stderr_only, command: "printf '\\\\377' >&2; echo '{\"fine\": true}'"}
YAML
check "apply" bash -c "'$CHAINCTL' apply -f '$tmp/hostile.yaml' > /dev/null"
check "the run fails (exit 1), chaind does not crash" bash -c \
  "'$CHAINCTL' trigger hostile --wait > /dev/null 2> '$tmp/run.err'; test \$? -eq 1"
check "chaind is alive, the same process" alive
run=$("$CHAINCTL" list runs --limit 1 -o json | python3 -c "import json,sys; print(json.load(sys.stdin)['runs'][0]['run_id'])")
expect_error() {  # expect_error TASK TEXT
  local got
  got=$(task_error "$run" "$1")
  [[ "$got" == "$2" ]] || { echo "  $1: got '$got'" >&2; return 1; }
}
check "raw 0xff: output is not valid UTF-8" expect_error raw "output is not valid UTF-8 at byte 1 (0xff)"
check "0xff in a JSON string" expect_error in_json "output is not valid UTF-8 at byte 11 (0xff)"
check "0xff in a JSON string, with an output_schema" \
  expect_error in_json_schema "output is not valid UTF-8 at byte 11 (0xff)"
check "[ x 100,000: output nests deeper than 64 levels" \
  expect_error deep "output nests deeper than 64 levels"
check "{\"a\": x 100,000 too" expect_error deep_objects "output nests deeper than 64 levels"
worker_error_ok() {
  [[ "$(task_error "$run" worker)" == 'worker protocol error: the response is not valid UTF-8 at byte '*' (0xff)'* ]] ||
    { echo "  worker: got '$(task_error "$run" worker)'" >&2; return 1; }
}
check "a worker's reply with 0xff: a protocol error" worker_error_ok
check "a folder named with 0xff: refused, the name escaped" \
  expect_error named "inputs.files: $tmp/files/d\\xff: is a directory (stage its files with a glob)"
check "a file of /proc (size 0, data without end for some): refused, not read for ever" \
  expect_error pseudo "inputs.files: /proc/cpuinfo: not staged: it has no fixed size (it gives more than the 0 bytes it says it has, like the files under /proc); stage a copy of it"
check "0xff on stderr is fine: the task succeeded" test "$("$CHAINCTL" get run "$run" -o json |
  python3 -c "import json,sys; print([t['state'] for t in json.load(sys.stdin)['tasks'] if t['task_id'] == 'stderr_only'])")" = "['succeeded']"
check "the events stream reads as JSON" bash -c \
  "curl -sf --unix-socket '$sock' http://localhost/runs/$run/events | python3 -c 'import json,sys; [json.loads(l) for l in sys.stdin]'"
check "its log keeps the bytes as they were" bash -c \
  "curl -sf --unix-socket '$sock' http://localhost/runs/$run/tasks/stderr_only/log | od -An -tx1 | grep -q ff"

# --- Requests: a trigger body 100,000 deep, not UTF-8, a history line 100,000 deep. ---
python3 -c "print('{\"input\": ' + '[' * 100000 + ']' * 100000 + '}')" > "$tmp/deep.json"
check "a trigger body nested 100,000 deep: 422" \
  status_is 422 POST /chains/hostile/trigger --data-binary "@$tmp/deep.json"
check "saying why" json_has "b['error']['code'] == 'input_too_deep' and 'nests deeper than 64 levels' in b['error']['message']"
printf '{"input": "\377"}' > "$tmp/bad.json"
check "a trigger body that is not UTF-8: 400" status_is 400 POST /chains/hostile/trigger --data-binary "@$tmp/bad.json"
check "saying where" json_has "'not valid UTF-8 at byte 12' in b['error']['message']"
python3 -c "print('{\"run_id\": ' + '[' * 100000 + ']' * 100000 + '}')" > "$tmp/deep.jsonl"
check "a history line nested 100,000 deep: 422" status_is 422 POST /history \
  -H 'Content-Type: application/x-ndjson' --data-binary "@$tmp/deep.jsonl"
echo '{"run_id":"r","chain_id":"c","task_id":"t","start":1e400,"end":2,"status":"failed"}' > "$tmp/big.jsonl"
check "a history line with 1e400: 422" status_is 422 POST /history \
  -H 'Content-Type: application/x-ndjson' --data-binary "@$tmp/big.jsonl"
check "chaind is still the same process" alive

# --- Nothing stored is unreadable: a restarted chaind reads the run back. ---
check "chaind stops" bash -c "kill $pid && for i in \$(seq 1 500); do kill -0 $pid 2>/dev/null || exit 0; sleep 0.02; done; exit 1"
check "chaind starts again" start_chaind
check "the run reads back, failed" bash -c "'$CHAINCTL' get run $run -o json | python3 -c \"import json,sys; assert json.load(sys.stdin)['status'] == 'failed'\""
check "with the causes" expect_error raw "output is not valid UTF-8 at byte 1 (0xff)"

finish
