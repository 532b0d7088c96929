#!/usr/bin/env bash
# Prefetching's cost where it cannot gain (issue 14, benchmark 1): chains of /bin/true in the
# default mode (prefetching on) against `chaind --no-prefetch`, in the same run, after WARMUP
# runs of each chain (so history exists and the model knows the chains):
#   1. linear: N tasks, each after the one before
#   2. fan-out: M independent tasks at parallelism = cores
#   3. layered: a root, L-2 /2 tasks after it, a join after all of them, as many after the join,
#      and a report after those (fan-out and fan-in, like the 1000-genome workflow)
# The two daemons take turns; the median of ROUNDS runs counts. Also chaind's CPU time per run,
# from GET /stats. Needs BUILD_DIR.
set -euo pipefail
: "${BUILD_DIR:?}"
N=${N:-1000} M=${M:-5000} L=${L:-2000} ROUNDS=${ROUNDS:-3} WARMUP=${WARMUP:-5}
chainctl=$BUILD_DIR/cli/chainctl
chaind=$BUILD_DIR/daemon/chaind
tmp=$(mktemp -d /tmp/chainctl-overhead.XXXXXX)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT

python3 - "$tmp" "$N" "$M" "$L" <<'PY'
import sys
d, n, m, l = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def write(name, tasks):
    with open(f"{d}/{name}.yaml", "w") as f:
        f.write(f"chain_id: overhead-{name}\ntasks:\n")
        for tid, deps in tasks:
            dep = f", dependencies: [{', '.join(deps)}]" if deps else ""
            f.write(f"  - {{task_id: {tid}, executable_code_location: /bin/true{dep}}}\n")
write("linear", [(f"t{i}", [f"t{i-1}"] if i else []) for i in range(n)])
write("fanout", [(f"t{i}", []) for i in range(m)])
half = (l - 3) // 2
first = [f"i{i}" for i in range(half)]
second = [f"a{i}" for i in range(l - 3 - half)]
write("layered", [("root", [])] + [(t, ["root"]) for t in first] + [("merge", first)] +
      [(t, ["merge"]) for t in second] + [("report", second)])
PY

start() {  # start NAME FLAGS...: a chaind of its own
  local name=$1
  shift
  "$chaind" --socket "$tmp/$name.sock" --state-dir "$tmp/$name" "$@" >> "$tmp/$name.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 500); do
    curl -sf --unix-socket "$tmp/$name.sock" http://localhost/health > /dev/null 2>&1 && return 0
    sleep 0.02
  done
  echo "chaind $name did not start" >&2
  exit 1
}
ctl() {  # ctl NAME ARGS...
  local name=$1
  shift
  CHAINCTL_SOCKET=$tmp/$name.sock CHAINCTL_STATE_DIR=$tmp/$name "$chainctl" --no-autostart "$@"
}
seconds() {  # seconds NAME CHAIN: one run, its wall time
  local start=$EPOCHREALTIME
  ctl "$1" run -f "$tmp/$2.yaml" --progress quiet > /dev/null || { echo "run failed: $*" >&2; exit 1; }
  python3 -c "print(f'{$EPOCHREALTIME - $start:.4f}')"
}
cpu() { curl -s --unix-socket "$tmp/$1.sock" http://localhost/stats |
  python3 -c "import json,sys; print(json.load(sys.stdin)['daemon']['cpu_seconds'])"; }
median() { python3 -c "import statistics,sys; print(statistics.median(map(float, sys.argv[1:])))" "$@"; }
ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }

start on
start off --no-prefetch
declare -A t c
for chain in linear fanout layered; do
  for _ in $(seq "$WARMUP"); do
    for mode in on off; do seconds $mode $chain > /dev/null; done
  done
  for mode in on off; do c[$chain.$mode]=$(cpu $mode); done
  for _ in $(seq "$ROUNDS"); do
    for mode in on off; do t[$chain.$mode]+=" $(seconds $mode $chain)"; done
  done
  for mode in on off; do
    c[$chain.$mode]=$(python3 -c "print(($(cpu $mode) - ${c[$chain.$mode]}) / $ROUNDS)")
  done
done

echo "overhead: prefetching on (the default) vs --no-prefetch, /bin/true chains, after $WARMUP runs; median of $ROUNDS"
printf '  %-34s %9s %9s %7s   %s\n' chain "on (s)" "off (s)" "on/off" "chaind CPU per run on/off"
for chain in linear fanout layered; do
  case $chain in
    linear) label="linear, $N tasks";;
    fanout) label="fan-out, $M tasks, $(nproc) at once";;
    layered) label="layered, $L tasks";;
  esac
  on=$(median ${t[$chain.on]}) off=$(median ${t[$chain.off]})
  printf '  %-34s %9.3f %9.3f %6sx   %.2f s / %.2f s\n' "$label" "$on" "$off" "$(ratio "$on" "$off")" \
    "${c[$chain.on]}" "${c[$chain.off]}"
done
