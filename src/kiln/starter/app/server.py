"""hello: a stdlib-only HTTP app for kiln's tour, demo and tests.

GET /          "<version> <greeting>" and which instance answered
GET /healthz   200, or 500 when FAIL_HEALTH=1
GET /data      lists files in the uploads volume; POST /data stores the body there
GET /artifact-write  tries to write into the app's own (read-only) directory

ERROR_RATE=0.2 makes that fraction of GET / answer 500 (for canary tests);
STARTUP_DELAY=3 waits that many seconds before listening (for tests);
CRASH_AFTER=1 lets that many instances start, counted in the uploads volume,
and makes every later one exit at once (a rolling batch that fails, for tests).
SIGTERM stops accepting and lets in-flight requests finish.
"""

import os
import random
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
VERSION = (HERE / "VERSION").read_text().strip() if (HERE / "VERSION").exists() else "v1"
GREETING = os.environ.get("GREETING", "hello")
INSTANCE = os.environ.get("KILN_INSTANCE", "local")
ERROR_RATE = float(os.environ.get("ERROR_RATE", "0") or 0)
FAIL_HEALTH = os.environ.get("FAIL_HEALTH") == "1"
VOLUME = Path(os.environ.get("KILN_VOLUME_UPLOADS", HERE / "uploads"))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive

    def log_message(self, format, *args):
        pass

    def reply(self, status, body):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/healthz":
            return self.reply(500 if FAIL_HEALTH else 200, "unhealthy\n" if FAIL_HEALTH else "ok\n")
        if self.path.startswith("/slow"):
            time.sleep(float(self.path.partition("=")[2] or 1))
            return self.reply(200, f"{VERSION} slow done\n")
        if self.path == "/data":
            VOLUME.mkdir(parents=True, exist_ok=True)
            names = sorted(p.name for p in VOLUME.iterdir())
            return self.reply(
                200, "\n".join(f"{n}: {(VOLUME / n).read_text()}" for n in names) + "\n"
            )
        if self.path == "/artifact-write":
            try:
                (HERE / "tampered.txt").write_text("written by the instance\n")
            except OSError as e:
                return self.reply(200, f"refused: {e.strerror}\n")
            return self.reply(200, "written\n")
        if ERROR_RATE and random.random() < ERROR_RATE:
            return self.reply(500, f"{VERSION} error\n")
        return self.reply(200, f"{VERSION} {GREETING}\nfrom {INSTANCE}\n")

    def do_POST(self):
        if self.path != "/data":
            return self.reply(404, "not found\n")
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        VOLUME.mkdir(parents=True, exist_ok=True)
        name = f"{VERSION}-{time.time_ns()}.txt"
        (VOLUME / name).write_bytes(body)
        return self.reply(201, f"stored {name}\n")


def crash_if_too_many():
    limit = os.environ.get("CRASH_AFTER")
    if not limit:
        return
    VOLUME.mkdir(parents=True, exist_ok=True)
    started = len(list(VOLUME.glob("started-*")))
    (VOLUME / f"started-{INSTANCE}").write_text("")
    if started >= int(limit):
        raise SystemExit(f"CRASH_AFTER={limit}: {started} instances started already")


def main():
    crash_if_too_many()
    time.sleep(float(os.environ.get("STARTUP_DELAY", "0") or 0))
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ.get("PORT", "8000"))), Handler)
    server.daemon_threads = False  # in-flight requests finish on shutdown
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"{VERSION} listening on {server.server_address[1]} as {INSTANCE}", flush=True)
    stop.wait()
    server.shutdown()
    server.server_close()  # joins request threads: in-flight requests complete
    print("stopped", flush=True)


if __name__ == "__main__":
    main()
