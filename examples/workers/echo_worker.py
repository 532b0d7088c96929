#!/usr/bin/env python3
"""A persistent worker for a task with `mode: worker` (DESIGN.md §4 "Worker mode").

chaind starts this program once and keeps it running: it serves many invocations of the task,
one at a time, over NDJSON (one JSON object per line) on stdin and stdout.

  request  (a line on stdin):   {"id": 7, "input": ..., "task_id": "...", "run_id": "...",
                                 "workdir": "/path/of/this/invocation"}
  response (a line on stdout):  {"id": 7, "output": ...}     the task's output (any JSON value)
                             or {"id": 7, "error": "why"}    the invocation failed

Rules for task authors:
  - Answer each request with exactly one line carrying the same "id", and flush it.
  - Write nothing else on stdout (log to stderr: it goes to the task's log file). A line that
    is not JSON, a wrong id or extra output gets the worker killed.
  - Do the work relative to the request's "workdir", not the process's current directory: a
    worker outlives the invocation it was started for, and may have been started before it.
  - Do not act before reading a request: a worker may be started ahead of need (a prewarm).
  - Exit when stdin ends; chaind closes it (then SIGTERM, then SIGKILL) to stop an idle worker.
  - Exiting or crashing during a request fails that request; the next one gets a new worker.
"""
import json
import sys


def handle(request):
    """The task's work: here, the input back with the number of words in its "text"."""
    text = request["input"].get("text", "") if isinstance(request["input"], dict) else ""
    return {"echo": request["input"], "words": len(str(text).split())}


def main():
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        try:
            response = {"id": request["id"], "output": handle(request)}
        except Exception as e:  # a failed invocation, not a dead worker
            response = {"id": request["id"], "error": f"{type(e).__name__}: {e}"}
        sys.stdout.write(json.dumps(response) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
