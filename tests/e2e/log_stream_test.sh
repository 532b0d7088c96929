#!/usr/bin/env bash
# End-to-end, issue 15 item 5: a task's log is read back in pieces. 40 clients asking for a
# 200 MB log and not reading it pushed chaind's RSS from 113 MB to 801 MB: each answer (16 MiB)
# was built in memory. Now a log answer is sent 64 KiB at a time as the client takes it.
# Needs CHAINCTL, CHAIND (set by ctest).
set -uo pipefail
: "${CHAINCTL:?}" "${CHAIND:?}"

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
daemon_setup chainctl-logstream

check "chaind starts" start_chaind
# 20 MB of numbered lines on stderr (more than the 16 MiB an answer holds).
cat > "$tmp/loud.yaml" <<'YAML'
chain_id: loud
tasks:
  - task_id: loud
    command: "seq -f 'line %08g of a loud task' 1 700000 >&2; echo '{}'"
YAML
check "apply" bash -c "'$CHAINCTL' apply -f '$tmp/loud.yaml' > /dev/null"
check "a run of it succeeds" bash -c "'$CHAINCTL' trigger loud --wait > /dev/null"
run=$(curl -s --unix-socket "$sock" 'http://localhost/runs?limit=1' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["runs"][0]["run_id"])')
log="$CHAINCTL_STATE_DIR/runs/$run/loud/attempt-1.log"
check "the task wrote its 20 MB log" test "$(stat -c %s "$log" 2> /dev/null)" = 20300000

get_log() {  # get_log QUERY OUT: the body in OUT, the head in OUT.head
  curl -sf --unix-socket "$sock" -D "$2.head" "http://localhost/runs/$run/tasks/loud/log$1" -o "$2"
}
check "GET log" get_log "" "$tmp/whole"
check "is its last 16 MiB, byte for byte" cmp "$tmp/whole" <(tail -c $((16 << 20)) "$log")
check "marked truncated" grep -qi "^x-chainctl-log-truncated: 1" "$tmp/whole.head"
check "with the offset to ask from next" grep -qi "^x-chainctl-log-end: 20300000" "$tmp/whole.head"
check "sent in chunks, not built whole" grep -qi "^transfer-encoding: chunked" "$tmp/whole.head"
check "GET log?offset=1000" get_log "?offset=1000" "$tmp/from"
check "is 16 MiB from byte 1000" cmp "$tmp/from" <(tail -c +1001 "$log" | head -c $((16 << 20)))
check "GET log?tail=3" get_log "?tail=3" "$tmp/tail"
check "is its last 3 lines" cmp "$tmp/tail" <(tail -n 3 "$log")
check "chainctl logs RUN TASK prints the same as GET log" \
  cmp <("$CHAINCTL" logs "$run" loud) "$tmp/whole"

# --- 40 clients ask for it and do not read: chaind holds a piece for each, not 16 MiB. ---
pid=$(daemon_pid)
rss() { awk '/^VmRSS/ {print $2}' "/proc/$pid/status"; }
before=$(rss)
cat > "$tmp/idle_readers.py" <<'PY'
import socket, sys
path, target, out = sys.argv[1], sys.argv[2], sys.argv[3]
clients = []
for _ in range(40):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % target).encode())
    head = b""
    while b"\r\n\r\n" not in head:  # answered: chaind has begun to send the body
        head += s.recv(1)
    clients.append(s)
open(out, "w").write("ready\n")
sys.stdin.read()  # held open, unread, until the test closes our stdin
PY
mkfifo "$tmp/hold"
python3 "$tmp/idle_readers.py" "$sock" "/runs/$run/tasks/loud/log" "$tmp/ready" < "$tmp/hold" &
readers=$!
exec 7> "$tmp/hold"
check "40 clients are answered and read nothing" poll 20 test -s "$tmp/ready"
after=$(rss)
echo "chaind RSS with 40 readers that do not read: $before -> $after KB"
check "chaind grew by less than 64 MB for them (was 40 x 16 MiB): $before -> $after KB" \
  test $((after - before)) -lt $((64 << 10))
check "chaind serves others meanwhile" status_is 200 GET /health
exec 7>&-
wait "$readers"
check "and after they leave" status_is 200 GET /health

# --- chaind --max-log 2Mi: the 20 MB log keeps its first and last MiB on disk. ---
check "chaind stops" stop_chaind
check "chaind starts with --max-log 2Mi" start_chaind --max-log 2Mi
check "a run of the loud chain succeeds" bash -c "'$CHAINCTL' trigger loud --wait > /dev/null"
run=$(curl -s --unix-socket "$sock" 'http://localhost/runs?limit=1' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["runs"][0]["run_id"])')
log="$CHAINCTL_STATE_DIR/runs/$run/loud/attempt-1.log"
check "its log takes at most 2 MiB of disk: $(du -k "$log" | cut -f1) KB" \
  test "$(du -k "$log" | cut -f1)" -le $((2048 + 8))
"$CHAINCTL" logs "$run" loud > "$tmp/bounded" 2> /dev/null
check "chainctl logs shows its first line" test "$(head -n 1 "$tmp/bounded")" = "line 00000001 of a loud task"
check "its last line" test "$(tail -n 1 "$tmp/bounded")" = "line 00700000 of a loud task"
check "and where bytes were dropped, how many" \
  grep -q "^\[chaind: [0-9]* bytes of this log were dropped here, to keep it within chaind --max-log\]$" "$tmp/bounded"
check "and no zeros" bash -c "! tr -d '\n' < '$tmp/bounded' | grep -qaP '\x00'"

finish
