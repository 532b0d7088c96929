#!/usr/bin/python3
"""Prefetching benchmarks 1, 2 and 4 of issue 7, ratios from one run (bench/README.md).

1. A linear chain of 5 python3 tasks (bench/prefetch_task.py: a heavy import, ~20 ms of work),
   `prewarm: spawn`, triggered again and again with a pause between runs. After the training
   runs, each run's latency (the run's own created -> ended times) with prefetching, with
   `--no-prefetch` (cold), and for an oracle (this harness starts the 5 processes ahead, waits
   until each blocks on its stdin, then feeds them in turn); the first run after a restart of
   a chaind with a trained model (no warmth from an earlier run); the chain in worker mode.
2. A router whose output picks one of three branches, 70/20/10 (seeded), for 100 runs: the
   hit rate of the branches with a warm budget of 1 and of 3, and the waste.
4. chaind's CPU time per run and peak memory, prefetching on vs off, on benchmark 1.

Usage: prefetch.py --chainctl PATH --chaind PATH [--runs N] [--train N] [--pause S]
                   [--only 1|2] [--restarts N] [--router-runs N]
"""
import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TASK = os.path.join(HERE, "prefetch_task.py")


class Chaind:
    """A chaind on a socket and state folder of its own, driven through chainctl."""

    def __init__(self, args, root, name, flags):
        self.args, self.flags = args, flags
        self.sock = os.path.join(root, name + ".sock")
        self.state = os.path.join(root, name + ".state")
        self.log = open(os.path.join(root, name + ".log"), "a")
        self.env = dict(os.environ, CHAINCTL_SOCKET=self.sock, CHAINCTL_STATE_DIR=self.state)
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [self.args.chaind, "--socket", self.sock, "--state-dir", self.state] + self.flags,
            stdout=self.log, stderr=self.log)
        for _ in range(1000):
            if subprocess.run(["curl", "-sf", "--unix-socket", self.sock, "http://localhost/health"],
                              capture_output=True).returncode == 0:
                return
            time.sleep(0.01)
        sys.exit("chaind did not start; see " + self.log.name)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)

    def ctl(self, *argv, stdin=None):
        r = subprocess.run([self.args.chainctl, "--no-autostart", *argv], env=self.env,
                           input=stdin, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit("chainctl %s failed: %s" % (" ".join(argv), r.stderr.strip()))
        return r.stdout

    def get(self, path):
        r = subprocess.run(["curl", "-s", "--unix-socket", self.sock, "http://localhost" + path],
                           capture_output=True, text=True, check=True)
        return json.loads(r.stdout)

    def run_ms(self, chain, trigger_input="{}"):
        """Triggers a run, waits for it, returns its latency (created -> ended) in ms."""
        self.ctl("trigger", chain, "--wait", "--input", trigger_input)
        run = json.loads(self.ctl("list", "runs", "--chain", chain, "--limit", "1", "-o", "json"))["runs"][0]
        if run["status"] != "succeeded":
            sys.exit("run %s: %s" % (run["run_id"], run.get("error")))
        return run["ended_unix_ms"] - run["created_unix_ms"]


def linear_chain(root, name, worker):
    tasks = []
    for i in range(1, 6):
        t = {"task_id": "t%d" % i, "executable_code_location": TASK, "prewarm": "spawn",
             "dependencies": ["t%d" % (i - 1)] if i > 1 else []}
        if worker:
            t.update(mode="worker", args=["--worker"])
        tasks.append(t)
    path = os.path.join(root, name + ".json")
    with open(path, "w") as f:
        json.dump({"chain_id": name, "tasks": tasks}, f)
    return path


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def measure_chain(args, root, name, flags, worker=False, restarts=0):
    d = Chaind(args, root, name, flags)
    d.start()
    d.ctl("apply", "-f", linear_chain(root, name, worker))
    for _ in range(args.train):
        d.run_ms(name)
        time.sleep(args.pause)
    times = []
    for _ in range(args.runs):
        times.append(d.run_ms(name))
        time.sleep(args.pause)
    stats = d.get("/stats")
    runs = args.train + args.runs
    out = {"median_ms": median(times), "runs_ms": times,
           "cpu_s_per_run": stats["daemon"]["cpu_seconds"] / runs,
           "max_rss_mb": stats["daemon"]["max_rss_bytes"] / 2**20,
           "prefetch": stats["prefetch"]}
    if restarts:
        d.ctl("model", "train")
        first = []
        for _ in range(restarts):
            d.stop()
            d.start()
            first.append(d.run_ms(name))
        out["first_after_restart_ms"] = first
    d.stop()
    return out


def oracle(args):
    """The 5 processes started ahead (during the pause), then fed in turn."""
    times = []
    for _ in range(args.train + args.runs):
        procs = [subprocess.Popen([sys.executable, TASK], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True) for _ in range(5)]
        for p in procs:  # ready: blocked in read(2) on stdin, as chaind sees it
            while True:
                with open("/proc/%d/syscall" % p.pid) as f:
                    fields = f.read().split()
                if fields[:2] == ["0", "0x0"]:
                    break
                time.sleep(0.002)
        start = time.monotonic()
        data = "{}"
        for p in procs:
            data, _ = p.communicate(data)
        times.append((time.monotonic() - start) * 1000)
        time.sleep(args.pause)
    return median(times[args.train:])


def router(args, root, budget):
    chain = {"chain_id": "route", "tasks": [
        {"task_id": "router", "command": "cat", "prewarm": "off"}]}
    for b in "abc":
        chain["tasks"].append({
            "task_id": b, "executable_code_location": sys.executable,
            "args": ["-c", "import json,sys; json.load(sys.stdin); print('{}')"],
            "dependencies": ["router"], "prewarm": "spawn",
            "when": {"path": "/router/branch", "op": "eq", "value": b}})
    path = os.path.join(root, "route.json")
    with open(path, "w") as f:
        json.dump(chain, f)
    d = Chaind(args, root, "route%d" % budget, ["--prefetch-processes", str(budget)])
    d.start()
    d.ctl("apply", "-f", path)
    rng = random.Random(7)
    picks = rng.choices("abc", weights=[70, 20, 10], k=args.router_runs)
    for b in picks:
        d.run_ms("route", json.dumps({"branch": b}))
        time.sleep(args.router_pause)
    p = d.get("/prefetch")
    d.stop()
    branches = [t for t in p["tasks"] if t["task_id"] in "abc"]
    hits = sum(t["hits"] for t in branches)
    misses = sum(t["misses"] for t in branches)
    return {"hit_rate": hits / max(1, hits + misses), "hits": hits, "misses": misses,
            "picks": {b: picks.count(b) for b in "abc"}, "wasted": p["wasted"],
            "by_branch": {t["task_id"]: (t["hits"], t["misses"]) for t in branches},
            "prewarms": p["prewarms"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--chainctl", required=True)
    ap.add_argument("--chaind", required=True)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--train", type=int, default=10)
    ap.add_argument("--pause", type=float, default=1.0)
    ap.add_argument("--restarts", type=int, default=3)
    ap.add_argument("--router-runs", type=int, default=100)
    ap.add_argument("--router-pause", type=float, default=0.3)
    ap.add_argument("--only", choices=["1", "2"])
    args = ap.parse_args()
    root = tempfile.mkdtemp(prefix="chainctl-bench-prefetch.")
    try:
        if args.only != "2":
            bench1(args, root)
        if args.only != "1":
            bench2(args, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def bench1(args, root):
    print("benchmark 1: linear chain of 5 python3 tasks, default flags, %d training runs, then the"
          " median of %d (pause %.1f s)" % (args.train, args.runs, args.pause))
    cold = measure_chain(args, root, "cold", ["--no-prefetch"])
    # The default flags: prefetching is on, its budgets are the defaults.
    warm = measure_chain(args, root, "warm", [], restarts=args.restarts)
    work = measure_chain(args, root, "worker", [], worker=True)
    ideal = oracle(args)
    first = median(warm["first_after_restart_ms"])
    rows = [("cold (--no-prefetch)", cold["median_ms"], ""),
            ("oracle (5 processes started ahead)", ideal, ""),
            ("prefetch on", warm["median_ms"],
             "%.2fx cold (goal <= 0.35), %.2fx oracle (goal <= 1.10)" %
             (warm["median_ms"] / cold["median_ms"], warm["median_ms"] / ideal)),
            ("first run after a restart", first,
             "%.2fx cold (goal <= 0.45 on 2 cores, 0.40 on 4 or more; %d here), runs %s" %
             (first / cold["median_ms"], os.cpu_count(), warm["first_after_restart_ms"])),
            ("worker mode, prefetch on", work["median_ms"],
             "%.2fx cold (goal <= 0.15)" % (work["median_ms"] / cold["median_ms"]))]
    for name, ms, note in rows:
        print("  %-36s %8.1f ms  %s" % (name, ms, note))
    p = warm["prefetch"]
    print("  prefetch figures: hit rate %s, hits %d, misses %d, wasted %d (%.2f CPU-s, %.1f MB-s)"
          % (p["hit_rate"], p["hits"], p["misses"], p["wasted"]["prewarms"],
             p["wasted"]["cpu_seconds"], p["wasted"]["mb_seconds"]))
    print("benchmark 4: chaind's own cost on benchmark 1")
    print("  CPU per run: %.2f ms on, %.2f ms off: %.2fx (goal <= 1.3)" % (
        warm["cpu_s_per_run"] * 1000, cold["cpu_s_per_run"] * 1000,
        warm["cpu_s_per_run"] / cold["cpu_s_per_run"]))
    print("  peak RSS: %.1f MiB on, %.1f MiB off: %.2fx" % (
        warm["max_rss_mb"], cold["max_rss_mb"], warm["max_rss_mb"] / cold["max_rss_mb"]))


def bench2(args, root):
    print("benchmark 2: router, branches 70/20/10 (seeded), %d runs" % args.router_runs)
    for budget, goal in ((1, 0.65), (3, 0.95)):
        r = router(args, root, budget)
        print("  warm budget %d: hit rate %.3f (goal >= %.2f; best possible %s), %d prewarms, "
              "wasted %d (%.2f CPU-s, %.1f MB-s); picks %s; (hits, misses) %s" % (
                  budget, r["hit_rate"], goal, "0.70" if budget == 1 else "1.00", r["prewarms"],
                  r["wasted"]["prewarms"], r["wasted"]["cpu_seconds"], r["wasted"]["mb_seconds"],
                  r["picks"], r["by_branch"]))


if __name__ == "__main__":
    main()
