"""Traffic under table changes: weights, retries, draining and the metrics kiln reads."""

from __future__ import annotations

import threading
from collections.abc import Callable

from kiln.model.route import LATENCY_BUCKETS_MS
from kiln.router import RouterClient
from kiln.testing.load import Load
from tests.router.http_get import get

from .conftest import Backend, free_addr, route, table, wait_for


def test_weight_switch_under_load_loses_nothing(
    router: RouterClient, backends: Callable[[str], Backend]
) -> None:
    a, b = backends("a"), backends("b")
    listen = free_addr()
    current = router.apply(table(route(listen, ("fa", 100, [a]), ("fb", 0, [b]))))
    load = Load(f"http://{listen}/", clients=8, max_seconds=30)
    load.start()
    try:
        assert wait_for(lambda: load.snapshot().ok >= 200)
        router.apply(
            table(route(listen, ("fa", 0, [a]), ("fb", 100, [b])), version=current.version)
        )
        switched = load.snapshot().ok
        assert wait_for(lambda: load.snapshot().ok >= switched + 200)
    finally:
        result = load.stop()
    assert result.failed == 0, result.errors
    assert result.bodies["backend a"] >= 200
    assert result.bodies["backend b"] >= 200
    # Every keep-alive client moved to the new fleet on its next request.
    assert set(result.recent[-100:]) == {"backend b"}


def test_even_weights_split_roughly_evenly(
    router: RouterClient, backends: Callable[[str], Backend]
) -> None:
    listen = free_addr()
    router.apply(table(route(listen, ("fa", 50, [backends("a")]), ("fb", 50, [backends("b")]))))
    result = Load(f"http://{listen}/", clients=8, max_requests=1000).wait(timeout=30)
    assert result.failed == 0, result.errors
    assert result.ok == 1000
    # Binomial(1000, 0.5): 400..600 is more than six standard deviations wide.
    assert 400 <= result.bodies["backend a"] <= 600, result.bodies
    metrics = router.metrics().fleets
    assert metrics["fa"].requests + metrics["fb"].requests == 1000


def test_refused_backend_is_retried_on_another(
    router: RouterClient, backends: Callable[[str], Backend]
) -> None:
    listen, dead = free_addr(), free_addr()
    router.apply(table(route(listen, ("fa", 100, [dead, backends("live")]))))
    result = Load(f"http://{listen}/", clients=4, max_requests=200).wait(timeout=30)
    assert result.failed == 0, result.errors
    assert result.bodies == {"backend live": 200}
    fleet = router.metrics().fleets["fa"]
    assert fleet.connect_errors > 0
    assert (fleet.requests, fleet.responses_5xx) == (200, 0)


def test_removed_backend_drains_its_in_flight_request(
    router: RouterClient, backends: Callable[[str], Backend]
) -> None:
    a, b = backends("a"), backends("b")
    listen = free_addr()
    current = router.apply(table(route(listen, ("fa", 100, [a]))))
    slow: list[tuple[int, bytes]] = []
    thread = threading.Thread(target=lambda: slow.append(get(listen, "/sleep?1.0")))
    thread.start()
    assert wait_for(lambda: router.metrics().backend_in_flight.get(a.addr) == 1)
    assert get(listen) == (200, b"backend a\n")  # leaves an idle pooled connection to a
    assert a.open_connections == 2

    router.apply(table(route(listen, ("fb", 100, [b])), version=current.version))
    closed = wait_for(lambda: a.open_connections == 1, timeout=0.5)
    in_flight = router.metrics().backend_in_flight
    assert in_flight[a.addr] == 1, "the removed backend's request is not reported"
    assert in_flight[b.addr] == 0, "a backend of the table is missing from the metrics"
    assert closed, "the idle connection to the removed backend was kept open"
    assert get(listen) == (200, b"backend b\n")

    assert router.wait_drained([a.addr], timeout=5)
    thread.join()
    assert slow == [(200, b"backend a\nslept\n")]
    assert a.addr not in router.metrics().backend_in_flight
    assert wait_for(lambda: a.open_connections == 0), "the drained connection was pooled"


def test_metrics_count_requests_errors_and_latency(
    router: RouterClient, backends: Callable[[str], Backend]
) -> None:
    listen = free_addr()
    router.apply(table(route(listen, ("fa", 100, [backends("a")]))))
    for _ in range(20):
        assert get(listen)[0] == 200
    for _ in range(5):
        assert get(listen, "/500")[0] == 500
    assert get(listen, "/sleep?0.3")[0] == 200
    fleet = router.metrics().fleets["fa"]
    assert (fleet.requests, fleet.responses_5xx, fleet.connect_errors) == (26, 5, 0)
    assert fleet.in_flight == 0
    assert len(fleet.latency_counts) == len(LATENCY_BUCKETS_MS) + 1
    assert sum(fleet.latency_counts) == 26
    assert fleet.latency_counts[LATENCY_BUCKETS_MS.index(500)] == 1  # the 0.3 s request
    assert sum(fleet.latency_counts[: LATENCY_BUCKETS_MS.index(250) + 1]) == 25
