"""The router's world: a table of weighted fleets per public address, and its counters."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FleetRoute:
    fleet: str
    weight: int  # 0..100; weights of a route's fleets sum to 100 unless all are 0
    backends: tuple[str, ...]  # "127.0.0.1:PORT"
    # What the fleet is for in a delivery ("stable", "canary"; "" = none). A request whose
    # route header names this role (or the fleet id) reaches this fleet even at weight 0.
    role: str = ""


@dataclass(frozen=True)
class Route:
    name: str  # "app/env/service", unique in a table
    listen: str  # "127.0.0.1:8080"
    fleets: tuple[FleetRoute, ...]
    # Request header that steers a request to the fleet whose role or id is its value,
    # bypassing the weights (so testers reach a canary directly); "" turns steering off.
    header: str = "X-Kiln-Fleet"


@dataclass(frozen=True)
class RouteTable:
    routes: tuple[Route, ...] = ()
    version: int = 0  # bumped by the router on every apply; used for compare-and-swap

    def route(self, name: str) -> Route | None:
        return next((r for r in self.routes if r.name == name), None)

    def replace(self, routes: tuple[Route, ...], *, prefix: str) -> RouteTable:
        """A new table where every route named ``prefix*`` is replaced by ``routes``."""
        kept = tuple(r for r in self.routes if not r.name.startswith(prefix))
        return RouteTable(routes=kept + routes, version=self.version)


# Requests a header steered to a fleet are counted under "<fleet>+steered", apart from
# the fleet's own: testers reaching a canary must not count in its analysis.
STEERED = "+steered"

LATENCY_BUCKETS_MS: tuple[float, ...] = (
    1,
    2,
    5,
    10,
    25,
    50,
    100,
    250,
    500,
    1000,
    2500,
    5000,
    10000,
)


@dataclass(frozen=True)
class FleetMetrics:
    """Counters since the router started; callers diff two reads for a window."""

    fleet: str
    requests: int = 0
    responses_5xx: int = 0
    connect_errors: int = 0
    in_flight: int = 0
    # counts[i] = requests with latency <= LATENCY_BUCKETS_MS[i]; last slot is +Inf.
    latency_counts: tuple[int, ...] = field(default=(0,) * (len(LATENCY_BUCKETS_MS) + 1))


@dataclass(frozen=True)
class RouterMetrics:
    fleets: dict[str, FleetMetrics]
    backend_in_flight: dict[str, int]  # "127.0.0.1:PORT" -> requests in flight
