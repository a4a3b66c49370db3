"""A router started without per-fleet metrics (for the overhead benchmark) says so."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kiln.errors import RouterError
from kiln.router import RouterClient, ensure_router, stop_router
from tests.router.http_get import get

from .conftest import Backend, free_addr, route, table


@pytest.fixture
def quiet_router(state_dir: Path) -> Iterator[RouterClient]:
    client = ensure_router(state_dir, metrics=False)
    yield client
    client.close()
    stop_router(state_dir)
    log = (state_dir / "router" / "router.log").read_text()
    assert "Traceback" not in log, log


def test_router_without_metrics_serves_and_refuses_to_report(
    quiet_router: RouterClient, backends: Callable[[str], Backend]
) -> None:
    listen, dead = free_addr(), free_addr()
    quiet_router.apply(table(route(listen, ("fa", 100, [dead, backends("a").addr]))))
    for _ in range(20):
        assert get(listen) == (200, b"backend a\n")
    assert quiet_router.health()["metrics"] is False
    with pytest.raises(RouterError, match="metrics are off"):
        quiet_router.metrics()


def test_ensure_router_will_not_hand_back_the_other_setting(
    quiet_router: RouterClient, state_dir: Path
) -> None:
    with pytest.raises(RouterError, match="metrics off; stop it"):
        ensure_router(state_dir)
    with ensure_router(state_dir, metrics=False) as again:
        assert again.health()["pid"] == quiet_router.health()["pid"]


def test_router_with_metrics_says_so(router: RouterClient, state_dir: Path) -> None:
    assert router.health()["metrics"] is True
    with pytest.raises(RouterError, match="metrics on; stop it"):
        ensure_router(state_dir, metrics=False)
