#!/usr/bin/python3
"""A throttled HTTP origin for the input-cache benchmark (daemon/prefetch/http_cache.h).

    throttled_http_server.py --port 0 --rate BYTES_PER_S --size BYTES [--port-file F]

GET /data answers SIZE deterministic bytes (byte i is i*31+7 mod 251) at no more than RATE
bytes per second per connection, with an ETag and a Last-Modified; a matching If-None-Match
(or, without one, an equal If-Modified-Since) gets 304 Not Modified. Other paths: 404.
Each connection has its own thread. The chosen port is printed on stdout (one line) and, with
--port-file, written to that file (atomically: a reader never sees half a number).
Standard library only.
"""

import argparse
import email.utils
import http.server
import os
import socketserver
import sys
import time

CHUNK = 64 * 1024


def make_block():
    """Bytes repeating with period 251 (byte i = i*31+7 mod 251), long enough to slice from."""
    return bytes((i * 31 + 7) % 251 for i in range(251 * 256))


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet: a benchmark reads our stdout
        pass

    def do_GET(self):
        cfg = self.server.cfg
        if self.path != "/data":
            body = b"not found\n"
            self.send_response(404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        inm = self.headers.get("If-None-Match")
        ims = self.headers.get("If-Modified-Since")
        if (inm is not None and inm == cfg.etag) or (inm is None and ims == cfg.last_modified):
            self.send_response(304)
            self.send_validators(cfg)
            self.end_headers()
            return
        self.send_response(200)
        self.send_validators(cfg)
        self.send_header("Content-Length", str(cfg.size))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        self.send_throttled(cfg)

    def send_validators(self, cfg):
        self.send_header("ETag", cfg.etag)
        self.send_header("Last-Modified", cfg.last_modified)

    def send_throttled(self, cfg):
        block = cfg.block
        start = time.monotonic()
        sent = 0
        while sent < cfg.size:
            n = min(CHUNK, cfg.size - sent)
            offset = sent % len(block)
            data = (block[offset:] + block * (n // len(block) + 1))[:n]
            due = start + (sent + n) / cfg.rate  # when these bytes may have been sent
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            try:
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                return
            sent += n


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--rate", type=float, required=True, help="bytes per second")
    parser.add_argument("--size", type=int, required=True, help="bytes of /data")
    parser.add_argument("--port-file", help="also write the chosen port here")
    cfg = parser.parse_args()
    if cfg.rate <= 0 or cfg.size < 0:
        parser.error("--rate must be > 0 and --size >= 0")
    cfg.block = make_block()
    cfg.etag = '"data-%d"' % cfg.size
    cfg.last_modified = email.utils.formatdate(0, usegmt=True)
    server = Server(("127.0.0.1", cfg.port), Handler)
    server.cfg = cfg
    port = server.server_address[1]
    print(port, flush=True)
    if cfg.port_file:
        tmp = cfg.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.replace(tmp, cfg.port_file)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
