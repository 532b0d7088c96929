#!/usr/bin/env bash
# End-to-end: the real chainctl binary on real files, as a user runs it.
# Needs CHAINCTL, CHAIND, SOURCE_DIR and MAN_DIR (the built man pages; set by ctest).
set -uo pipefail
: "${CHAINCTL:?}" "${CHAIND:?}" "${SOURCE_DIR:?}" "${MAN_DIR:?}"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# run EXPECTED_STATUS FILE...: chainctl validate within 30 s, with that exit
# status, and (when it fails) exactly one diagnostic line naming the file.
validate_fails_cleanly() {
  local file=$1 status
  timeout 30 "$CHAINCTL" validate "$file" >"$tmp/out" 2>"$tmp/err"
  status=$?
  if [[ $status -ne 2 ]]; then
    echo "  $file: exit status $status, expected 2" >&2
    return 1
  fi
  if ! grep -q "^$file" "$tmp/err"; then
    echo "  $file: no diagnostic naming the file:" >&2
    head -c 500 "$tmp/err" >&2
    return 1
  fi
}

# Examples are valid, and their DOT output renders with Graphviz.
for chain in "$SOURCE_DIR"/examples/*/chain.yaml; do
  check "validate $chain" "$CHAINCTL" validate "$chain"
  check "dot renders $chain" bash -c \
    "'$CHAINCTL' graph '$chain' --format dot | dot -Tsvg -o '$tmp/g.svg' && grep -q '<svg' '$tmp/g.svg'"
done

# Standard input.
# Relative executables of a chain read from stdin resolve against the working directory.
check "stdin YAML" bash -c "cd '$SOURCE_DIR/examples/wordfreq' && '$CHAINCTL' validate - <chain.yaml >/dev/null"
check "stdin YAML elsewhere" bash -c "cd '$tmp' && '$CHAINCTL' validate - \
  <'$SOURCE_DIR/examples/wordfreq/chain.yaml' 2>&1 | grep -q 'executable \"bin/collect.sh\" ($tmp/bin/collect.sh) not found'"
check "stdin JSON" bash -c "echo '{\"tasks\": [{\"task_id\": \"a\", \"command\": \"true\"}]}' | '$CHAINCTL' validate - >/dev/null"

# Malformed input of every kind: exit 2 with a clear error, never a crash or a hang.
head -c 1048576 /dev/urandom >"$tmp/junk.yaml"
: >"$tmp/empty.yaml"
head -c $((50 * 1024 * 1024)) /dev/zero | tr '\0' ' ' >"$tmp/big.yaml"
python3 -c "print('[' * 10000 + ']' * 10000)" >"$tmp/deep.json"
python3 -c "print('tasks: ' + '[' * 10000 + ']' * 10000)" >"$tmp/deep.yaml"
python3 -c "print('{\"tasks\": ' + '{\"a\": ' * 10000 + '1' + '}' * 10001)" >"$tmp/deep-object.json"
printf 'tasks:\n  - task_id: "caf\xe9"\n    command: x\n' >"$tmp/latin1.yaml"
printf '{"tasks": [1,' >"$tmp/truncated.json"
{
  echo 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'
  prev=a
  for n in b c d e f g h i; do
    echo "$n: &$n [*$prev,*$prev,*$prev,*$prev,*$prev,*$prev,*$prev,*$prev,*$prev]"
    prev=$n
  done
} >"$tmp/bomb.yaml"
printf '{a: 1},\n' >"$tmp/stray-comma.yaml"
for f in junk.yaml empty.yaml big.yaml deep.json deep.yaml deep-object.json latin1.yaml \
         truncated.json bomb.yaml stray-comma.yaml; do
  check "malformed $f" validate_fails_cleanly "$tmp/$f"
done
check "50 MB message" grep -q "file is too large: the limit is 16Mi bytes" <(
  "$CHAINCTL" validate "$tmp/big.yaml" 2>&1)

# -o json is a JSON array of {file, line, column, path, message}.
printf 'tasks:\n  - {task_id: a, command: x, dependencies: [b]}\n' >"$tmp/dep.yaml"
check "json output" bash -c "'$CHAINCTL' validate -o json '$tmp/dep.yaml' | python3 -c '
import json, sys
errors = json.load(sys.stdin)
assert errors == [{\"file\": \"$tmp/dep.yaml\", \"line\": 2, \"column\": 45,
                   \"path\": \"tasks[0].dependencies[0]\", \"message\": \"unknown task \\\"b\\\"\"}], errors
'; [[ \${PIPESTATUS[0]} -eq 2 ]]"

# The manual pages (built from man/*.scd into MAN_DIR) render without a groff
# warning, and say what they must.
# man_mentions PAGE WORD...: `man -l PAGE` (groff alone where man-db is not
# installed) renders it, and its text has every WORD.
man_mentions() {
  local page=$1 word text
  shift
  if command -v man >/dev/null; then
    text=$(LC_ALL=C MANWIDTH=80 man --no-hyphenation -l "$page" 2>&1) || return 1
  else
    text=$(LC_ALL=C groff -man -Tascii -rLL=80n -P-cbou "$page" 2>&1) || return 1
  fi
  for word in "$@"; do
    if ! grep -qF -- "$word" <<<"$text"; then
      echo "  $page does not mention $word" >&2
      return 1
    fi
  done
}
for page in chainctl.1 chaind.8; do
  check "man $page renders" bash -c "[[ -s '$MAN_DIR/$page' ]] &&
    [[ -z \$(groff -man -ww -z '$MAN_DIR/$page' 2>&1) ]]"
done
check "man chainctl.1 content" man_mentions "$MAN_DIR/chainctl.1" \
  validate graph apply --no-autostart CHAINCTL_SOCKET "EXIT STATUS" EXAMPLES
check "man chaind.8 content" man_mentions "$MAN_DIR/chaind.8" \
  "POST /chains" LISTEN_FDS READY=1 chaind.lock "EXIT STATUS" EXAMPLES

# Versions and help.
check "chainctl --version" bash -c "'$CHAINCTL' --version | grep -q '^chainctl [0-9]'"
check "chaind --version" bash -c "'$CHAIND' --version | grep -q '^chaind [0-9]'"
check "usage error exit 2" bash -c "'$CHAINCTL' frobnicate 2>/dev/null; [[ \$? -eq 2 ]]"

finish
