#!/usr/bin/env bash
# End-to-end: `chainctl run -f FILE --watch` runs the chain, then again when a file its tasks'
# sources match changes (not when another file does), reloads the chain file when it changes
# (waiting, with its errors printed, while it does not validate), says each edit-to-result
# latency, and stops on SIGINT (130) or SIGTERM (143), a run in flight cancelled. --no-daemon too.
# Needs CHAINCTL, CHAIND (set by ctest).
set -uo pipefail
: "${CHAINCTL:?}" "${CHAIND:?}"

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
daemon_setup chainctl-watch

proj=$tmp/proj
mkdir -p "$proj/src/pkg"
echo one > "$proj/src/pkg/word.txt"
echo unrelated > "$proj/notes.txt"
chain() {  # chain PREFIX: the chain file, its task printing PREFIX and src/pkg/word.txt
  cat > "$proj/chain.yaml.tmp" <<YAML
chain_id: watched
tasks:
  - task_id: read
    sources: ["src/**/*.txt"]
    command: 'printf "{\"word\": \"$1%s\"}" "\$(cat src/pkg/word.txt)"'
YAML
  mv "$proj/chain.yaml.tmp" "$proj/chain.yaml"  # as editors save: a rename
}
chain ""

# count FILE PATTERN: how many lines of FILE hold PATTERN
count() {
  local n
  n=$(grep -c -- "$2" "$1" 2> /dev/null)
  echo "${n:-0}"
}
# at_least N FILE PATTERN: whether FILE holds PATTERN on N lines or more
at_least() { (($(count "$2" "$3") >= $1)); }

"$CHAINCTL" run -f "$proj/chain.yaml" --watch --progress plain > "$tmp/out" 2> "$tmp/err" &
client=$!
check "the first run's result" poll 60 at_least 1 "$tmp/out" '"word": "one"'
check "then it watches" poll 30 at_least 1 "$tmp/err" '^watch: watching'

# A file no glob matches changes nothing; a source does (the other is merged or ignored).
echo more >> "$proj/notes.txt"
echo two > "$proj/src/pkg/word.txt"
check "an edited source runs the chain again" poll 60 at_least 1 "$tmp/err" '^watch: result in'
check "it names the file" grep -q '^watch: src/pkg/word.txt changed, running watched$' "$tmp/err"
check "the new output" at_least 1 "$tmp/out" '"word": "two"'
check "one re-run only" test "$(count "$tmp/err" 'changed, running')" = 1
latency=$(sed -n 's/^watch: result in \([0-9]*\) ms$/\1/p' "$tmp/err" | head -1)
echo "edit-to-result latency: ${latency:-?} ms"

# A new folder below src/ is watched as it appears.
mkdir -p "$proj/src/new/deeper"
echo three > "$proj/src/new/deeper/x.txt"
check "a file in a new folder runs it again" poll 60 at_least 2 "$tmp/err" '^watch: result in'

# The chain file: an invalid edit is reported and waited out; a valid one is applied.
printf 'chain_id: watched\ntasks:\n  - task_id: read\n    nonsense: 1\n' > "$proj/chain.yaml"
check "an invalid chain file is reported" poll 60 at_least 1 "$tmp/err" 'is not valid; waiting'
check "and not run" test "$(count "$tmp/err" '^watch: result in')" = 2
chain "v2-"
check "the fixed chain file runs" poll 60 at_least 1 "$tmp/out" '"word": "v2-two"'

kill -INT "$client"
wait "$client"
check "SIGINT exits 130" test $? = 130
check "and says it stopped" grep -q '^watch: stopped' "$tmp/err"
check "no run failed" bash -c "! grep -q FAILED '$tmp/err'"

# --- --no-daemon: a private chaind for the loop; SIGTERM during a run cancels it: 143. ---
nd=$tmp/nd
mkdir -p "$nd"
cat > "$nd/chain.yaml" <<YAML
chain_id: slow
tasks:
  - task_id: wait
    sources: ["go"]
    command: 'if test -e go; then touch "$nd/started"; sleep 60; fi; echo "{}"'
YAML
CHAINCTL_STATE_DIR=$nd/state CHAINCTL_SOCKET=$nd/none.sock "$CHAINCTL" run --no-daemon \
  -f "$nd/chain.yaml" --watch --progress plain > "$nd/out" 2> "$nd/err" &
client=$!
check "--no-daemon: the first run" poll 60 at_least 1 "$nd/err" '^watch: watching'
touch "$nd/go"
check "the re-run's task started" poll 60 test -e "$nd/started"
kill -TERM "$client"
wait "$client"
check "SIGTERM exits 143" test $? = 143
check "the run in flight was cancelled" grep -q 'terminated (SIGTERM): run-[0-9]* cancelled' \
  "$nd/err"
check "no private chaind is left" bash -c "! pgrep -f -- '[-]-state-dir $nd/state' > /dev/null"

check "--watch of standard input is refused" bash -c "'$CHAINCTL' run -f - --watch \
  < '$proj/chain.yaml' 2> /dev/null; [[ \$? == 2 ]]"
finish
