#!/usr/bin/python3
"""A task of bench/prefetch.sh: a heavy start-up (standard-library imports: ~165 ms with the
interpreter on the reference VM), then ~20 ms of work on its input. `prewarm: spawn` safe: it
does nothing before its input arrives on stdin. With --worker it serves NDJSON requests instead
(DESIGN.md §4)."""
import argparse, asyncio, decimal, http.client, statistics  # noqa: F401 (the start-up)
import json
import sys
import time


def work(data):
    """~20 ms of CPU, then the input's counter plus one."""
    end = time.process_time() + 0.020
    x = 0
    while time.process_time() < end:
        x += 1
    step = data.get("step", 0) if isinstance(data, dict) else 0
    return {"step": step + 1}


if len(sys.argv) > 1 and sys.argv[1] == "--worker":
    for line in sys.stdin:
        request = json.loads(line)
        print(json.dumps({"id": request["id"], "output": work(request["input"])}), flush=True)
else:
    print(json.dumps(work(json.load(sys.stdin))))
