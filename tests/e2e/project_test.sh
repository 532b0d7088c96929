#!/usr/bin/env bash
# End-to-end, issue 17: chainctl as CI pipelines and shell scripts use it. Tasks run in the
# project (the chain file's folder, or their working_dir), the caller's environment reaches
# them per run without ever being stored, a run can be limited to some tasks and what they
# depend on, and SIGTERM to a waiting chainctl cancels its run (exit 143).
# Needs CHAINCTL, CHAIND (set by ctest).
set -uo pipefail
: "${CHAINCTL:?}" "${CHAIND:?}"

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
daemon_setup chainctl-project

last_run() {  # the newest run's id
  "$CHAINCTL" list runs -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["runs"][0]["run_id"])'
}

# A project: a Makefile, a sub folder, an env file, and a chain next to them.
proj=$tmp/proj
mkdir -p "$proj/sub"
cat > "$proj/Makefile" <<'MAKE'
hello:
	@printf '{"made": "%s"}\n' "$$(pwd)"
MAKE
# The secrets are checked against files of the project, so that they are in no definition.
secret=s3cr3t-$RANDOM$RANDOM-value
printf '%s' "$secret" > "$proj/expected.secret"
printf 'FROM_CHAIN_FILE=chain-level\n' > "$proj/ci.env"
printf '# a caller file\nFROM_FILE=file-value\n' > "$tmp/caller.env"
cat > "$proj/chain.yaml" <<'YAML'
chain_id: project
env_file: ci.env
tasks:
  - task_id: where
    description: Print where the task runs
    command: 'printf "{\"pwd\": \"%s\", \"src\": \"%s\"}" "$(pwd)" "$CHAIN_SOURCE_DIR"'
  - task_id: make
    description: Run the project's Makefile
    command: make -s hello
    dependencies: [where]
  - task_id: env
    command: >-
      test "$TOKEN" = "$(cat expected.secret)" && test "$FROM_FILE" = file-value &&
      test "$CI_ONE" = 1 && test "$CI_TWO" = 2 && test -z "${OTHER_VAR:-}" &&
      test "$FROM_CHAIN_FILE" = chain-level && echo '{"env": "ok"}'
  - task_id: sub
    working_dir: sub
    command: 'printf "{\"pwd\": \"%s\"}" "$(pwd)"'
    dependencies: [make]
YAML

# --- run --no-daemon: a private chaind for the command only; its history stays. ---
nd=$tmp/nd
check "run --no-daemon with no chaind running" bash -c "CHAINCTL_STATE_DIR='$nd/state' \
  CHAINCTL_SOCKET='$nd/none.sock' '$CHAINCTL' run --no-daemon -f '$proj/chain.yaml' make \
  --progress quiet > '$nd.out'"
check "it printed make's output" grep -q '"made"' "$nd.out"
check "no chaind is left" bash -c "! pgrep -f -- '[-]-state-dir $nd/state' > /dev/null"
check "the history went to the state folder" bash -c "CHAINCTL_STATE_DIR='$nd/state' \
  CHAINCTL_SOCKET='$nd/later.sock' '$CHAINCTL' history --chain project -o json |
  python3 -c \"import json,sys; r=json.load(sys.stdin); r=r.get('records', r); assert len(r) == 2, r\""
CHAINCTL_STATE_DIR=$nd/state CHAINCTL_SOCKET=$nd/later.sock "$CHAINCTL" daemon stop > /dev/null

# --- Tasks run in the chain file's folder, whatever chainctl's own. ---
cd /
check "run from / succeeds" bash -c "TOKEN='$secret' CI_ONE=1 CI_TWO=2 OTHER_VAR=x '$CHAINCTL' run \
  -f '$proj/chain.yaml' --env TOKEN --env-file '$tmp/caller.env' --pass-env 'CI_*' \
  --progress quiet > '$tmp/out.json' 2> '$tmp/err'"
cat "$tmp/err" >&2
check "pwd is the chain file's folder, \$CHAIN_SOURCE_DIR too" python3 -c "import json
o = json.load(open('$tmp/out.json'))
assert o['sub']['pwd'] == '$proj/sub', o"
run=$(last_run)
check "where printed the folder" bash -c "curl -s --unix-socket '$sock' \
  http://localhost/runs/$run/tasks/where/output | grep -q '\"pwd\": *\"$proj\", *\"src\": *\"$proj\"'"
check "make ran the Makefile next to the chain" bash -c "curl -s --unix-socket '$sock' \
  http://localhost/runs/$run/tasks/make/output | grep -q '\"made\": *\"$proj\"'"
check "--env, --env-file, --pass-env and env_file reached the task" bash -c "curl -s \
  --unix-socket '$sock' http://localhost/runs/$run/tasks/env/output | grep -q '\"env\": *\"ok\"'"
check "the run keeps the names" bash -c "'$CHAINCTL' get run $run -o json | python3 -c \"import json,sys
assert json.load(sys.stdin)['env'] == ['CI_ONE', 'CI_TWO', 'FROM_FILE', 'TOKEN']\""
check "chainctl tasks lists the descriptions" bash -c "'$CHAINCTL' tasks '$proj/chain.yaml' \
  -o table | grep -q '^make  *where  *\.  *Run the project.s Makefile'"
check "a dry run prints what would run, and runs nothing" bash -c "'$CHAINCTL' run -f \
  '$proj/chain.yaml' make --dry-run --env TOKEN=x | grep -q 'would run 2 of 4 task(s) of project'"

# --- Only the tasks asked for, and what they depend on. ---
check "run -f F make" bash -c "'$CHAINCTL' run -f '$proj/chain.yaml' make --progress quiet \
  > '$tmp/make.json'"
check "its output is make's" python3 -c "import json
assert json.load(open('$tmp/make.json')) == {'made': '$proj'}"
run=$(last_run)
check "where and make ran, the others were not selected" bash -c "'$CHAINCTL' get run $run -o json |
  python3 -c \"import json,sys
t = {x['task_id']: x for x in json.load(sys.stdin)['tasks']}
assert t['where']['state'] == t['make']['state'] == 'succeeded', t
assert t['env']['error'] == t['sub']['error'] == 'not selected', t\""
check "trigger project sub --wait: sub and what it depends on" bash -c "'$CHAINCTL' trigger \
  project sub --wait | grep -q '\"pwd\": \"$proj/sub\"' && '$CHAINCTL' get run \$('$CHAINCTL' list runs \
  -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"runs\"][0][\"run_id\"])') -o json |
  python3 -c 'import json,sys; r = json.load(sys.stdin); assert r[\"selected\"] == [\"sub\"] and r[\"task_states\"] == {\"skipped\": 1, \"succeeded\": 3}, r'"
"$CHAINCTL" run -f "$proj/chain.yaml" nosuch > /dev/null 2> "$tmp/nosuch.err"
check "an unknown task is exit 2, named" bash -c "[[ $? == 2 ]] && grep -q 'no task \"nosuch\"' '$tmp/nosuch.err'"

# --- The secret is nowhere in the state folder (store, history, logs, run folders). ---
"$CHAINCTL" history export "$tmp/history.jsonl" 2> /dev/null
check "the secret is in no file of the state folder" bash -c "! grep -rqa -- '$secret' \
  '$CHAINCTL_STATE_DIR' '$tmp/history.jsonl'"
check "nor in the daemon's log" bash -c "! grep -rqa -- '$secret' '$CHAINCTL_STATE_DIR'/*.log"

# --- resume asks for the environment again. ---
cat > "$proj/flaky.yaml" <<'YAML'
chain_id: flaky
tasks:
  - task_id: once
    command: 'test -e done || { touch done; exit 1; }; test "$TOKEN" = "$(cat expected.secret)" && echo "{}"'
YAML
"$CHAINCTL" run -f "$proj/flaky.yaml" --env "TOKEN=$secret" --progress quiet > /dev/null 2>&1
check "the first run fails" test $? = 1
run=$(last_run)
"$CHAINCTL" resume "$run" --wait > /dev/null 2> "$tmp/resume.err"
check "resume without the env is refused, naming it" bash -c "[[ $? == 2 ]] && grep -q 'TOKEN' '$tmp/resume.err'"
check "resume with it succeeds" bash -c "'$CHAINCTL' resume $run --wait --env 'TOKEN=$secret' > /dev/null"

# --- SIGTERM to a waiting chainctl: the run is cancelled, exit 143. ---
mkfifo "$tmp/gate"
cat > "$tmp/wait.yaml" <<YAML
chain_id: waits
tasks:
  - task_id: block
    command: 'touch "$tmp/started"; cat "$tmp/gate" > /dev/null; echo "{}"'
YAML
"$CHAINCTL" run -f "$tmp/wait.yaml" --progress plain > /dev/null 2> "$tmp/term.err" &
client=$!
check "the task started" poll 30 test -e "$tmp/started"
kill -TERM "$client"
wait "$client"
check "chainctl exits 143" test $? = 143
check "and says so" grep -q 'terminated (SIGTERM): run-[0-9]* cancelled' "$tmp/term.err"
run=$(last_run)
check "the run ends cancelled" poll 30 bash -c "'$CHAINCTL' get run $run -o json |
  grep -q '\"status\": \"cancelled\"'"
# --- Global flags after the command; no escapes on a dumb terminal. ---
check "--socket after the command" bash -c "env -u CHAINCTL_SOCKET '$CHAINCTL' list chains \
  --no-autostart --socket '$sock' -o json | grep -q '\"project\"'"
on_a_terminal() {  # on_a_terminal TERM OUT: chainctl run on a pseudo-terminal (script(1))
  TERM=$1 script -qec "'$CHAINCTL' run -f '$proj/chain.yaml' where" /dev/null > "$2" 2>&1
}
escapes() { on_a_terminal xterm "$tmp/xterm.out" && grep -q $'\e' "$tmp/xterm.out"; }
no_escapes() {
  on_a_terminal dumb "$tmp/dumb.out" && grep -q 'ok where' "$tmp/dumb.out" &&
    ! grep -q $'\e' "$tmp/dumb.out"
}
check "on a terminal, progress uses escapes" escapes
check "with TERM=dumb, none" no_escapes
check "exit 4 for a run that does not exist" bash -c "'$CHAINCTL' get run run-999999 2> /dev/null; [[ \$? == 4 ]]"
finish
