#!/usr/bin/env python3
"""Soak test of chaind (issue 15; long, so not in CI: see README.md).

Drives a real chaind through its API with many runs of a two-task chain (JSON passed from
one task to the next), CONCURRENCY at a time. A run is *acknowledged* when its trigger
answered 202 (chaind stores a run before it answers) and *acknowledged as succeeded* when
its event stream ended and GET /runs/ID said "succeeded".

With --kill-every LO-HI, chaind is killed with SIGKILL after a random LO..HI more runs have
ended, wherever it is; then, with chaind down, the store is checked with `mdb_stat -ea` and
read in full with `mdb_dump -a` (both must succeed), chaind is started again
(--resume-interrupted) and every acknowledged run must be there, and every run acknowledged
as succeeded must still say so. At the end, all runs must have ended.

Every --sample-every ended runs it prints chaind's heap (RssAnon) and the store's size
(pages in use, from mdb_stat, and data.mdb's bytes on disk): the figures of issue 15 item 4.
Exit status 0 only if nothing was lost, misreported or corrupt.
"""

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

CHAIN = """chain_id: soak
tasks:
  - {task_id: make, command: 'echo "{\\"n\\": 1}"'}
  - {task_id: pass, command: cat, dependencies: [make]}
"""


class UnixConnection(http.client.HTTPConnection):
    """HTTP/1.1 over chaind's Unix socket, kept alive between requests."""

    def __init__(self, path, timeout=120):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


def call(conn, method, path, body=None, headers=None):
    """(status, body as JSON or text). Raises OSError/HTTPException when chaind is gone."""
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    data = response.read()
    try:
        return response.status, json.loads(data)
    except ValueError:
        return response.status, data.decode(errors="replace")


class Daemon:
    """One chaind on a private socket and state folder."""

    def __init__(self, args, folder):
        self.args = args
        self.socket = os.path.join(folder, "chaind.sock")
        self.state = os.path.join(folder, "state")
        self.log = os.path.join(folder, "chaind.log")
        self.stderr = os.path.join(folder, "chaind.stderr")
        self.process = None

    def start(self):
        command = [self.args.chaind, "--socket", self.socket, "--state-dir", self.state,
                   "--log-file", self.log, "--keep-runs", str(self.args.keep_runs),
                   "--resume-interrupted"]
        with open(self.stderr, "ab") as stderr:
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stderr=stderr)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # bounded poll until it serves
            if self.process.poll() is not None:
                sys.exit(f"soak: chaind exited with {self.process.returncode}; see {self.log}")
            try:
                if call(UnixConnection(self.socket, 5), "GET", "/health")[0] == 200:
                    return
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.05)
        sys.exit("soak: chaind did not serve within 60 s")

    def kill9(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)

    def databases(self):
        """{database: (entries, pages)} of the store, from `mdb_stat -a`."""
        store = os.path.join(self.state, "store")
        out = subprocess.run(["mdb_stat", "-a", store], capture_output=True, text=True).stdout
        found, name, pages = {}, None, 0
        for line in out.splitlines():
            key, _, value = line.strip().partition(":")
            if line.startswith("Status of "):
                name, pages = line[len("Status of "):].strip(), 0
            elif key in ("Branch pages", "Leaf pages", "Overflow pages"):
                pages += int(value)
            elif key == "Entries" and name:
                found[name] = (int(value), pages)
        return found

    def rss_anon_kib(self):
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
        return 0

    def store_bytes(self):
        """(bytes in the pages LMDB uses, bytes data.mdb takes on disk)."""
        store = os.path.join(self.state, "store")
        out = subprocess.run(["mdb_stat", "-e", store], capture_output=True, text=True).stdout
        fields = dict(line.strip().split(":", 1) for line in out.splitlines() if ":" in line)
        used = int(fields.get("Number of pages used", 0)) * int(fields.get("Page size", 4096))
        return used, os.stat(os.path.join(store, "data.mdb")).st_blocks * 512


class Soak:
    def __init__(self, args, daemon):
        self.args = args
        self.daemon = daemon
        self.lock = threading.Lock()
        self.up = threading.Event()  # chaind serves; cleared while it is down
        self.generation = 0  # chaind's starts so far
        self.claimed = 0  # triggers sent or about to be
        self.started = 0  # triggers answered 202
        self.corrupt = 0  # store checks that failed
        self.ended = 0  # runs whose end was seen
        self.acked = {}  # run id -> "created" | "succeeded"
        self.failures = []
        self.stopping = threading.Event()  # chaind died on its own: the clients stop

    def fail(self, message):
        with self.lock:
            self.failures.append(message)
        print("soak: FAIL:", message, flush=True)

    def client(self):
        """One client: trigger, follow to the end, read the outcome; again, until enough."""
        conn = UnixConnection(self.daemon.socket)
        generation = self.generation  # of the chaind that `conn` talks to
        while True:
            with self.lock:
                if self.claimed >= self.args.runs or self.stopping.is_set():
                    return
                self.claimed += 1
            self.up.wait()
            run_id = None
            try:
                status, body = call(conn, "POST", "/chains/soak/trigger",
                                    json.dumps({"input": {}}), {"Content-Type": "application/json"})
                if status != 202:
                    self.fail(f"trigger answered {status}: {body}")
                    continue
                run_id = body["run_id"]
                with self.lock:
                    self.started += 1
                    self.acked[run_id] = "created"
                call(conn, "GET", f"/runs/{run_id}/events?follow=1")
                status, run = call(conn, "GET", f"/runs/{run_id}")
                if status != 200 or run.get("status") != "succeeded":
                    self.fail(f"{run_id} ended {status}: {run}")
                with self.lock:
                    self.acked[run_id] = "succeeded"
                    self.ended += 1
            except (OSError, http.client.HTTPException) as error:
                conn.close()  # chaind was killed: wait until it is back
                if generation == self.generation and self.up.is_set():
                    self.fail(f"{run_id or 'a trigger'}: {error!r} while chaind was up")
                generation = self.generation
                with self.lock:
                    if run_id is None:
                        self.claimed -= 1  # not acknowledged: trigger again
                self.up.wait()

    def check_store(self):
        store = os.path.join(self.daemon.state, "store")
        for command in (["mdb_stat", "-ea", store], ["mdb_dump", "-a", store]):
            result = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                    text=True)
            if result.returncode != 0:
                self.corrupt += 1
                self.fail(f"{' '.join(command)}: {result.stderr.strip()}")
                return False
        return True

    def stored_runs(self):
        conn = UnixConnection(self.daemon.socket)
        status, body = call(conn, "GET", f"/runs?chain=soak&limit={self.args.runs + 1000}")
        if status != 200:
            self.fail(f"GET /runs answered {status}")
            return {}
        return {run["run_id"]: run["status"] for run in body["runs"]}

    def check_acknowledged(self):
        """Every acknowledged run is stored; every one acknowledged as succeeded says so."""
        stored = self.stored_runs()
        with self.lock:
            acked = dict(self.acked)
        if self.args.keep_runs < self.args.runs:  # retention removes the older ones
            acked = {run: seen for run, seen in acked.items() if run in stored}
        lost = [run for run in acked if run not in stored]
        changed = [run for run, seen in acked.items()
                   if seen == "succeeded" and stored.get(run) != "succeeded"]
        for run in lost[:5]:
            self.fail(f"{run} was acknowledged and is not stored")
        for run in changed[:5]:
            self.fail(f"{run} was acknowledged as succeeded and is stored as {stored.get(run)}")
        return len(lost), len(changed)

    def sample(self, ended):
        rss = self.daemon.rss_anon_kib()
        used, on_disk = self.daemon.store_bytes()
        print(f"  {ended:>8}  {rss:>10}  {used / 1e6:>12.1f}  {on_disk / 1e6:>12.1f}", flush=True)

    def run(self):
        args = self.args
        kills, lost, changed = 0, 0, 0
        next_kill = random.randint(*args.kill_every) if args.kill_every else None
        next_sample = args.sample_every
        print(f"  {'runs':>8}  {'RssAnon KiB':>10}  {'store MB used':>12}  {'data.mdb MB':>12}")
        self.sample(0)
        self.up.set()
        clients = [threading.Thread(target=self.client) for _ in range(args.concurrency)]
        for client in clients:
            client.start()
        while any(client.is_alive() for client in clients):
            time.sleep(0.05)  # the clients do the work; this thread samples and kills
            with self.lock:
                ended = self.ended
            if self.daemon.process.poll() is not None:
                self.fail(f"chaind exited on its own after {ended} runs, with status "
                          f"{self.daemon.process.returncode}: see {self.daemon.stderr} and "
                          f"{self.daemon.log}")
                self.stopping.set()
                self.up.set()
                for client in clients:
                    client.join()
                return kills, 0, 0
            if next_sample and ended >= next_sample:
                self.sample(ended)
                next_sample += args.sample_every
            if next_kill is not None and ended >= next_kill:
                self.up.clear()
                self.daemon.kill9()
                kills += 1
                self.check_store()
                self.daemon.start()
                self.generation += 1
                run_lost, run_changed = self.check_acknowledged()
                lost, changed = lost + run_lost, changed + run_changed
                print(f"  kill -9 #{kills} after {ended} runs ended: store checked, "
                      f"{len(self.acked)} acknowledged runs, {run_lost} lost", flush=True)
                next_kill = ended + random.randint(*args.kill_every)
                self.up.set()
        self.wait_all_ended()
        statuses = list(self.stored_runs().values())
        if statuses.count("succeeded") != len(statuses):
            self.fail(f"not every stored run succeeded: {statuses.count('succeeded')} of "
                      f"{len(statuses)}")
        run_lost, run_changed = self.check_acknowledged()
        self.sample(self.ended)
        return kills, lost + run_lost, changed + run_changed

    def wait_all_ended(self):
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:  # runs resumed after a kill end on their own
            if "running" not in self.stored_runs().values():
                return
            time.sleep(0.2)
        self.fail("runs still running 300 s after the last trigger")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chaind", required=True)
    parser.add_argument("--chainctl", required=True)
    parser.add_argument("--runs", type=int, default=10000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--keep-runs", type=int, default=None,
                        help="chaind --keep-runs (default: --runs + 1000: every run stays checkable)")
    parser.add_argument("--kill-every", default=None, help="LO-HI: SIGKILL after LO..HI runs")
    parser.add_argument("--sample-every", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    if args.kill_every:
        args.kill_every = tuple(int(n) for n in args.kill_every.split("-"))
    # A trigger stored but not answered before a kill is sent again: a few runs more than --runs.
    if args.keep_runs is None:
        args.keep_runs = args.runs + 1000
    if args.kill_every and args.keep_runs < args.runs + 1000:
        sys.exit("soak: with --kill-every, --keep-runs must keep every run (>= --runs + 1000)")
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    random.seed(seed)
    # The folder stays when the soak fails: chaind's state, log and stderr are there.
    folder = tempfile.mkdtemp(prefix="chainctl-soak.")
    daemon = Daemon(args, folder)
    daemon.start()
    env = dict(os.environ, CHAINCTL_SOCKET=daemon.socket, CHAINCTL_STATE_DIR=daemon.state)
    chain = os.path.join(folder, "soak.yaml")
    with open(chain, "w") as out:
        out.write(CHAIN)
    subprocess.run([args.chainctl, "apply", "-f", chain], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    print(f"soak: {args.runs} runs, {args.concurrency} at a time, --keep-runs "
          f"{args.keep_runs}, kill -9 every {args.kill_every or 'never'} (seed {seed})")
    started = time.monotonic()
    soak = Soak(args, daemon)
    kills, lost, changed = soak.run()
    if daemon.process.poll() is None:
        daemon.stop()
    soak.check_store()
    for name, (entries, pages) in sorted(daemon.databases().items()):
        print(f"  database {name}: {entries} entries, {pages} pages")
    print(f"soak: {soak.started} runs acknowledged, {soak.ended} seen to succeed, {kills} "
          f"kill -9, {soak.corrupt} failed store checks (of {kills + 1}), {lost} acknowledged "
          f"runs lost, {changed} misreported, {len(soak.failures)} failures, "
          f"{time.monotonic() - started:.0f} s")
    if soak.failures:
        print(f"soak: chaind's state, log and stderr kept in {folder}")
        return 1
    shutil.rmtree(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
