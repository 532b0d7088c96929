#!/usr/bin/env bash
# End-to-end: the task cache's commands on a real chaind (DESIGN.md §4 "Cache", §7):
# `chainctl cache stats|prune|clear` and GET /cache, POST /cache/prune, DELETE /cache; the
# folder (default STATE/task-cache, --cache-dir, $CHAINCTL_CACHE_DIR) and budget (--cache-size);
# chaind without a usable cache folder runs on and answers 503 no_cache (exit 3); the hash memo
# is saved at shutdown (STATE/hash-memo). The entries are made by hand: what prune and clear do
# to them does not depend on how they were stored.
# Needs CHAINCTL, CHAIND (set by ctest).
set -uo pipefail
: "${CHAINCTL:?}" "${CHAIND:?}"

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
daemon_setup chainctl-cache

ctl() { "$CHAINCTL" "$@"; }
# exits_with STATUS COMMAND...: the command exits with STATUS (its stderr in $tmp/err)
exits_with() {
  local expected=$1
  shift
  "$@" > "$tmp/out" 2> "$tmp/err"
  local got=$?
  [[ $got == "$expected" ]] || { echo "  exit $got, expected $expected: $(cat "$tmp/err")" >&2; return 1; }
}
# entry DIR KEY BYTES MTIME: an entry of the cache in DIR with a manifest of BYTES bytes, used
# at MTIME (touch -d)
entry() {
  local path=$1/entries/${2:0:2}/$2
  mkdir -p "$path" && head -c "$3" /dev/zero > "$path/manifest.json" && touch -d "$4" "$path/manifest.json"
}
# stats_are PYTHON-EXPR: `chainctl cache stats -o json`, evaluated with `b` = its answer
stats_are() {
  ctl cache stats -o json > "$tmp/stats.json" &&
    python3 -c "import json,sys; b=json.load(open('$tmp/stats.json')); sys.exit(0 if ($1) else 1)" ||
    { echo "  stats: $(cat "$tmp/stats.json")" >&2; return 1; }
}

# --- The default folder, in the state folder. ---
check "chaind starts" start_chaind
check "stats: an empty cache in STATE/task-cache, 5Gi" stats_are \
  "b == {'dir': '$CHAINCTL_STATE_DIR/task-cache', 'entries': 0, 'bytes': 0, 'max_bytes': 5 << 30}"
check "stats as a table" bash -c "'$CHAINCTL' cache stats -o table | grep -q '0 of 5Gi'"
check "clear answers on an empty cache" exits_with 0 ctl cache clear -o json
check "clear: removed nothing" python3 -c \
  "import json; assert json.load(open('$tmp/out')) == {'removed': 0, 'bytes_removed': 0}"
check "stop" stop_chaind
check "the hash memo was saved at shutdown" test -s "$CHAINCTL_STATE_DIR/hash-memo"

# --- --cache-dir and --cache-size: prune, clear, their API. ---
cache=$tmp/tasks
entry "$cache" aa01 1000 "2020-01-01"
entry "$cache" bb02 2000 "2021-01-01"
entry "$cache" cc03 3000 "2022-01-01"
check "chaind starts with --cache-dir and --cache-size" start_chaind --cache-dir "$cache" --cache-size 10Ki
check "stats: 3 entries, 6000 bytes, 10Ki" stats_are \
  "b == {'dir': '$cache', 'entries': 3, 'bytes': 6000, 'max_bytes': 10240}"
check "prune within the budget removes nothing" exits_with 0 ctl cache prune -o table
check "prune: says so" grep -q "removed 0 entries" "$tmp/out"
check "prune --max-size 5000: the least recently used goes" exits_with 0 ctl cache prune --max-size 5000 -o json
check "prune: removed aa01" python3 -c \
  "import json; assert json.load(open('$tmp/out')) == {'removed': 1, 'bytes_removed': 1000}"
check "aa01 is gone, the others stay" bash -c "[[ ! -e $cache/entries/aa/aa01 && -e $cache/entries/bb/bb02 && -e $cache/entries/cc/cc03 ]]"
check "POST /cache/prune {max_bytes: 3000}" status_is 200 POST /cache/prune -d '{"max_bytes": 3000}'
check "  removed bb02" json_has "b == {'removed': 1, 'bytes_removed': 2000}"
check "a prune body with another field: 400" status_is 400 POST /cache/prune -d '{"max_size": 1}'
check "a prune body with a negative budget: 400" status_is 400 POST /cache/prune -d '{"max_bytes": -1}'
check "PUT /cache: 405" status_is 405 PUT /cache
check "GET /cache" status_is 200 GET /cache
check "  one entry" json_has "b['entries'] == 1 and b['bytes'] == 3000"
check "DELETE /cache" status_is 200 DELETE /cache
check "  removed cc03" json_has "b == {'removed': 1, 'bytes_removed': 3000}"
check "stats: empty" stats_are "b['entries'] == 0 and b['bytes'] == 0"
check "--max-size that is no size: exit 2" exits_with 2 ctl cache prune --max-size lots
check "  says why" grep -q -- "--max-size lots" "$tmp/err"
check "--max-size with stats: exit 2" exits_with 2 ctl cache stats --max-size 1Gi
check "an unknown action: exit 2" exits_with 2 ctl cache shrink
check "stop" stop_chaind

# --- A cache folder chaind cannot use ($CHAINCTL_CACHE_DIR names a file): no cache, 503. ---
touch "$tmp/a-file"
CHAINCTL_CACHE_DIR=$tmp/a-file/tasks start_chaind
check "chaind starts without a cache" kill -0 "$chaind_pid"
check "and logs why" grep -q "cannot open the task cache" "$tmp/chaind.log"
check "stats: exit 3" exits_with 3 ctl cache stats
check "  no_cache" grep -q "task cache" "$tmp/err"
check "GET /cache: 503 no_cache" status_is 503 GET /cache
check "  code no_cache" json_has "b['error']['code'] == 'no_cache'"
check "stop" stop_chaind

finish
