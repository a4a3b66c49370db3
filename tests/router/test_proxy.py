"""The data plane: HTTP/1.1 proxying through a real router process."""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable

from kiln.router import RouterClient

from .conftest import Backend, connection, free_addr, route, table


def _serve_one(router: RouterClient, backend: Backend) -> str:
    listen = free_addr()
    router.apply(table(route(listen, ("f1", 100, [backend]))))
    return listen


def _http(listen: str) -> http.client.HTTPConnection:
    host, port = listen.rsplit(":", 1)
    return http.client.HTTPConnection(host, int(port), timeout=10)


def _recv_all(sock_listen: str, raw: bytes) -> bytes:
    with connection(sock_listen) as sock:
        sock.sendall(raw)
        chunks = []
        while data := sock.recv(65536):
            chunks.append(data)
        return b"".join(chunks)


def test_get_and_post_with_content_length(
    router: RouterClient, backends: Callable[[str], Backend]
) -> None:
    listen = _serve_one(router, backends("a"))
    conn = _http(listen)
    conn.request("GET", "/")
    resp = conn.getresponse()
    assert (resp.status, resp.read()) == (200, b"backend a\n")
    body = b"hello \x00 world" * 1000
    conn.request("POST", "/echo", body=body)
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.read() == b"backend a\n" + body
    conn.close()


def test_chunked_request_and_response(
    router: RouterClient, backends: Callable[[str], Backend]
) -> None:
    listen = _serve_one(router, backends("a"))
    conn = _http(listen)
    conn.request("POST", "/echo", body=iter([b"one,", b"two,", b"three"]), encode_chunked=True)
    resp = conn.getresponse()
    assert resp.read() == b"backend a\none,two,three"
    conn.request("GET", "/chunked")
    resp = conn.getresponse()
    assert resp.getheader("Transfer-Encoding") == "chunked"
    assert resp.read() == b"backend a\npart two\n" + b"x" * 70000
    conn.close()


def test_keep_alive_reuses_connections_on_both_sides(
    router: RouterClient, backends: Callable[[str], Backend]
) -> None:
    backend = backends("a")
    listen = _serve_one(router, backend)
    conn = _http(listen)
    ports = set()
    for _ in range(20):
        conn.request("GET", "/")
        resp = conn.getresponse()
        assert resp.read() == b"backend a\n"
        ports.add(conn.sock.getsockname()[1])
    conn.close()
    assert len(ports) == 1, "the client connection was not kept alive"
    assert len(set(backend.peers)) == 1, "the router did not reuse its backend connection"


def test_hop_by_hop_headers_stripped_and_forwarded_for_added(
    router: RouterClient, backends: Callable[[str], Backend]
) -> None:
    listen = _serve_one(router, backends("a"))
    conn = _http(listen)
    headers = {"Connection": "keep-alive, X-Secret", "X-Secret": "1", "Keep-Alive": "timeout=5"}
    headers |= {"X-Forwarded-For": "10.0.0.1", "X-Custom": "kept"}
    conn.request("GET", "/headers", headers=headers)
    seen = json.loads(conn.getresponse().read().split(b"\n", 1)[1])
    conn.close()
    assert "x-secret" not in seen
    assert "keep-alive" not in seen
    assert seen["x-custom"] == "kept"
    assert seen["x-forwarded-for"] == "10.0.0.1, 127.0.0.1"


def test_http10_client_and_connection_close(
    router: RouterClient, backends: Callable[[str], Backend]
) -> None:
    listen = _serve_one(router, backends("a"))
    raw = _recv_all(listen, b"GET / HTTP/1.0\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200 ")
    assert raw.endswith(b"\r\n\r\nbackend a\n")
    # A chunked backend answer reaches an HTTP/1.0 client delimited by the close.
    raw = _recv_all(listen, b"GET /chunked HTTP/1.0\r\n\r\n")
    assert b"transfer-encoding" not in raw.lower()
    assert raw.endswith(b"\r\n\r\nbackend a\npart two\n" + b"x" * 70000)
    # recv returning b"" at all proves the router closed on Connection: close.
    raw = _recv_all(listen, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert raw.endswith(b"backend a\n")
    assert b"connection: close" in raw.lower()


def test_pipelined_requests_answered_in_order(
    router: RouterClient, backends: Callable[[str], Backend]
) -> None:
    listen = _serve_one(router, backends("a"))
    raw = _recv_all(
        listen,
        b"GET /sleep?0.05 HTTP/1.1\r\nHost: x\r\n\r\n"
        b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    assert raw.count(b"HTTP/1.1 200 ") == 3
    assert raw.index(b"slept") < raw.rindex(b"backend a\n")


def test_backend_5xx_passes_through_and_bad_request_is_400(
    router: RouterClient, backends: Callable[[str], Backend]
) -> None:
    listen = _serve_one(router, backends("a"))
    conn = _http(listen)
    conn.request("GET", "/500")
    resp = conn.getresponse()
    assert (resp.status, resp.read()) == (500, b"backend a\nfailed\n")
    conn.close()
    raw = _recv_all(listen, b"NOT HTTP AT ALL\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 400 ")


def test_no_weighted_fleet_is_503(router: RouterClient, backends: Callable[[str], Backend]) -> None:
    listen = free_addr()
    router.apply(table(route(listen, ("f1", 0, [backends("a")]))))
    conn = _http(listen)
    conn.request("GET", "/")
    resp = conn.getresponse()
    assert resp.status == 503
    resp.read()
    # The connection survives a router-generated error.
    conn.request("GET", "/")
    assert conn.getresponse().status == 503
    conn.close()


def test_all_backends_refusing_is_502(router: RouterClient) -> None:
    listen = free_addr()
    router.apply(table(route(listen, ("f1", 100, [free_addr(), free_addr()]))))
    conn = _http(listen)
    conn.request("GET", "/")
    resp = conn.getresponse()
    assert resp.status == 502
    assert b"f1" in resp.read()
    conn.close()
    fleet = router.metrics().fleets["f1"]
    assert (fleet.requests, fleet.responses_5xx, fleet.connect_errors) == (1, 1, 2)


class _Dying:
    """A backend that accepts connections and resets each without answering, as a
    killed process's listener does to the connections in its backlog."""

    def __init__(self) -> None:
        import socket
        import struct
        import threading

        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.addr = f"127.0.0.1:{self._sock.getsockname()[1]}"
        self.accepted = 0
        linger = struct.pack("ii", 1, 0)  # close with RST, not FIN

        def run() -> None:
            while True:
                try:
                    conn, _ = self._sock.accept()
                except OSError:
                    return
                self.accepted += 1
                conn.recv(65536)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                conn.close()

        threading.Thread(target=run, daemon=True).start()

    def close(self) -> None:
        self._sock.close()


def test_a_backend_dying_unanswered_passes_idempotent_requests_on(
    router: RouterClient, backends: Callable[[str], Backend]
) -> None:
    dying, alive = _Dying(), backends("b")
    listen = free_addr()
    router.apply(table(route(listen, ("f1", 100, [dying.addr, alive.addr]))))
    try:
        for _ in range(6):  # round-robin: every other request tries the dying one first
            conn = _http(listen)
            conn.request("GET", "/")
            resp = conn.getresponse()
            assert (resp.status, resp.read()) == (200, b"backend b\n")
            conn.close()
        assert dying.accepted >= 3
        # A POST may have been acted on before the reset: it is never sent twice.
        statuses = set()
        for _ in range(4):
            conn = _http(listen)
            conn.request("POST", "/", body=b"x")
            statuses.add(conn.getresponse().status)
            conn.close()
        assert statuses == {200, 502}
    finally:
        dying.close()
