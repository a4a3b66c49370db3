"""Router suite: throughput and latency through kiln's router vs straight to the backend.

One fast backend runs in a child process; the same load generator measures it
directly and through a router serving one route to it, in the same run.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import socket
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import Result
from kiln.model.route import FleetRoute, Route, RouteTable
from kiln.router import ensure_router, stop_router
from kiln.testing.load import Load

SECONDS = 5.0
CLIENTS = 16
_RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 6\r\n\r\nhello\n"


class _FastBackend(asyncio.Protocol):
    """Answers every request with a fixed body; parses with httptools like the router."""

    def connection_made(self, transport: Any) -> None:
        import httptools

        self._transport = transport
        self._parser = httptools.HttpRequestParser(self)

    def data_received(self, data: bytes) -> None:
        import httptools

        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self._transport.close()

    def on_message_complete(self) -> None:
        self._transport.write(_RESPONSE)
        if not self._parser.should_keep_alive():
            self._transport.close()


def _backend_main(ports: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_FastBackend, "127.0.0.1", 0, backlog=1024)
        ports.put(server.sockets[0].getsockname()[1])
        await asyncio.Event().wait()

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _measure(url: str) -> tuple[float, float, float]:
    """(requests/s, p50 ms, p99 ms) of CLIENTS keep-alive clients for SECONDS."""
    Load(url, clients=CLIENTS, max_seconds=0.5).wait()  # warm up connections and pools
    start = time.perf_counter()
    result = Load(url, clients=CLIENTS, max_seconds=SECONDS).wait()
    elapsed = time.perf_counter() - start
    if result.failed or not result.latencies_ms:
        raise RuntimeError(f"benchmark load failed against {url}: {result.errors}")
    cuts = statistics.quantiles(result.latencies_ms, n=100)
    return result.ok / elapsed, cuts[49], cuts[98]


def run() -> list[Result]:
    ctx = multiprocessing.get_context("spawn")
    ports = ctx.Queue()
    backend = ctx.Process(target=_backend_main, args=(ports,), daemon=True)
    backend.start()
    with tempfile.TemporaryDirectory(prefix="kiln-bench-router-") as tmp:
        state = Path(tmp)
        try:
            backend_addr = f"127.0.0.1:{ports.get(timeout=10)}"
            listen = f"127.0.0.1:{_free_port()}"
            with ensure_router(state) as router:
                fleet = FleetRoute(fleet="web-1", weight=100, backends=(backend_addr,))
                router.apply(RouteTable(routes=(Route("bench/prod/web", listen, (fleet,)),)))
            direct = _measure(f"http://{backend_addr}/")
            via = _measure(f"http://{listen}/")
        finally:
            stop_router(state)
            backend.terminate()
            backend.join()
    suite, base = "router", "direct to backend"
    return [
        Result(suite, "requests/s via router", via[0], "req/s", base, direct[0], True),
        Result(suite, "p50 latency via router", via[1], "ms", base, direct[1]),
        Result(suite, "p99 latency via router", via[2], "ms", base, direct[2]),
    ]


if __name__ == "__main__":
    from bench.common import table

    print(table(run()))
