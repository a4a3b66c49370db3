"""The admin API's table: compare-and-swap, validation, atomic listeners, persistence."""

from __future__ import annotations

import dataclasses
import json
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from kiln.errors import RouterError, RouteTableConflict
from kiln.model.codec import from_json
from kiln.model.route import FleetRoute, RouteTable
from kiln.router import RouterClient, ensure_router, stop_router
from tests.router.http_get import get

from .conftest import Backend, free_addr, route, table


def _refused(listen: str) -> bool:
    host, port = listen.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def test_apply_bumps_version_and_serves_the_new_table(
    router: RouterClient, backends: Callable[[str], Backend]
) -> None:
    assert router.table() == RouteTable()
    a, b = backends("a"), backends("b")
    first, second = free_addr(), free_addr()
    applied = router.apply(table(route(first, ("fa", 100, [a]))))
    assert applied.version == 1
    assert router.table() == applied
    assert router.health()["version"] == 1
    assert get(first) == (200, b"backend a\n")
    # Move the route to another address and backend: the old listener closes.
    router.apply(table(route(second, ("fb", 100, [b])), version=1))
    assert get(second) == (200, b"backend b\n")
    assert _refused(first)


def test_conflicting_version_raises_and_changes_nothing(
    router: RouterClient, backends: Callable[[str], Backend]
) -> None:
    listen = free_addr()
    current = router.apply(table(route(listen, ("fa", 100, [backends("a")]))))
    other = free_addr()
    with pytest.raises(RouteTableConflict, match="version"):
        router.apply(table(route(other, ("fb", 100, [backends("b")])), version=0))
    assert router.table() == current
    assert _refused(other)
    assert get(listen) == (200, b"backend a\n")


def test_bind_conflict_is_rejected_and_changes_nothing(
    router: RouterClient, backends: Callable[[str], Backend]
) -> None:
    listen = free_addr()
    current = router.apply(table(route(listen, ("fa", 100, [backends("a")]))))
    taken = backends("squatter")  # something else already listens here
    fresh = free_addr()
    new = table(
        route(listen, ("fa", 100, [backends("a2")])),
        route(fresh, ("fb", 100, [backends("b")])),
        dataclasses.replace(route(taken.addr, ("fc", 100, [backends("c")])), name="zz"),
        version=1,
    )
    with pytest.raises(RouterError, match=f"cannot listen on {taken.addr}"):
        router.apply(new)
    assert router.table() == current
    assert _refused(fresh), "a listener opened by the failed apply was left open"
    assert get(listen) == (200, b"backend a\n")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: dataclasses.replace(r, listen="nonsense"), "not a host:port"),
        (
            lambda r: dataclasses.replace(r, fleets=(FleetRoute("f", 101, ("127.0.0.1:1",)),)),
            "weight 101",
        ),
        (
            lambda r: dataclasses.replace(r, fleets=(FleetRoute("f", 50, ("nope",)),)),
            "backend",
        ),
    ],
)
def test_invalid_table_is_rejected(
    router: RouterClient, change: Callable[..., object], message: str
) -> None:
    bad = change(route(free_addr(), ("f", 100, ["127.0.0.1:1"])))
    with pytest.raises(RouterError, match=message):
        router.apply(RouteTable(routes=(bad,)))  # type: ignore[arg-type]
    assert router.table() == RouteTable()


def test_duplicate_route_names_are_rejected(router: RouterClient) -> None:
    good = route(free_addr(), ("f", 100, ["127.0.0.1:1"]))
    duplicate = table(good, dataclasses.replace(good, listen=free_addr()))
    with pytest.raises(RouterError, match="appears twice"):
        router.apply(duplicate)
    assert router.table() == RouteTable()


def test_table_survives_a_router_restart(
    router: RouterClient, state_dir: Path, backends: Callable[[str], Backend]
) -> None:
    listen = free_addr()
    applied = router.apply(table(route(listen, ("fa", 100, [backends("a")]))))
    on_disk = from_json(RouteTable, json.loads((state_dir / "router/table.json").read_text()))
    assert on_disk == applied
    pid = router.health()["pid"]
    assert stop_router(state_dir) is True
    assert _refused(listen)
    assert not router.ping()
    with ensure_router(state_dir) as again:
        assert again.health()["pid"] != pid
        assert again.table() == applied
        assert get(listen) == (200, b"backend a\n")
