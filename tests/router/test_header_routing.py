"""Steering by header: ``X-Kiln-Fleet: canary`` reaches the canary fleet whatever its weight."""

from __future__ import annotations

import http.client
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from kiln.model.codec import from_json
from kiln.model.route import STEERED, FleetRoute, Route, RouteTable
from kiln.router import RouterClient, ensure_router, stop_router
from tests.router.http_get import get

from .conftest import Backend, free_addr, table


def _route(listen: str, *fleets: FleetRoute, header: str = "X-Kiln-Fleet") -> Route:
    return Route(name=f"app/env/{listen}", listen=listen, fleets=fleets, header=header)


def _fleet(name: str, weight: int, backend: Backend | None, role: str = "") -> FleetRoute:
    backends = (backend.addr,) if backend is not None else ()
    return FleetRoute(fleet=name, weight=weight, backends=backends, role=role)


def _canary_at_zero(router: RouterClient, backends: Callable[[str], Backend]) -> str:
    """A route: fleet ``fs`` (stable, weight 100, backend s), ``fc`` (canary, weight 0, c)."""
    listen = free_addr()
    stable = _fleet("fs", 100, backends("s"), role="stable")
    canary = _fleet("fc", 0, backends("c"), role="canary")
    router.apply(table(_route(listen, stable, canary)))
    return listen


def _get(listen: str, headers: dict[str, str], times: int = 1) -> Counter[tuple[int, bytes]]:
    """``times`` GETs on one keep-alive connection; how often each (status, body) came back."""
    host, port = listen.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    answers: Counter[tuple[int, bytes]] = Counter()
    try:
        for _ in range(times):
            conn.request("GET", "/", headers=headers)
            resp = conn.getresponse()
            answers[resp.status, resp.read()] += 1
    finally:
        conn.close()
    return answers


def test_header_reaches_the_canary_at_weight_zero(
    router: RouterClient, backends: Callable[[str], Backend]
) -> None:
    listen = _canary_at_zero(router, backends)
    assert _get(listen, {"X-Kiln-Fleet": "canary"}, times=20) == {(200, b"backend c\n"): 20}
    assert _get(listen, {"X-Kiln-Fleet": "stable"}, times=5) == {(200, b"backend s\n"): 5}


def test_header_names_a_fleet_by_its_id(
    router: RouterClient, backends: Callable[[str], Backend]
) -> None:
    listen = _canary_at_zero(router, backends)
    assert _get(listen, {"X-Kiln-Fleet": "fc"}, times=10) == {(200, b"backend c\n"): 10}


def test_unknown_value_falls_through_to_the_weights(
    router: RouterClient, backends: Callable[[str], Backend]
) -> None:
    listen = free_addr()
    stable = _fleet("fs", 100, backends("s"), role="stable")
    # A canary without backends cannot serve: naming it falls through as well.
    empty = _fleet("fe", 0, None, role="canary")
    router.apply(table(_route(listen, stable, empty)))
    for value in ("blue", "canary", "fe", ""):
        assert _get(listen, {"X-Kiln-Fleet": value}, times=5) == {(200, b"backend s\n"): 5}


def test_header_name_is_case_insensitive_and_set_per_route(
    router: RouterClient, backends: Callable[[str], Backend]
) -> None:
    listen = _canary_at_zero(router, backends)
    for name in ("x-kiln-fleet", "X-KILN-FLEET", "x-Kiln-fleet"):
        assert _get(listen, {name: "canary"}) == {(200, b"backend c\n"): 1}

    other = free_addr()
    current = router.table()
    custom = _route(
        other,
        _fleet("gs", 100, backends("s2"), role="stable"),
        _fleet("gc", 0, backends("c2"), role="canary"),
        header="X-Test-Group",
    )
    router.apply(RouteTable(routes=(*current.routes, custom), version=current.version))
    assert _get(other, {"x-test-group": "canary"}) == {(200, b"backend c2\n"): 1}
    assert _get(other, {"X-Kiln-Fleet": "canary"}) == {(200, b"backend s2\n"): 1}


def test_without_the_header_a_weight_zero_fleet_gets_nothing(
    router: RouterClient, backends: Callable[[str], Backend]
) -> None:
    listen = free_addr()
    stable, canary = backends("s"), backends("c")
    router.apply(
        table(
            _route(listen, _fleet("fs", 100, stable, "stable"), _fleet("fc", 0, canary, "canary"))
        )
    )
    assert _get(listen, {}, times=200) == {(200, b"backend s\n"): 200}
    assert canary.peers == []
    assert len(stable.peers) == 200


def test_header_routed_requests_are_counted_apart_from_the_fleets_own(
    router: RouterClient, backends: Callable[[str], Backend]
) -> None:
    listen = _canary_at_zero(router, backends)
    _get(listen, {"X-Kiln-Fleet": "canary"}, times=30)
    _get(listen, {"X-Kiln-Fleet": "stable"}, times=5)
    _get(listen, {}, times=10)
    fleets = router.metrics().fleets
    steered = fleets["fc" + STEERED]
    assert (steered.requests, steered.responses_5xx) == (30, 0)
    assert sum(steered.latency_counts) == 30
    assert steered.in_flight == 0
    assert "fc" not in fleets  # no real traffic reached the canary: nothing to analyse
    # Steering to the only weighted fleet changes nothing: those are ordinary requests.
    assert fleets["fs"].requests == 15
    assert "fs" + STEERED not in fleets


def test_roles_and_header_survive_the_admin_api_and_a_restart(
    router: RouterClient, state_dir: Path, backends: Callable[[str], Backend]
) -> None:
    listen = free_addr()
    sent = _route(
        listen,
        _fleet("fs", 100, backends("s"), role="stable"),
        _fleet("fc", 0, backends("c"), role="canary"),
        header="X-Tester",
    )
    applied = router.apply(table(sent))
    assert applied.routes == (sent,)
    assert router.table() == applied
    on_disk = json.loads((state_dir / "router/table.json").read_text())
    assert on_disk["routes"][0]["header"] == "X-Tester"
    assert [f["role"] for f in on_disk["routes"][0]["fleets"]] == ["stable", "canary"]
    stop_router(state_dir)
    with ensure_router(state_dir) as again:
        assert again.table() == applied
        assert _get(listen, {"x-tester": "canary"}) == {(200, b"backend c\n"): 1}


def test_a_table_persisted_without_role_or_header_loads(
    state_dir: Path, backends: Callable[[str], Backend]
) -> None:
    listen = free_addr()
    a = backends("a")
    old = {  # as written before fleets had roles and routes a steering header
        "routes": [
            {
                "fleets": [{"backends": [a.addr], "fleet": "fa", "weight": 100}],
                "listen": listen,
                "name": "app/env/web",
            }
        ],
        "version": 7,
    }
    (state_dir / "router").mkdir(parents=True)
    (state_dir / "router/table.json").write_text(json.dumps(old, indent=2, sort_keys=True))
    try:
        with ensure_router(state_dir) as router:
            loaded = router.table()
            assert loaded == from_json(RouteTable, old)
            assert loaded.version == 7
            assert loaded.routes[0].header == "X-Kiln-Fleet"
            assert loaded.routes[0].fleets[0].role == ""
            assert get(listen) == (200, b"backend a\n")
            assert _get(listen, {"X-Kiln-Fleet": "canary"}) == {(200, b"backend a\n"): 1}
    finally:
        stop_router(state_dir)
