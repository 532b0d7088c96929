#!/usr/bin/env bash
# End-to-end, issue 15 item 10: staged inputs used to be hard links, so a task appending to
# inputs/files/data.txt changed the user's data.txt. Now a staged file is the task's own (a
# reflink or a copy) unless the task declares `inputs.link: true` (it never writes them), which
# gives hard links. Needs CHAINCTL, CHAIND (set by ctest).
set -uo pipefail
: "${CHAINCTL:?}" "${CHAIND:?}"

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
daemon_setup chainctl-staged

mkdir "$tmp/data"
printf 'original\n' > "$tmp/data/data.txt"
# Each task appends to its staged copy, then says which inode it got.
task='cat > /dev/null; cd \"$CHAIN_WORKDIR\"; echo appended >> inputs/files/data.txt; echo \"{\\\"inode\\\": $(stat -c %i inputs/files/data.txt)}\"'
cat > "$tmp/own.yaml" <<YAML
chain_id: own
tasks:
  - {task_id: append, command: "$task", inputs: {files: ["$tmp/data/data.txt"]}}
YAML
cat > "$tmp/linked.yaml" <<YAML
chain_id: linked
tasks:
  - {task_id: append, command: "$task", inputs: {files: ["$tmp/data/data.txt"], link: true}}
YAML
inode() { python3 -c "import json,sys; print(json.load(sys.stdin)['inode'])" < "$1"; }

check "apply own" bash -c "'$CHAINCTL' apply -f '$tmp/own.yaml' > /dev/null"
check "apply linked" bash -c "'$CHAINCTL' apply -f '$tmp/linked.yaml' > /dev/null"
for n in 1 2; do
  check "own, run $n: succeeds" bash -c "'$CHAINCTL' trigger own --wait > '$tmp/own$n.json'"
  check "own, run $n: the user's file is unchanged" \
    test "$(cat "$tmp/data/data.txt")" = original
done
check "own: the task got a file of its own" test "$(inode "$tmp/own1.json")" != "$(stat -c %i "$tmp/data/data.txt")"
check "linked: succeeds" bash -c "'$CHAINCTL' trigger linked --wait > '$tmp/linked.json'"
check "linked: the task got a hard link to the user's file" \
  test "$(inode "$tmp/linked.json")" = "$(stat -c %i "$tmp/data/data.txt")"
check "(so what it wrote is there: it declared it would not)" \
  test "$(cat "$tmp/data/data.txt")" = "$(printf 'original\nappended')"

# --- A retry after a failed staging stages again (it used to run the task without its inputs). ---
cat > "$tmp/later.yaml" <<YAML
chain_id: later
tasks:
  - task_id: read
    command: 'cat > /dev/null; printf "{\"n\": %s}" "\$(cat \$CHAIN_WORKDIR/inputs/files/later.txt)"'
    inputs: {files: ["$tmp/data/later.txt"]}
    retry: {max_attempts: 3, initial_backoff: 3s}
YAML
check "apply later" bash -c "'$CHAINCTL' apply -f '$tmp/later.yaml' > /dev/null"
run=$("$CHAINCTL" trigger later)
retrying() {  # the first attempt failed staging: later.txt did not exist
  curl -s --unix-socket "$sock" "http://localhost/runs/$run/events" | grep -q '"task_retrying"'
}
check "the first try fails staging (no later.txt) and waits to retry" poll 20 retrying
check "saying why" bash -c "curl -s --unix-socket '$sock' http://localhost/runs/$run/events |
  grep -q 'later.txt'"
# Before the retry, 3 s after the failure (should this lose that race, the third try is there).
echo 7 > "$tmp/data/later.txt"
ended() {
  curl -s --unix-socket "$sock" "http://localhost/runs/$run" |
    python3 -c 'import json,sys; sys.exit(json.load(sys.stdin)["status"] == "running")'
}
check "the run ends" poll 20 ended
check "the retry staged later.txt and succeeded with it" bash -c \
  "curl -s --unix-socket '$sock' http://localhost/runs/$run/tasks/read/output | grep -q '\"n\": *7'"

finish
