#!/usr/bin/env bash
# Dispatch overhead (issue 4): chains of /bin/true through chaind, against the floor (a loop
# of posix_spawn + waitpid), GNU make and ninja running the same graph, in the same run.
#   1. linear: N tasks, each depending on the one before (jobs = 1)
#   2. fan-out: M independent tasks at parallelism = cores (also against xargs -P)
# Where chaind runs each task in a cgroup of its own (chaind(8), TASK PROCESSES), a second chaind
# with --no-task-cgroups runs the same chains too: what the cgroups cost.
# Each tool runs ROUNDS times, interleaved; the median time counts. Needs BUILD_DIR.
set -euo pipefail
: "${BUILD_DIR:?}"
N=${N:-1000} M=${M:-5000} ROUNDS=${ROUNDS:-3}
cores=$(nproc)
chainctl=$BUILD_DIR/cli/chainctl
floor=$BUILD_DIR/bench/spawn_floor
tmp=$(mktemp -d /tmp/chainctl-bench.XXXXXX)
export CHAINCTL_SOCKET=$tmp/chaind.sock CHAINCTL_STATE_DIR=$tmp/state CHAIND=$BUILD_DIR/daemon/chaind
# The chaind without task cgroups: its own socket and state.
nocg=(env CHAINCTL_SOCKET="$tmp/nocg.sock" CHAINCTL_STATE_DIR="$tmp/nocg-state" CHAIND="$tmp/chaind-nocg")
printf '#!/bin/sh\nexec "%s" --no-task-cgroups "$@"\n' "$CHAIND" > "$tmp/chaind-nocg"
chmod +x "$tmp/chaind-nocg"
trap '"$chainctl" daemon stop >/dev/null 2>&1 || true; "${nocg[@]}" "$chainctl" daemon stop >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
command -v make >/dev/null && command -v ninja >/dev/null || { echo "needs make and ninja" >&2; exit 1; }

gen() {  # gen KIND COUNT: chain, Makefile and build.ninja in $tmp/KIND/
  local kind=$1 count=$2 dir=$tmp/$1
  mkdir -p "$dir"
  python3 - "$kind" "$count" "$dir" <<'PY'
import sys
kind, n, d = sys.argv[1], int(sys.argv[2]), sys.argv[3]
linear = kind == "linear"
with open(f"{d}/chain.yaml", "w") as f:
    f.write(f"chain_id: bench-{kind}\ntasks:\n")
    for i in range(n):
        dep = f", dependencies: [t{i-1}]" if linear and i else ""
        f.write(f"  - {{task_id: t{i}, executable_code_location: /bin/true{dep}}}\n")
with open(f"{d}/Makefile", "w") as f:
    f.write(".PHONY: all " + " ".join(f"t{i}" for i in range(n)) + "\n")
    f.write(f"all: {'t%d' % (n-1) if linear else ' '.join(f't{i}' for i in range(n))}\n")
    for i in range(n):
        dep = f"t{i-1}" if linear and i else ""
        f.write(f"t{i}: {dep}\n\t/bin/true\n")
with open(f"{d}/build.ninja", "w") as f:
    f.write("rule run\n  command = /bin/true\n")
    for i in range(n):
        dep = f" | t{i-1}" if linear and i else ""
        f.write(f"build t{i}: run{dep}\n")
    f.write(f"build all: phony {'t%d' % (n-1) if linear else ' '.join(f't{i}' for i in range(n))}\n")
    f.write("default all\n")
PY
}

seconds() {  # seconds COMMAND...: runs it, prints how long it took
  local start=$EPOCHREALTIME
  "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }
  python3 -c "print(f'{$EPOCHREALTIME - $start:.4f}')"
}
median() { python3 -c "import statistics,sys; print(statistics.median(map(float, sys.argv[1:])))" "$@"; }
ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }

gen linear "$N"
gen fanout "$M"
"$chainctl" daemon start >/dev/null
"$chainctl" apply -f "$tmp/linear/chain.yaml" >/dev/null
"$chainctl" apply -f "$tmp/fanout/chain.yaml" >/dev/null
cgroups=$(curl -s --unix-socket "$CHAINCTL_SOCKET" http://localhost/health |
  python3 -c "import json,sys; print(1 if json.load(sys.stdin)['task_cgroups']['dir'] else '')")
if [[ -n "$cgroups" ]]; then
  "${nocg[@]}" "$chainctl" daemon start >/dev/null
  "${nocg[@]}" "$chainctl" apply -f "$tmp/linear/chain.yaml" >/dev/null
  "${nocg[@]}" "$chainctl" apply -f "$tmp/fanout/chain.yaml" >/dev/null
fi

declare -A t
for _ in $(seq "$ROUNDS"); do
  t[lin_floor]+=" $("$floor" "$N" 1 /bin/true)"
  t[lin_chaind]+=" $(seconds "$chainctl" run -f "$tmp/linear/chain.yaml" --progress quiet)"
  [[ -n "$cgroups" ]] &&
    t[lin_nocg]+=" $(seconds "${nocg[@]}" "$chainctl" run -f "$tmp/linear/chain.yaml" --progress quiet)"
  t[lin_make]+=" $(seconds make -s -C "$tmp/linear" -j1)"
  t[lin_ninja]+=" $(seconds ninja -C "$tmp/linear" -j1)"
  t[fan_floor]+=" $("$floor" "$M" "$cores" /bin/true)"
  t[fan_chaind]+=" $(seconds "$chainctl" run -f "$tmp/fanout/chain.yaml" --progress quiet)"
  [[ -n "$cgroups" ]] &&
    t[fan_nocg]+=" $(seconds "${nocg[@]}" "$chainctl" run -f "$tmp/fanout/chain.yaml" --progress quiet)"
  t[fan_ninja]+=" $(seconds ninja -C "$tmp/fanout" -j"$cores")"
  t[fan_make]+=" $(seconds make -s -C "$tmp/fanout" -j"$cores")"
  t[fan_xargs]+=" $(seconds bash -c "seq $M | xargs -P $cores -n 1 /bin/true")"
done
declare -A m
for k in "${!t[@]}"; do m[$k]=$(median ${t[$k]}); done

echo "dispatch: $N-task linear chain of /bin/true (jobs 1), median of $ROUNDS"
printf '  %-28s %8ss  %6sx\n' "floor (posix_spawn loop)" "${m[lin_floor]}" 1.00 \
  "chainctl run" "${m[lin_chaind]}" "$(ratio "${m[lin_chaind]}" "${m[lin_floor]}")" \
  "make -j1" "${m[lin_make]}" "$(ratio "${m[lin_make]}" "${m[lin_floor]}")" \
  "ninja -j1" "${m[lin_ninja]}" "$(ratio "${m[lin_ninja]}" "${m[lin_floor]}")"
echo "  chainctl run / make: $(ratio "${m[lin_chaind]}" "${m[lin_make]}"), / ninja: $(ratio "${m[lin_chaind]}" "${m[lin_ninja]}")"
[[ -n "$cgroups" ]] && printf '  %-28s %8ss  %6sx  (task cgroups cost %sx)\n' "chainctl run, no cgroups" \
  "${m[lin_nocg]}" "$(ratio "${m[lin_nocg]}" "${m[lin_floor]}")" "$(ratio "${m[lin_chaind]}" "${m[lin_nocg]}")"
echo "fan-out: $M independent /bin/true at parallelism $cores, median of $ROUNDS"
printf '  %-28s %8ss  %6sx\n' "floor (posix_spawn, $cores at once)" "${m[fan_floor]}" 1.00 \
  "chainctl run" "${m[fan_chaind]}" "$(ratio "${m[fan_chaind]}" "${m[fan_floor]}")" \
  "ninja -j$cores" "${m[fan_ninja]}" "$(ratio "${m[fan_ninja]}" "${m[fan_floor]}")" \
  "make -j$cores" "${m[fan_make]}" "$(ratio "${m[fan_make]}" "${m[fan_floor]}")" \
  "xargs -P$cores" "${m[fan_xargs]}" "$(ratio "${m[fan_xargs]}" "${m[fan_floor]}")"
echo "  chainctl run / ninja: $(ratio "${m[fan_chaind]}" "${m[fan_ninja]}")"
[[ -n "$cgroups" ]] && printf '  %-28s %8ss  %6sx  (task cgroups cost %sx)\n' "chainctl run, no cgroups" \
  "${m[fan_nocg]}" "$(ratio "${m[fan_nocg]}" "${m[fan_floor]}")" "$(ratio "${m[fan_chaind]}" "${m[fan_nocg]}")"
exit 0
