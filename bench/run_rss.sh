#!/usr/bin/env bash
# Daemon memory over many runs (issue 4): 10,000 runs of a two-task chain (JSON passed from
# one task to the next), triggered 4 at a time through the API; chaind's RSS is sampled after
# every 2,000 runs have ended: the heap (RssAnon), which must stay bounded, and the pages of
# files mapped (RssFile: the binary and LMDB's map of the store, which grows with the stored
# runs; page cache the kernel can take back).
# Needs BUILD_DIR.
set -euo pipefail
: "${BUILD_DIR:?}"
RUNS=${RUNS:-10000} STEP=${STEP:-2000}
chainctl=$BUILD_DIR/cli/chainctl
tmp=$(mktemp -d /tmp/chainctl-bench.XXXXXX)
export CHAINCTL_SOCKET=$tmp/chaind.sock CHAINCTL_STATE_DIR=$tmp/state CHAIND=$BUILD_DIR/daemon/chaind
trap '"$chainctl" daemon stop >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
cat > "$tmp/chain.yaml" <<'YAML'
chain_id: rss
tasks:
  - {task_id: make, command: 'echo "{\"n\": 1}"'}
  - {task_id: pass, command: cat, dependencies: [make]}
YAML
"$chainctl" daemon start >/dev/null
"$chainctl" apply -f "$tmp/chain.yaml" >/dev/null
pid=$(curl -s --unix-socket "$CHAINCTL_SOCKET" http://localhost/health |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
rss() {  # "total anon file" in KiB
  awk '/^VmRSS/ {t=$2} /^RssAnon/ {a=$2} /^RssFile/ {f=$2} END {printf "%8s  %8s  %8s", t, a, f}' \
    "/proc/$pid/status"
}
ended() {
  curl -s --unix-socket "$CHAINCTL_SOCKET" "http://localhost/runs?limit=1" |
    python3 -c 'import json,sys; r=json.load(sys.stdin)["runs"]; print(int(r[0]["run_id"][4:]) if r and r[0]["status"] != "running" else -1)'
}
echo "run_rss: $RUNS runs of a 2-task chain; chaind RSS (KiB) after every $STEP"
printf '  %8s  %8s  %8s  %8s\n' runs RSS anon file
printf '  %8s  %s\n' 0 "$(rss)"
first=0
done_runs=0
while ((done_runs < RUNS)); do
  seq "$STEP" | xargs -P 4 -I@ curl -s -o /dev/null --unix-socket "$CHAINCTL_SOCKET" \
    -X POST -d '{}' http://localhost/chains/rss/trigger
  done_runs=$((done_runs + STEP))
  # Bounded poll until the newest run has ended (runs end in about trigger order).
  for _ in $(seq 1 1200); do
    [[ $(curl -s --unix-socket "$CHAINCTL_SOCKET" "http://localhost/runs?limit=$STEP&chain=rss" |
      python3 -c 'import json,sys; print(sum(r["status"] == "running" for r in json.load(sys.stdin)["runs"]))') == 0 ]] && break
    sleep 0.5
  done
  printf '  %8s  %s\n' "$done_runs" "$(rss)"
done
stored=$(curl -s --unix-socket "$CHAINCTL_SOCKET" "http://localhost/runs?chain=rss&limit=$((RUNS + 1))" |
  python3 -c 'import json,sys; r=json.load(sys.stdin)["runs"]; print(sum(x["status"] == "succeeded" for x in r))')
echo "  runs succeeded: $stored of $RUNS"
[[ $stored == "$RUNS" ]] || { echo "run_rss: runs were lost or failed" >&2; exit 1; }
echo "  state folder: $(du -sh "$tmp/state" | cut -f1), of which run folders $(du -sh "$tmp/state/runs" | cut -f1)"
