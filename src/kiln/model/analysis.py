"""Canary analysis: the thresholds a step is judged by, and the judgement."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True)
class Thresholds:
    """What a canary must show over one window of router metrics; None: not checked."""

    window: float = 60.0  # seconds of traffic judged at a time
    min_requests: int = (
        50  # fewer on the canary (or stable, if compared): inconclusive; 0 acts as 1
    )
    # 5xx responses / requests, 0..1. A request no backend accepted is answered 502 by
    # the router and counted there once; connect_errors (per attempt) are not added.
    max_error_rate: float | None = None
    max_p99_ms: float | None = None
    # Against the stable fleet in the same window: canary rate minus stable rate.
    max_error_rate_vs_stable: float | None = None
    # Against the stable fleet in the same window: canary p99 / stable p99.
    max_p99_ratio_vs_stable: float | None = None

    @property
    def compares_stable(self) -> bool:
        return self.max_error_rate_vs_stable is not None or self.max_p99_ratio_vs_stable is not None


class Outcome(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class FleetWindow:
    """One fleet's traffic over an analysis window (the difference of two reads)."""

    fleet: str
    requests: int
    errors: int  # 5xx responses, including the router's 502s when no backend connected
    # Upper bound of the histogram bucket holding the 99th-percentile request (one of
    # LATENCY_BUCKETS_MS), inf when past the last bound; None: no requests in the window.
    p99_ms: float | None

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    reason: str  # one line, with the measured numbers: goes into the log and events
    canary: FleetWindow
    stable: FleetWindow | None
