"""Router suite: throughput and latency through kiln's router vs straight to the backend.

One fast backend runs in a child process; the same load generator measures it
directly and through a router serving one route to it, in the same run.

The cost of per-fleet metrics is measured against a second router of the same
run, started with ``--no-metrics`` and serving the same backend; rounds
alternate between the two and each side reports its median requests/s and
median router CPU time per request (Linux only), which still shows the cost
when the load generator rather than the router sets the pace. The comparison
uses ``wrk`` when it is installed, since the Python generator saturates before
the router does and would hide the difference; the rows' labels name the
generator. Both rows are noisy on a machine shared with other work. All
traffic goes to 127.0.0.1 and every run is bounded in time.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.common import Result
from kiln.model.route import FleetRoute, Route, RouteTable
from kiln.router import ensure_router, stop_router
from kiln.testing.load import Load
from kiln.testing.ports import free_port

SECONDS = 5.0
CLIENTS = 16
OVERHEAD_ROUNDS = 5  # per side, alternating metrics on / off
OVERHEAD_SECONDS = 2  # per round; wrk takes whole seconds
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


def _python_load(url: str, seconds: int) -> tuple[int, float]:
    start = time.perf_counter()
    result = Load(url, clients=CLIENTS, max_seconds=seconds).wait()
    elapsed = time.perf_counter() - start
    if result.failed or not result.ok:
        raise RuntimeError(f"benchmark load failed against {url}: {result.errors}")
    return result.ok, result.ok / elapsed


def _wrk_load(wrk: str, url: str, seconds: int) -> tuple[int, float]:
    if urlsplit(url).hostname != "127.0.0.1":
        raise ValueError(f"the benchmark only loads this machine, not {url!r}")
    # One wrk thread: on a small machine the router and the backend need the other cores.
    argv = [wrk, "-t1", f"-c{CLIENTS}", f"-d{seconds}s", url]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30, check=False)
    out = done.stdout
    count = re.search(r"(\d+) requests in", out)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read \d+, write \d+, timeout (\d+)", out)
    failed = errors is not None and (errors[1], errors[2]) != ("0", "0")
    if done.returncode or count is None or rate is None or "Non-2xx" in out or failed:
        raise RuntimeError(f"wrk failed against {url}:\n{out}{done.stderr}")
    return int(count[1]), float(rate[1])


Generator = Callable[[str, int], tuple[int, float]]  # (url, seconds) -> (requests, req/s)


def _generator() -> tuple[str, Generator]:
    """The load generator for the overhead rows: wrk when installed, else the Python one."""
    wrk = shutil.which("wrk")
    if wrk is not None:
        return "wrk", lambda url, seconds: _wrk_load(wrk, url, seconds)
    return "python load", _python_load


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux /proc), or None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class _Side:
    """One router of the metrics comparison and what its rounds measured."""

    url: str
    pid: int
    rates: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)  # router CPU per request

    def measure(self, load: Generator) -> None:
        before = _cpu_seconds(self.pid)
        requests, rate = load(self.url, OVERHEAD_SECONDS)
        after = _cpu_seconds(self.pid)
        self.rates.append(rate)
        if before is not None and after is not None:
            self.cpu_us.append((after - before) / requests * 1e6)


def _overhead(on: _Side, off: _Side) -> str:
    """Alternate rounds between the two routers; the generator's name."""
    name, load = _generator()
    load(on.url, 1)  # warm up connections and pools of both routers
    load(off.url, 1)
    for i in range(OVERHEAD_ROUNDS):
        # Swap the order every round so a machine that speeds up or slows down favours neither.
        for side in (on, off) if i % 2 == 0 else (off, on):
            side.measure(load)
    return name


def _serve(state: Path, backend_addr: str, *, metrics: bool) -> _Side:
    """Start a router for ``state`` with one route to the backend."""
    listen = f"127.0.0.1:{free_port()}"
    with ensure_router(state, metrics=metrics) as router:
        fleet = FleetRoute(fleet="web-1", weight=100, backends=(backend_addr,))
        router.apply(RouteTable(routes=(Route("bench/prod/web", listen, (fleet,)),)))
        return _Side(f"http://{listen}/", int(router.health()["pid"]))


def run() -> list[Result]:
    ctx = multiprocessing.get_context("spawn")
    ports = ctx.Queue()
    backend = ctx.Process(target=_backend_main, args=(ports,), daemon=True)
    backend.start()
    with tempfile.TemporaryDirectory(prefix="kiln-bench-router-") as tmp:
        counted, uncounted = Path(tmp) / "metrics-on", Path(tmp) / "metrics-off"
        try:
            backend_addr = f"127.0.0.1:{ports.get(timeout=10)}"
            on = _serve(counted, backend_addr, metrics=True)
            off = _serve(uncounted, backend_addr, metrics=False)
            direct = _measure(f"http://{backend_addr}/")
            via = _measure(on.url)
            generator = _overhead(on, off)
        finally:
            stop_router(counted)
            stop_router(uncounted)
            backend.terminate()
            backend.join()
    suite, base = "router", "direct to backend"
    results = [
        Result(suite, "requests/s via router", via[0], "req/s", base, direct[0], True),
        Result(suite, "p50 latency via router", via[1], "ms", base, direct[1]),
        Result(suite, "p99 latency via router", via[2], "ms", base, direct[2]),
    ]
    # Medians of the alternating rounds.
    bare = f"same run, router with --no-metrics ({generator})"
    results.append(
        Result(
            suite,
            f"requests/s via router, metrics on ({generator})",
            statistics.median(on.rates),
            "req/s",
            bare,
            statistics.median(off.rates),
            True,
        )
    )
    if on.cpu_us and off.cpu_us:
        name = f"router CPU per request, metrics on ({generator})"
        on_cpu, off_cpu = statistics.median(on.cpu_us), statistics.median(off.cpu_us)
        results.append(Result(suite, name, on_cpu, "us", bare, off_cpu))
    return results


if __name__ == "__main__":
    from bench.common import table

    print(table(run()))
