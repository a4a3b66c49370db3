"""The router process: load the persisted table, serve it, answer the admin socket.

``serve(state_dir)`` blocks until SIGTERM/SIGINT, then stops accepting, lets
requests in flight finish (bounded) and returns. It must never run twice for
one state directory: it holds an exclusive lock on ``router.pid`` for its life.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from kiln.errors import RouterError
from kiln.model.route import RouteTable
from kiln.router.admin import Admin
from kiln.router.paths import RouterPaths
from kiln.router.proxy import Proxy
from kiln.router.state import RouterState
from kiln.router.table_file import load_table

log = logging.getLogger(__name__)

DRAIN_TIMEOUT = 30.0


def serve(state_dir: Path, *, metrics: bool = True) -> None:
    """Run the router for ``state_dir`` until SIGTERM/SIGINT (blocking).

    ``metrics=False`` serves without per-fleet counters (``GET /metrics`` then refuses);
    it exists to measure what counting costs, and kiln's engine never uses it.
    """
    paths = RouterPaths.of(state_dir)
    paths.dir.mkdir(parents=True, exist_ok=True)
    pid_fd = os.open(paths.pid, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(pid_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise RouterError(f"a router already runs for {state_dir}") from exc
        os.ftruncate(pid_fd, 0)
        os.write(pid_fd, f"{os.getpid()}\n".encode())
        _run(_main(paths, metrics))
    finally:
        os.close(pid_fd)  # releases the lock: from here on the router counts as stopped


def _run(coro: Coroutine[Any, Any, None]) -> None:
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:  # uvloop is optional: plain asyncio serves the same protocol
        pass
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(coro)


async def _main(paths: RouterPaths, metrics: bool) -> None:
    table = load_table(paths.table) or RouteTable()
    proxy = Proxy(metrics=metrics)
    state = RouterState(proxy, paths.table)
    await state.start(table)
    paths.sock.unlink(missing_ok=True)  # left by a router that died; we hold the pid lock
    admin = Admin(state)
    admin_server = await asyncio.start_unix_server(admin.handle, path=str(paths.sock))
    os.chmod(paths.sock, 0o600)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info(
        "router %d serving table version %d, per-fleet metrics %s",
        os.getpid(),
        table.version,
        "on" if metrics else "off",
    )
    await stop.wait()

    log.info("stopping: %d requests in flight", proxy.in_flight)
    proxy.closing = True
    state.close_listeners()
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while proxy.in_flight and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    admin_server.close()
    with contextlib.suppress(FileNotFoundError):
        paths.sock.unlink()
    await proxy.clients.close_all()
    await admin.connections.close_all()
    proxy.pool.close_idle()
    await asyncio.sleep(0)  # let closed transports flush before the loop goes away
    log.info("stopped")
