#!/usr/bin/env bash
# End-to-end: a real chaind, started by chainctl, driven by chainctl and curl.
# Needs CHAINCTL, CHAIND and SOURCE_DIR (set by ctest).
set -uo pipefail
: "${CHAINCTL:?}" "${CHAIND:?}" "${SOURCE_DIR:?}"

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
daemon_setup chainctl-e2e

chain=$SOURCE_DIR/examples/wordfreq/chain.yaml

# chainctl starts the daemon itself.
check "apply autostarts" bash -c "'$CHAINCTL' apply -f '$chain' -o json > '$tmp/apply.json'"
check "first apply stores version 1" python3 -c "
import json; b = json.load(open('$tmp/apply.json'))
assert b == {'chain_id': 'wordfreq', 'version': 1, 'created': True}, b"
check "socket mode 0600" test "$(stat -c %a "$sock")" = 600
check "state dir mode 0700" test "$(stat -c %a "$CHAINCTL_STATE_DIR")" = 700
check "re-apply is idempotent" bash -c "'$CHAINCTL' apply -f '$chain' -o table | grep -q 'version 1 unchanged'"

# Every endpoint with curl.
check "GET /chains" status_is 200 GET /chains
check "GET /chains lists it" json_has "b['chains'][0]['chain_id'] == 'wordfreq' and b['chains'][0]['tasks'] == 5"
check "GET /chains/wordfreq" status_is 200 GET /chains/wordfreq
check "definition has absolute paths" json_has "b['definition']['tasks'][0]['executable_code_location'].startswith('/')"
check "GET ?format=yaml" bash -c "curl -s --unix-socket '$sock' 'http://localhost/chains/wordfreq?format=yaml' | grep -q '^chain_id: wordfreq'"
check "GET ?version=1" status_is 200 GET '/chains/wordfreq?version=1'
check "GET ?version=9" status_is 404 GET '/chains/wordfreq?version=9'
check "GET ?version=x" status_is 400 GET '/chains/wordfreq?version=x'
check "GET /tasks" status_is 200 GET /tasks
check "GET /tasks lists 5" json_has "len(b['tasks']) == 5"
check "GET /tasks/collect" status_is 200 GET /tasks/collect
check "task used by wordfreq@1" json_has "b['versions'][0]['used_by'] == [{'chain_id': 'wordfreq', 'version': 1}]"
check "GET /health" status_is 200 GET /health
check "GET /version" status_is 200 GET /version
check "version has store format" json_has "b['api'] == 1 and b['store_format'] >= 1"

# A changed definition is a new version; the old one stays readable.
changed=$tmp/changed.yaml
sed -e 's/prefetch_weight: 0.5/prefetch_weight: 0.4/' \
  -e "s|: bin/|: $SOURCE_DIR/examples/wordfreq/bin/|" "$chain" > "$changed"
check "changed chain is version 2" bash -c "'$CHAINCTL' apply -f '$changed' -o json | grep -q '\"version\": 2'"
check "version 1 still readable" status_is 200 GET '/chains/wordfreq?version=1'
check "latest is 2 of [1,2]" bash -c "curl -s --unix-socket '$sock' http://localhost/chains/wordfreq | python3 -c 'import json,sys; b=json.load(sys.stdin); assert b[\"version\"] == 2 and b[\"versions\"] == [1, 2], b'"
check "chainctl get chain" bash -c "'$CHAINCTL' get chain wordfreq -o table | grep -q 'version 2 of 2'"
check "chainctl list chains" bash -c "'$CHAINCTL' list chains -o table | grep -q '^wordfreq  *2  *5'"
check "chainctl get task yaml" bash -c "'$CHAINCTL' get task count -o yaml | grep -q 'task_id: count'"

# Bad requests get their proper answer.
check "invalid YAML: 400" status_is 400 POST /chains -H 'Content-Type: application/yaml' --data-binary $'tasks: [1,\n'
check "invalid JSON: 400" status_is 400 POST /chains -H 'Content-Type: application/json' --data-binary '{"tasks": '
check "invalid chain: 422" status_is 422 POST /chains -H 'Content-Type: application/yaml' \
  --data-binary $'tasks:\n  - {task_id: a, command: x, dependencies: [lod]}\n'
check "422 lists the errors" json_has "b['error']['details'][0]['path'] == 'tasks[0].dependencies[0]' and b['error']['details'][0]['line'] == 2"
check "relative executable: 422" status_is 422 POST /chains -H 'Content-Type: application/yaml' \
  --data-binary $'tasks:\n  - {task_id: a, executable_code_location: run.sh}\n'
check "wrong content type: 415" status_is 415 POST /chains -H 'Content-Type: text/plain' --data-binary 'x'
check "unknown route: 404" status_is 404 GET /nope
check "unknown chain: 404" status_is 404 GET /chains/nope
check "wrong method: 405" status_is 405 PUT /chains
check "405 says what is allowed" json_has "b['error']['code'] == 'method_not_allowed'"
head -c $((17 * 1024 * 1024)) /dev/zero | tr '\0' 'a' > "$tmp/big"
check "body over 16 MiB: 413" status_is 413 POST /chains -H 'Content-Type: application/yaml' --data-binary "@$tmp/big"
check "errors are JSON" json_has "set(b['error']) >= {'code', 'message', 'details'}"
check "still serving" status_is 200 GET /health

# Raw clients: a header flood, a truncated body, garbage; the daemon answers
# or cuts them off and keeps serving.
check "header flood: 431" python3 - "$sock" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X-Flood: " + b"a" * 20000 + b"\r\n\r\n")
reply = s.recv(4096)
assert reply.startswith(b"HTTP/1.1 431"), reply[:80]
PY
check "truncated body, then hang up" python3 - "$sock" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(b"POST /chains HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
          b"Content-Length: 1000\r\n\r\n{\"tasks\": [")
s.close()
PY
check "garbage: 400" python3 - "$sock" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(b"\x00\x01\x02 not http at all\r\n\r\n")
reply = s.recv(4096)
assert reply.startswith(b"HTTP/1.1 400"), reply[:80]
PY
check "still serving after raw clients" status_is 200 GET /health

# Chains survive a restart and a kill -9.
check "daemon stop" bash -c "'$CHAINCTL' daemon stop | grep -q 'chaind stopped'"
check "socket removed on stop" test ! -e "$sock"
check "daemon status when stopped exits 3" bash -c "'$CHAINCTL' daemon status >/dev/null; [[ \$? -eq 3 ]]"
check "no autostart" bash -c "'$CHAINCTL' --no-autostart list chains 2>&1 | grep -q 'autostart is off'"
check "daemon start" bash -c "'$CHAINCTL' daemon start | grep -q 'chaind started'"
check "chains survive a restart" bash -c "'$CHAINCTL' list chains -o json | grep -q wordfreq"
pid=$(daemon_pid)
kill -9 "$pid"
check "stale socket left by kill -9" test -S "$sock"
check "chains survive kill -9 (autostart replaces the stale socket)" bash -c \
  "'$CHAINCTL' get chain wordfreq -o json | grep -q '\"version\": 2'"

# A second daemon on the same state dir or socket refuses to start.
check "second daemon, same state dir" bash -c "'$CHAIND' --socket '$tmp/other.sock' \
  --state-dir '$CHAINCTL_STATE_DIR' 2>&1 | grep -q 'another chaind (pid [0-9]*) is using the state directory'"
check "second daemon, same socket" bash -c "'$CHAIND' --socket '$sock' --state-dir '$tmp/state2' \
  2>&1 | grep -q 'a chaind is already listening on'"

# A client of another uid is refused (the socket is opened up for the test).
chmod 755 "$tmp" "$tmp/run"
chmod 666 "$sock"
check "other uid: 403" bash -c "[[ \$(setpriv --reuid=65534 --regid=65534 --clear-groups \
  curl -s -o /dev/null -w '%{http_code}' --unix-socket '$sock' http://localhost/health) == 403 ]]"
chmod 600 "$sock"

# A client that sends one byte and stalls is cut off with 408 (a second daemon
# with a short request timeout), and the daemon keeps serving.
"$CHAIND" --socket "$tmp/slow.sock" --state-dir "$tmp/slow-state" --request-timeout 1s \
  2>"$tmp/slow.log" &
slow_pid=$!
check "slow client: 408" python3 - "$tmp/slow.sock" <<'PY'
import socket, sys, time
deadline = time.time() + 30
while True:  # bounded poll until the daemon listens
    try:
        s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); break
    except OSError:
        assert time.time() < deadline, "chaind did not start"
        time.sleep(0.02)
s.sendall(b"G")
s.settimeout(30)
reply = s.recv(4096)
assert reply.startswith(b"HTTP/1.1 408"), reply[:80]
s2 = socket.socket(socket.AF_UNIX); s2.connect(sys.argv[1])
s2.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
assert s2.recv(4096).startswith(b"HTTP/1.1 200")
PY
kill "$slow_pid"
check "second daemon stops on SIGTERM with status 0" wait "$slow_pid"

# No descriptor leaks: the same count before and after 10,000 requests.
pid=$(daemon_pid)
before=$(ls /proc/"$pid"/fd | wc -l)
check "10,000 requests" python3 - "$sock" <<'PY'
import socket, sys
path = sys.argv[1]
for i in range(10000):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    s.sendall(b"GET /chains/wordfreq HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    assert data.startswith(b"HTTP/1.1 200"), data[:100]
PY
after=$(ls /proc/"$pid"/fd | wc -l)
check "no fd leak ($before before, $after after)" test "$before" -eq "$after"

# 100 concurrent clients each apply 20 chains to a fresh daemon: all 2,000
# stored, no error (bench/registry_load.cc; it also prints latencies).
if [[ -n "${REGISTRY_LOAD:-}" ]]; then
  check "100 clients x 20 chains" "$REGISTRY_LOAD" "$CHAIND" 100 20
fi

finish
