"""Per-fleet and per-backend counters of the data plane, and their snapshot as metrics.

Hot path: plain integer increments on slotted objects, no locks (the data plane
is one asyncio thread). Counters only grow; they must never be reset while the
router runs, because callers diff two reads for a window.
"""

from __future__ import annotations

from bisect import bisect_left

from kiln.model.route import LATENCY_BUCKETS_MS, FleetMetrics, RouterMetrics, RouteTable


class FleetCounter:
    __slots__ = ("connect_errors", "in_flight", "latency_counts", "requests", "responses_5xx")

    def __init__(self) -> None:
        self.requests = 0
        self.responses_5xx = 0
        self.connect_errors = 0
        self.in_flight = 0
        self.latency_counts = [0] * (len(LATENCY_BUCKETS_MS) + 1)

    def record(self, status: int, latency_ms: float) -> None:
        """Count one finished request; each lands in exactly one latency slot."""
        self.requests += 1
        if status >= 500:
            self.responses_5xx += 1
        # Smallest bucket bound >= latency; past the last bound it is the +Inf slot.
        self.latency_counts[bisect_left(LATENCY_BUCKETS_MS, latency_ms)] += 1


class Counters:
    def __init__(self) -> None:
        self.fleets: dict[str, FleetCounter] = {}
        self.backend_in_flight: dict[str, int] = {}

    def fleet(self, name: str) -> FleetCounter:
        counter = self.fleets.get(name)
        if counter is None:
            counter = self.fleets[name] = FleetCounter()
        return counter

    def backend_started(self, addr: str) -> None:
        self.backend_in_flight[addr] = self.backend_in_flight.get(addr, 0) + 1

    def backend_finished(self, addr: str) -> None:
        left = self.backend_in_flight[addr] - 1
        if left:
            self.backend_in_flight[addr] = left
        else:
            # Removed backends must not linger in the map forever.
            del self.backend_in_flight[addr]

    def snapshot(self, table: RouteTable) -> RouterMetrics:
        fleets = {
            name: FleetMetrics(
                fleet=name,
                requests=c.requests,
                responses_5xx=c.responses_5xx,
                connect_errors=c.connect_errors,
                in_flight=c.in_flight,
                latency_counts=tuple(c.latency_counts),
            )
            for name, c in self.fleets.items()
        }
        in_flight = {
            addr: 0 for route in table.routes for fr in route.fleets for addr in fr.backends
        }
        in_flight.update(self.backend_in_flight)
        return RouterMetrics(fleets=fleets, backend_in_flight=in_flight)
