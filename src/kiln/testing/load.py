"""A steady HTTP load generator for tests, the demo and benchmarks.

``Load(url)`` runs client threads, each with its own keep-alive connection,
sending GETs back to back and tallying what came back. It must never send
traffic anywhere but 127.0.0.1 / localhost: it is a test tool, not a stress tool.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from types import TracebackType
from urllib.parse import urlsplit

_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
# Errors that mean "the server closed an idle keep-alive connection": worth one retry.
_STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


@dataclass(frozen=True)
class LoadResult:
    ok: int = 0
    failed: int = 0  # exceptions, or status >= 500
    errors: list[str] = field(default_factory=list)  # first 20 distinct messages
    statuses: Counter[int] = field(default_factory=Counter)
    bodies: Counter[str] = field(default_factory=Counter)  # first line of each body
    recent: list[str] = field(default_factory=list)  # first lines of the last 200 responses
    latencies_ms: list[float] = field(default_factory=list)


class Load:
    def __init__(
        self,
        url: str,
        clients: int = 20,
        max_requests: int = 200_000,
        max_seconds: float = 120.0,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname not in _LOCAL_HOSTS:
            raise ValueError(f"Load only sends plain HTTP to this machine, not to {url!r}")
        self._host = parts.hostname
        self._port = parts.port or 80
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._clients = clients
        self._max_requests = max_requests
        self._max_seconds = max_seconds
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sent = 0
        self._ok = 0
        self._failed = 0
        self._errors: list[str] = []
        self._statuses: Counter[int] = Counter()
        self._bodies: Counter[str] = Counter()
        self._recent: deque[str] = deque(maxlen=200)
        self._latencies: list[float] = []
        self._deadline = 0.0

    def __enter__(self) -> Load:
        self.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        self._deadline = time.monotonic() + self._max_seconds
        for i in range(self._clients):
            t = threading.Thread(target=self._client, name=f"load-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> LoadResult:
        self._stop.set()
        for t in self._threads:
            t.join()
        return self.snapshot()

    def wait(self, timeout: float | None = None) -> LoadResult:
        """Wait for the clients to reach max_requests or max_seconds, then stop.

        Starts the load first if ``start()`` was not called.
        """
        if not self._threads:
            self.start()
        for t in self._threads:
            t.join(timeout)
        return self.stop()

    def snapshot(self) -> LoadResult:
        with self._lock:
            return LoadResult(
                ok=self._ok,
                failed=self._failed,
                errors=list(self._errors),
                statuses=Counter(self._statuses),
                bodies=Counter(self._bodies),
                recent=list(self._recent),
                latencies_ms=list(self._latencies),
            )

    def _take_ticket(self) -> bool:
        with self._lock:
            if self._sent >= self._max_requests:
                return False
            self._sent += 1
            return True

    def _client(self) -> None:
        conn: http.client.HTTPConnection | None = None
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            if not self._take_ticket():
                break
            start = time.perf_counter()
            try:
                if conn is None:
                    conn = self._connect()
                try:
                    status, body, conn = self._get(conn, reused=conn.sock is not None)
                except _STALE:
                    conn.close()
                    conn = self._connect()
                    status, body, conn = self._get(conn, reused=False)
            except (OSError, http.client.HTTPException) as exc:
                if conn is not None:
                    conn.close()
                conn = None
                self._record_error(exc)
                continue
            self._record(status, body, (time.perf_counter() - start) * 1000.0)
        if conn is not None:
            conn.close()

    def _connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self._host, self._port, timeout=30)

    def _get(
        self, conn: http.client.HTTPConnection, *, reused: bool
    ) -> tuple[int, bytes, http.client.HTTPConnection]:
        try:
            conn.request("GET", self._path)
            resp = conn.getresponse()
            body = resp.read()
        except _STALE:
            if reused:
                raise
            raise ConnectionError("server closed a fresh connection without answering") from None
        if resp.will_close:
            conn.close()  # the next request reconnects
        return resp.status, body, conn

    def _record(self, status: int, body: bytes, latency_ms: float) -> None:
        line = body.split(b"\n", 1)[0].decode(errors="replace").strip()[:80]
        with self._lock:
            self._statuses[status] += 1
            self._bodies[line] += 1
            self._recent.append(line)
            self._latencies.append(latency_ms)
            if status >= 500:
                self._failed += 1
                self._note(f"HTTP {status}: {line}")
            else:
                self._ok += 1

    def _record_error(self, exc: BaseException) -> None:
        with self._lock:
            self._failed += 1
            self._note(f"{type(exc).__name__}: {exc}")

    def _note(self, message: str) -> None:
        if len(self._errors) < 20 and message not in self._errors:
            self._errors.append(message)
