#!/usr/bin/python3
"""Prefetching benchmark 3 (bench/README.md): a task whose 200 MB input comes from a throttled
HTTP server on loopback (bench/throttled_http_server.py), after a 2 s predecessor; the run's
latency with prefetching (the input is downloaded into the cache and staged while the
predecessor runs) against --no-prefetch (downloaded when the task starts). Each run on a fresh
chaind (an empty input cache), so both download the whole input once.

Usage: staging.py --chainctl PATH --chaind PATH [--size BYTES] [--rate BYTES_PER_S] [--runs N]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from prefetch import Chaind  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--chainctl", required=True)
    ap.add_argument("--chaind", required=True)
    ap.add_argument("--size", type=int, default=200 * 10**6)
    ap.add_argument("--rate", type=int, default=100 * 10**6)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    root = tempfile.mkdtemp(prefix="chainctl-bench-staging.")
    server = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "throttled_http_server.py"), "--port", "0",
         "--rate", str(args.rate), "--size", str(args.size)], stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline())
        chain = {"chain_id": "staging", "tasks": [
            {"task_id": "before", "command": "cat > /dev/null; sleep 2; echo '{}'",
             "prewarm": "off"},
            {"task_id": "use", "dependencies": ["before"],
             "command": "cat > /dev/null; echo \"{\\\"bytes\\\": $(wc -c < $CHAIN_WORKDIR/inputs/files/data)}\"",
             "inputs": {"files": ["http://127.0.0.1:%d/data" % port]}}]}
        path = os.path.join(root, "staging.json")
        with open(path, "w") as f:
            json.dump(chain, f)
        results = {}
        for mode, flags in (("off", ["--no-prefetch"]), ("on", [])):
            times = []
            for i in range(args.runs):
                d = Chaind(args, root, "%s%d" % (mode, i), flags)
                d.start()
                d.ctl("apply", "-f", path)
                times.append(d.run_ms("staging"))
                out = json.loads(d.ctl("get", "run",
                                       json.loads(d.ctl("list", "runs", "--limit", "1", "-o",
                                                        "json"))["runs"][0]["run_id"], "-o", "json"))
                if out["output"]["bytes"] != args.size:
                    sys.exit("the task saw %s bytes" % out["output"]["bytes"])
                d.stop()
            results[mode] = statistics.median(times)
        print("benchmark 3: %d MB from a loopback server at %d MB/s after a 2 s task, median of %d"
              % (args.size // 10**6, args.rate // 10**6, args.runs))
        print("  --no-prefetch  %8.0f ms" % results["off"])
        print("  prefetch on    %8.0f ms  %.2fx (the download is hidden behind the 2 s task)"
              % (results["on"], results["on"] / results["off"]))
    finally:
        server.terminate()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
