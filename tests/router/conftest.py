"""Fixtures for router tests: a real router process per test and stdlib HTTP backends."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from kiln.model.route import FleetRoute, Route, RouteTable
from kiln.router import RouterClient, ensure_router, stop_router
from kiln.testing.ports import free_port


def free_addr() -> str:
    """A 127.0.0.1 address nothing listens on."""
    return f"127.0.0.1:{free_port()}"


class Backend(ThreadingHTTPServer):
    """A test backend; every answer's first line is ``backend NAME``."""

    daemon_threads = True

    def __init__(self, name: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.name = name
        self.addr = f"127.0.0.1:{self.server_address[1]}"
        self.peers: list[int] = []  # client port of every request: shows connection reuse
        self.headers_seen: list[dict[str, str]] = []
        self.open_connections = 0
        self._count_lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client (the router) hanging up mid-answer is part of some tests

    def count(self, delta: int) -> None:
        with self._count_lock:
            self.open_connections += delta

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Backend

    def log_message(self, format: str, *args: object) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without this Nagle delays the second.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.count(1)

    def finish(self) -> None:
        super().finish()
        self.server.count(-1)

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _note(self) -> str:
        self.server.peers.append(self.client_address[1])
        self.server.headers_seen.append({k.lower(): v for k, v in self.headers.items()})
        return f"backend {self.server.name}\n"

    def do_GET(self) -> None:
        first = self._note()
        path, _, query = self.path.partition("?")
        if path == "/sleep":
            time.sleep(float(query or "0.5"))
            self._send(200, f"{first}slept\n".encode())
        elif path == "/500":
            self._send(500, f"{first}failed\n".encode())
        elif path == "/headers":
            self._send(200, first.encode() + json.dumps(self.server.headers_seen[-1]).encode())
        elif path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in (first.encode(), b"part two\n", b"x" * 70000):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self._send(200, first.encode())

    do_HEAD = do_GET

    def do_POST(self) -> None:
        first = self._note()
        if "chunked" in self.headers.get("Transfer-Encoding", ""):
            body = b""
            while size := int(self.rfile.readline().split(b";")[0], 16):
                body += self.rfile.read(size)
                self.rfile.readline()
            self.rfile.readline()
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self._send(200, first.encode() + body)

    do_PUT = do_POST


@pytest.fixture
def backends() -> Iterator[Callable[[str], Backend]]:
    started: list[Backend] = []

    def make(name: str) -> Backend:
        backend = Backend(name)
        started.append(backend)
        return backend

    yield make
    for backend in started:
        backend.close()


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def router(state_dir: Path) -> Iterator[RouterClient]:
    client = ensure_router(state_dir)
    yield client
    client.close()
    stop_router(state_dir)
    log = (state_dir / "router" / "router.log").read_text()
    assert "Traceback" not in log, log


def table(*routes: Route, version: int = 0) -> RouteTable:
    return RouteTable(routes=routes, version=version)


def route(listen: str, *fleets: tuple[str, int, list[Backend] | list[str]]) -> Route:
    return Route(
        name=f"app/env/{listen}",
        listen=listen,
        fleets=tuple(
            FleetRoute(
                fleet=name,
                weight=weight,
                backends=tuple(b if isinstance(b, str) else b.addr for b in members),
            )
            for name, weight, members in fleets
        ),
    )


def wait_for(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@contextlib.contextmanager
def connection(listen: str) -> Iterator[socket.socket]:
    host, port = listen.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        yield sock
