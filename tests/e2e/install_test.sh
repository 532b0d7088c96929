#!/usr/bin/env bash
# End-to-end: `cmake --install` of the build into a fresh prefix puts every file in its place,
# and gives a working chainctl from PATH: a run autostarts the installed chaind (found next to
# chainctl), whose tasks with limits go through the installed chaind-exec (found next to
# chaind); the installed completions load in bash (and pass zsh -n and fish, when installed).
# Needs CHAINCTL and SOURCE_DIR (set by ctest); the build folder is BUILD_DIR, else CHAINCTL's
# grandparent (BUILD/cli/chainctl). The build must be complete (man pages, completions).
set -uo pipefail
: "${CHAINCTL:?}" "${SOURCE_DIR:?}"
build=${BUILD_DIR:-$(cd "$(dirname "$CHAINCTL")/.." && pwd)}

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
command -v cmake >/dev/null || { echo "SKIP: no cmake to install with"; exit 77; }

tmp=$(mktemp -d /tmp/chainctl-install.XXXXXX)
prefix=$tmp/prefix
cleanup() {
  [[ -x $prefix/bin/chainctl ]] && "$prefix/bin/chainctl" --socket "$tmp/run/chaind.sock" \
    daemon stop >/dev/null 2>&1
  pkill -9 -f "^$prefix/bin/chaind " 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

if ! cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1; then
  echo "FAIL: cmake --install $build --prefix $prefix:" >&2
  tail -n 20 "$tmp/install.log" >&2
  exit 1
fi

# --- Every file in its place. ---
for file in bin/chainctl bin/chaind bin/chaind-exec; do
  check "installed executable $file" test -x "$prefix/$file"
done
for file in share/man/man1/chainctl.1 share/man/man8/chaind.8 share/chainctl/chain.schema.json \
  lib/systemd/user/chaind.service lib/systemd/user/chaind.socket \
  share/bash-completion/completions/chainctl share/zsh/vendor-completions/_chainctl \
  share/fish/vendor_completions.d/chainctl.fish; do
  check "installed $file" test -s "$prefix/$file"
done
check "the unit starts the installed chaind" \
  grep -qx "ExecStart=$prefix/bin/chaind" "$prefix/lib/systemd/user/chaind.service"
check "no other absolute path in the units" bash -c \
  "! grep -v '^#' '$prefix/lib/systemd/user/chaind.service' '$prefix/lib/systemd/user/chaind.socket' \
     | grep -v 'ExecStart=$prefix/bin/chaind' | grep -q '=/'"
check "the installed schema is the embedded one" \
  cmp -s "$prefix/share/chainctl/chain.schema.json" "$SOURCE_DIR/schemas/chain.schema.json"
check "chainctl schema prints it" bash -c \
  "'$prefix/bin/chainctl' schema | cmp -s - '$SOURCE_DIR/schemas/chain.schema.json'"

# --- A run from PATH, on an autostarted chaind: the installed one. ---
# ctest exports CHAIND (the build's chaind), which autostart would take first: not here.
in_prefix() {
  env -u CHAIND PATH="$prefix/bin:/usr/bin:/bin" CHAINCTL_STATE_DIR="$tmp/state" \
    CHAINCTL_SOCKET="$tmp/run/chaind.sock" "$@"
}
mkdir -p "$tmp/project"
# cpu with timeout sets a CPU-time limit: the task runs through chaind-exec.
cat >"$tmp/project/chain.yaml" <<'YAML'
tasks:
  - task_id: hello
    command: 'printf "{\"greeting\": \"hello\"}"'
    resource_requirements: {cpu: 1, timeout: 60s}
YAML
run_from_path() {
  in_prefix chainctl run -f "$tmp/project/chain.yaml" --progress plain >"$tmp/out" 2>"$tmp/err" &&
    grep -q '"greeting": *"hello"' "$tmp/out" ||
    { cat "$tmp/out" "$tmp/err" >&2; tail -n 20 "$tmp/state/chaind.log" >&2; return 1; }
}
check "chainctl run -f from PATH" run_from_path
chaind_pid=$(curl -s --max-time 10 --unix-socket "$tmp/run/chaind.sock" http://localhost/health |
  python3 -c "import json,sys; print(json.load(sys.stdin)['pid'])" 2>/dev/null)
check "autostart ran the installed chaind" \
  test "$(readlink "/proc/${chaind_pid:-0}/exe" 2>/dev/null)" = "$prefix/bin/chaind"
stop_daemon() { in_prefix chainctl daemon stop >/dev/null; }
check "chainctl daemon stop" stop_daemon
check "chaind exited" poll 30 bash -c "! kill -0 ${chaind_pid:-0} 2>/dev/null"

# --- Completions. ---
bash_completes() {  # bash_completes EXPECTED WORD...: COMPREPLY for the words, the last one current
  local got
  got=$(bash -c 'source "$1"; shift; complete -p chainctl >/dev/null || exit 1
    COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _chainctl; echo "${COMPREPLY[*]}"' \
    _ "$prefix/share/bash-completion/completions/chainctl" "${@:2}")
  [[ $got == "$1" ]] || { echo "  completing '${*:2}': got '$got', expected '$1'" >&2; return 1; }
}
check "bash: a subcommand" bash_completes "get" chainctl ge
check "bash: get's kinds" bash_completes "chain task run" chainctl get ""
check "bash: an option's choices" bash_completes "json" chainctl get -o j
check "bash: a file" bash_completes "$tmp/project/chain.yaml" chainctl validate "$tmp/project/ch"
if [[ -r /usr/share/bash-completion/bash_completion ]]; then
  # As an interactive bash would: bash-completion's loader finds it under XDG_DATA_DIRS.
  check "bash-completion loads it from the prefix" bash -c \
    "source /usr/share/bash-completion/bash_completion; \
     XDG_DATA_DIRS='$prefix/share' __load_completion chainctl && complete -p chainctl | grep -q _chainctl"
else
  echo "skipped: bash-completion's loader (package bash-completion not installed)"
fi
if command -v zsh >/dev/null; then
  check "zsh -n" zsh -n "$prefix/share/zsh/vendor-completions/_chainctl"
else
  echo "skipped: zsh -n (zsh not installed)"
fi
if command -v fish >/dev/null; then
  fish_file=$prefix/share/fish/vendor_completions.d/chainctl.fish
  check "fish -n" fish -n "$fish_file"
  check "fish: get's kinds" bash -c \
    "fish -c 'source $fish_file; complete -C \"chainctl get \"' | cut -f1 | sort | tr '\n' ' ' \
     | grep -qx 'chain run task '"
else
  echo "skipped: fish -n (fish not installed)"
fi

finish
