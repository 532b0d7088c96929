#!/usr/bin/env bash
# The task cache (issue 18): a 50-task chain (10 python3 steps with heavy imports, 40 shell steps)
# over a tree of 2,000 source files (each task's `sources` are its module's 40 files), in five
# layers of ten, each task fed by the one above it. All in this run, with chaind's defaults:
#   1. first run (every task runs)  vs  second run, nothing changed (every task cached)
#   2. the second run vs `make -q` deciding the same over an equivalent Makefile (each target's
#      prerequisites its sources and the target above it)
#   3. one source edited: which tasks ran (its task and those below it), and the time
#   4. the same edit through `chainctl run --watch`: edit to result, vs a cold `chainctl run`
# go-task's checksum mode is not measured: Debian 12 has no package of it and its npm package
# downloads the binary from GitHub, which this machine cannot reach. Needs BUILD_DIR.
set -euo pipefail
: "${BUILD_DIR:?}"
ROUNDS=${ROUNDS:-3}
chainctl=$BUILD_DIR/cli/chainctl
tmp=$(mktemp -d /tmp/chainctl-cache-bench.XXXXXX)
export CHAINCTL_SOCKET=$tmp/chaind.sock CHAINCTL_STATE_DIR=$tmp/state CHAIND=$BUILD_DIR/daemon/chaind
watch_pid=""
trap '[[ -n "$watch_pid" ]] && kill "$watch_pid" 2>/dev/null; "$chainctl" daemon stop >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
proj=$tmp/proj

python3 - "$proj" <<'PY'
import os, random, sys
random.seed(18)
root = sys.argv[1]
layers, width, files = 5, 10, 40
for t in range(layers * width):
    d = os.path.join(root, "src", f"mod{t}")
    os.makedirs(d)
    for i in range(files):
        with open(os.path.join(d, f"f{i}.txt"), "w") as f:
            f.write("".join(random.choice("abcdefgh \n") for _ in range(random.randint(200, 4000))))
os.makedirs(os.path.join(root, "build"))
# A python step: numpy and pandas imported (Debian's, /usr/bin/python3), then it digests its
# input and sources; its
# output also in build/ (what make feeds the next step).
with open(os.path.join(root, "step.py"), "w") as f:
    f.write("""import sys, json, hashlib, pathlib
try:  # the heavy imports of a data step (Debian's python3-pandas, as examples/sales uses)
    import numpy, pandas
except ImportError:  # else a heavy set of the standard library's
    import asyncio, decimal, email.mime.multipart, http.client, xml.dom.minidom, unittest, \\
        multiprocessing.pool, concurrent.futures, argparse, logging.handlers, sqlite3, csv
task = sys.argv[1]
inp = json.load(sys.stdin)
h = hashlib.sha256(json.dumps(inp, sort_keys=True).encode())
for p in sorted(pathlib.Path("src", task).iterdir()):
    h.update(p.read_bytes())
out = json.dumps({"task": task, "digest": h.hexdigest()})
pathlib.Path("build", task + ".out").write_text(out + "\\n")
print(out)
""")
# A shell step: digests its input and sources; its output also in build/ (what make feeds on).
with open(os.path.join(root, "step.sh"), "w") as f:
    f.write("""#!/bin/sh
set -e
d=$( (cat; cat src/$1/*) | sha256sum | cut -c1-64)
printf '{"task":"%s","digest":"%s"}\\n' "$1" "$d" | tee build/$1.out
""")
os.chmod(os.path.join(root, "step.sh"), 0o755)
with open(os.path.join(root, "chain.yaml"), "w") as c, open(os.path.join(root, "Makefile"), "w") as m:
    c.write("chain_id: cache-bench\ntasks:\n")
    m.write("all: " + " ".join(f"build/mod{t}.out" for t in range(layers * width)) + "\n")
    for t in range(layers * width):
        name, above = f"mod{t}", (f"mod{t - width}" if t >= width else None)
        py = t % 5 == 0  # 10 of 50
        cmd = f"/usr/bin/python3 step.py {name}" if py else f"./step.sh {name}"
        deps = f"[{above}]" if above else "[]"
        c.write(f"  - task_id: {name}\n    command: {cmd}\n    dependencies: {deps}\n"
                f"    sources: ['src/{name}/*.txt', '{'step.py' if py else 'step.sh'}']\n"
                f"    outputs: ['build/{name}.out']\n")
        prereq = f"$(wildcard src/{name}/*.txt) {'step.py' if py else 'step.sh'}"
        if above:
            prereq += f" build/{above}.out"
        feed = f"cat build/{above}.out" if above else "echo '{}'"
        m.write(f"build/{name}.out: {prereq}\n\t{feed} | {cmd} > /dev/null\n")
PY

now() { echo "$EPOCHREALTIME"; }
elapsed() { python3 -c "print(f'{$(now) - $1:.4f}')"; }
median() { python3 -c "import statistics,sys; print(statistics.median(map(float, sys.argv[1:])))" "$@"; }
ratio() { python3 -c "print(f'{$1 / $2:.3f}')"; }
run_chain() {  # run_chain: one `chainctl run`, its seconds on stdout
  local t0; t0=$(now)
  (cd "$proj" && "$chainctl" run -f chain.yaml >/dev/null 2>"$tmp/run.err") || {
    cat "$tmp/run.err" >&2; exit 1; }
  elapsed "$t0"
}
states() {  # states: "N cached, M succeeded" of the last run
  "$chainctl" list runs -o json | python3 -c '
import json, sys
runs = json.load(sys.stdin)
runs = runs.get("runs", runs) if isinstance(runs, dict) else runs
states = runs[0]["task_states"]
print(", ".join(f"{n} {s}" for s, n in sorted(states.items())))'
}

"$chainctl" daemon start >/dev/null
first=$(run_chain); first_states=$(states)
seconds=()
for _ in $(seq "$ROUNDS"); do seconds+=("$(run_chain)"); done
second=$(median "${seconds[@]}"); second_states=$(states)

# make: a first build (every target), then -q deciding that nothing is to do.
(cd "$proj" && rm -f build/*.out && make -s -j"$(nproc)" >/dev/null)
makeq=()
for _ in $(seq "$ROUNDS"); do
  t0=$(now); (cd "$proj" && make -q) || { echo "make -q says work is left" >&2; exit 1; }
  makeq+=("$(elapsed "$t0")")
done
mq=$(median "${makeq[@]}")
(cd "$proj" && make -s >/dev/null)  # make's files are the chain's again below
first_make_t0=$(now); (cd "$proj" && rm -f build/*.out && make -s -j"$(nproc)" >/dev/null); first_make=$(elapsed "$first_make_t0")

echo "50 tasks (10 python3, 40 sh) over 2,000 source files; median of $ROUNDS where repeated"
printf '  first run   %7.3f s  (%s)\n' "$first" "$first_states"
printf '  second run  %7.3f s  (%s) = %sx the first (goal <= 0.05x)\n' "$second" "$second_states" "$(ratio "$second" "$first")"
printf '  make -q     %7.3f s  (deciding the same): chainctl second run = %sx make -q\n' "$mq" "$(ratio "$second" "$mq")"
printf '  make -j%s first build %.3f s: chainctl first run = %sx it\n' "$(nproc)" "$first_make" "$(ratio "$first" "$first_make")"

# One source edited in the second layer: its task and the three below it run.
echo "edited" >>"$proj/src/mod12/f3.txt"
edit=$(run_chain)
printf '  one source edited (src/mod12): %.3f s = %sx the first; %s\n' "$edit" "$(ratio "$edit" "$first")" "$(states)"

# Watch: edit to result, against a cold `chainctl run` of the same edit (--no-cache: all run).
t0=$(now); (cd "$proj" && "$chainctl" run -f chain.yaml --no-cache >/dev/null 2>&1); cold=$(elapsed "$t0")
(cd "$proj" && exec "$chainctl" run -f chain.yaml --watch >/dev/null 2>"$tmp/watch.err") &
watch_pid=$!
wait_for() {  # wait_for PATTERN N: until the watch printed PATTERN N times (bounded: 120 s)
  for _ in $(seq 1200); do
    [[ $(grep -c "$1" "$tmp/watch.err" 2>/dev/null || true) -ge $2 ]] && return 0
    kill -0 "$watch_pid" 2>/dev/null || { cat "$tmp/watch.err" >&2; return 1; }
    sleep 0.1
  done
  return 1
}
if wait_for 'watch: watching' 1; then
  echo "edited again" >>"$proj/src/mod12/f3.txt"
  if wait_for 'watch: result in' 1; then
    ms=$(grep -o 'watch: result in [0-9]* ms' "$tmp/watch.err" | tail -1 | grep -o '[0-9]*')
    printf '  watch: edit to result %s ms (4 tasks run, 46 cached); a cold run %.3f s: %sx\n' \
      "$ms" "$cold" "$(ratio "$ms" "$(python3 -c "print($cold * 1000)")")"
  else
    echo "  watch: no result seen within 120 s"
  fi
fi
kill -INT "$watch_pid" 2>/dev/null || true
wait "$watch_pid" 2>/dev/null || true
watch_pid=""
