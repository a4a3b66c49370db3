"""The router as a process: started once on demand, stopped gracefully, timeouts."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from kiln.errors import RouterError
from kiln.router import RouterClient, ensure_router, stop_router
from tests.router.http_get import get

from .conftest import Backend, free_addr, route, table, wait_for


def test_concurrent_ensure_router_starts_one_router(state_dir: Path) -> None:
    barrier = threading.Barrier(4)
    pids: list[int] = []

    def start() -> None:
        barrier.wait()
        with ensure_router(state_dir) as client:
            pids.append(client.health()["pid"])

    threads = [threading.Thread(target=start) for _ in range(4)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(pids) == 4
        assert len(set(pids)) == 1, pids
        log = (state_dir / "router/router.log").read_text()
        assert log.count("serving table") == 1, log
    finally:
        assert stop_router(state_dir)
    assert not stop_router(state_dir), "a stopped router still counts as running"


def test_sigterm_lets_the_request_in_flight_finish(
    router: RouterClient, state_dir: Path, backends: Callable[[str], Backend]
) -> None:
    listen = free_addr()
    router.apply(table(route(listen, ("fa", 100, [backends("a")]))))
    slow: list[tuple[int, bytes]] = []
    thread = threading.Thread(target=lambda: slow.append(get(listen, "/sleep?0.7")))
    thread.start()
    assert wait_for(lambda: router.metrics().fleets.get("fa") is not None)
    assert stop_router(state_dir)
    thread.join()
    assert slow == [(200, b"backend a\nslept\n")]
    with pytest.raises(ConnectionRefusedError):
        get(listen)


def test_unstartable_router_reports_its_log(state_dir: Path) -> None:
    (state_dir / "router").mkdir(parents=True)
    (state_dir / "router/table.json").write_text("{not json")
    with pytest.raises(RouterError, match="cannot read the route table"):
        ensure_router(state_dir)


def test_slow_backend_is_504(
    state_dir: Path, backends: Callable[[str], Backend], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KILN_ROUTER_RESPONSE_TIMEOUT", "0.3")
    listen = free_addr()
    try:
        with ensure_router(state_dir) as router:
            router.apply(table(route(listen, ("fa", 100, [backends("a")]))))
            assert get(listen, "/sleep?1")[0] == 504
            assert get(listen)[0] == 200
            fleet = router.metrics().fleets["fa"]
            assert (fleet.requests, fleet.responses_5xx) == (2, 1)
    finally:
        stop_router(state_dir)
