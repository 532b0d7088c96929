#!/usr/bin/env bash
# End-to-end: importing history JSONL v1 into a real chaind, with `chainctl history import`
# (.jsonl.gz, stdin, batches) and with POST /history directly: records read back unchanged,
# all or nothing on a bad line, 415 and 413; an import run again stores nothing twice. Needs CHAINCTL, CHAIND (set by ctest).
set -uo pipefail
: "${CHAINCTL:?}" "${CHAIND:?}"

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
daemon_setup chainctl-hist

ctl() { "$CHAINCTL" "$@"; }
py() { python3 -c "$@"; }

# stored: the number of records in the history (all of them, through export).
stored() {
  ctl history export "$tmp/all.jsonl" 2>/dev/null && wc -l < "$tmp/all.jsonl"
}
stored_is() {  # stored_is N
  local n
  n=$(stored)
  [[ "$n" == "$1" ]] || { echo "  stored: $n records, expected $1" >&2; return 1; }
}
# records CHAIN COUNT START: COUNT JSONL v1 lines of chain CHAIN, 50 tasks a run, a second apart
# from Unix time START.
records() {
  py "
import json
for i in range($2):
    print(json.dumps({'run_id': f'$1-run{i // 50}', 'chain_id': '$1', 'task_id': f't{i % 50}',
                      'start': $3 + i, 'end': $3 + 0.5 + i, 'status': 'succeeded'}))"
}

# A 6 MiB body limit: the CLI's batches (at most 4 MiB) fit, a 7 MiB body does not.
start_chaind --max-body 6Mi || exit 1

# --- A small generated trace, gzip-compressed: v1 fields and chainctl's extras. ---
py "
import gzip, json
with gzip.open('$tmp/small.jsonl.gz', 'wt') as f:
    for run in range(3):
        for i, task in enumerate(['fetch', 'clean', 'train', 'report']):
            start = 1711562944.0 + run * 100 + i * 10
            r = {'run_id': f'demo-run{run}', 'chain_id': 'demo', 'task_id': task,
                 'instance_id': f'{task}_ID{run}{i}', 'start': start, 'end': start + 7.25,
                 'status': 'succeeded', 'cpu_s': 1.5 + i, 'bytes_in': 1000 * i}
            if task == 'train' and run == 1:
                r.update(status='failed', attempt=2, cause='exit 3', cold=True)
            if task == 'report' and run == 2:
                r.update(status='failed', cancelled=True, cause='cancelled')
            f.write(json.dumps(r, separators=(',', ':')) + '\n')
"
check "history import FILE.jsonl.gz" bash -c \
  "'$CHAINCTL' history import '$tmp/small.jsonl.gz' 2> '$tmp/import.err'"
check "it says how many" grep -qx "imported 12 records from $tmp/small.jsonl.gz" "$tmp/import.err"
check "history --chain shows them" bash -c "'$CHAINCTL' history --chain demo -o json > '$tmp/h.json'"
check "twelve records, the failed attempt and the cancelled one" py "
import json
rs = json.load(open('$tmp/h.json'))['records']
assert len(rs) == 12, len(rs)
by = {(r['run_id'], r['task_id']): r for r in rs}
t = by[('demo-run1', 'train')]
assert t['status'] == 'failed' and t['attempt'] == 2 and t['cause'] == 'exit 3' and t['cold'], t
assert by[('demo-run2', 'report')]['status'] == 'cancelled'
assert by[('demo-run0', 'fetch')]['start_unix_ms'] == 1711562944000
assert sorted(r['seq'] for r in rs) == list(range(1, 13))"
check "round trip: history export gives the imported records back unchanged" bash -c "
  '$CHAINCTL' history export '$tmp/back.jsonl' --chain demo 2>/dev/null && python3 -c \"
import gzip, json
a = [json.loads(l) for l in gzip.open('$tmp/small.jsonl.gz', 'rt')]
b = [json.loads(l) for l in open('$tmp/back.jsonl')]
assert a == b, (a[:2], b[:2])\""

# --- Stdin, -o json, and an import in several batches (at most 20,000 records each). ---
records big 25000 1712000000 > "$tmp/big.jsonl"
check "history import - -o json: two batches" bash -c \
  "'$CHAINCTL' history import - -o json < '$tmp/big.jsonl' > '$tmp/big.json' 2> '$tmp/big.err'"
check "the JSON summary" py "
import json
b = json.load(open('$tmp/big.json'))
assert b == {'file': '-', 'imported': 25000, 'skipped': 0, 'batches': 2, 'first_seq': 13,
            'last_seq': 25012}, b"
check "it says how many" grep -qx "imported 25000 records from -" "$tmp/big.err"
check "all stored" stored_is 25012

# --- A bad line: exit 2 with the file's line, nothing sent. ---
head -n 2 "$tmp/big.jsonl" > "$tmp/bad.jsonl"
echo '{"run_id":"x","chain_id":"bad","task_id":"t","start":1,"end":2}' >> "$tmp/bad.jsonl"
tail -n 3 "$tmp/big.jsonl" >> "$tmp/bad.jsonl"
ctl history import "$tmp/bad.jsonl" 2> "$tmp/bad.err"
check "a bad line 3: exit 2" test $? -eq 2
check "the message names FILE:3" grep -qF "$tmp/bad.jsonl:3: missing required field \"status\"" \
  "$tmp/bad.err"
check "nothing stored" stored_is 25012
gzip -c "$tmp/big.jsonl" | head -c 30000 > "$tmp/cut.jsonl.gz"
ctl history import "$tmp/cut.jsonl.gz" 2> "$tmp/cut.err"
check "a truncated .gz: exit 2" test $? -eq 2
check "the message says so" grep -qE "^chainctl: $tmp/cut.jsonl.gz:[0-9]+: the gzip stream ends early" \
  "$tmp/cut.err"
ctl history import "$tmp/none.jsonl" 2> /dev/null
check "a missing file: exit 2" test $? -eq 2
ctl history import "$tmp/small.jsonl.gz" --chain demo 2> /dev/null
check "import with a filter: exit 2" test $? -eq 2
ctl history import 2> /dev/null
check "import without FILE: exit 2" test $? -eq 2
check "nothing stored by any" stored_is 25012

# --- POST /history directly. ---
one='{"run_id":"curl-run","chain_id":"curl","task_id":"t","start":5,"end":6,"status":"succeeded"}'
printf '%s\n%s\n%s\n%s\n' "$one" "" 'not json' "$one" > "$tmp/bad_body.jsonl"
check "a bad line: 422" status_is 422 POST /history -H 'Content-Type: application/x-ndjson' \
  --data-binary "@$tmp/bad_body.jsonl"
check "invalid_history, naming line 3" json_has \
  "b['error']['code'] == 'invalid_history' and b['error']['message'].startswith('line 3: not JSON')
   and [d['line'] for d in b['error']['details']] == [3]"
check "nothing stored" stored_is 25012
check "wrong content type: 415" status_is 415 POST /history -H 'Content-Type: application/json' \
  --data-binary "$one"
head -c $((7 << 20)) /dev/zero | tr '\0' ' ' > "$tmp/huge.jsonl"
check "a body over --max-body: 413" status_is 413 POST /history \
  -H 'Content-Type: application/x-ndjson' --data-binary "@$tmp/huge.jsonl"
check "empty body without a content type: 200" status_is 200 POST /history -H 'Content-Type:' \
  --data-binary ''
check "imported 0" json_has "b == {'imported': 0, 'skipped': 0}"
check "application/jsonl: 200" status_is 200 POST /history \
  -H 'Content-Type: application/jsonl' --data-binary "$one"
check "first_seq and last_seq" json_has \
  "b == {'imported': 1, 'skipped': 0, 'first_seq': 25013, 'last_seq': 25013}"
check "PUT /history: 405" status_is 405 PUT /history
check "one more stored" stored_is 25013
check "the same line again: skipped" status_is 200 POST /history \
  -H 'Content-Type: application/jsonl' --data-binary "$one"
check "imported 0, skipped 1" json_has "b == {'imported': 0, 'skipped': 1}"

# --- Idempotent import: one killed mid-way and run again stores each record once. ---
records again 5000 1713000000 > "$tmp/again.jsonl"
check "the first 3,000 records stored (as by the batches before a kill)" bash -c \
  "head -n 3000 '$tmp/again.jsonl' | '$CHAINCTL' history import - 2> /dev/null"
check "the import run again" bash -c \
  "'$CHAINCTL' history import '$tmp/again.jsonl' -o json > '$tmp/again.json' 2> '$tmp/again.err'"
check "stores the other 2,000 and skips the 3,000" py "
import json
b = json.load(open('$tmp/again.json'))
assert b['imported'] == 2000 and b['skipped'] == 3000, b"
check "and says so" grep -qx "imported 2000 records from $tmp/again.jsonl (3000 stored already, skipped)" \
  "$tmp/again.err"
check "each record once" stored_is 30013
check "the small trace again: nothing new" bash -c \
  "'$CHAINCTL' history import '$tmp/small.jsonl.gz' 2> '$tmp/small2.err'"
check "12 skipped" grep -qx "imported 0 records from $tmp/small.jsonl.gz (12 stored already, skipped)" \
  "$tmp/small2.err"
check "still each record once" stored_is 30013

finish
