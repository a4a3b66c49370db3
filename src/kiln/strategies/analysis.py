"""Canary analysis: from two reads of the router's counters to a pass/fail/inconclusive verdict.

Pure: no I/O, no clock, no SDK. The engine reads ``FleetMetrics`` at the start
and the end of a step's window and calls ``window`` per fleet, then ``judge``.

How a step is decided, in order:

1. Too little canary traffic (fewer than ``min_requests``, and never zero) is
   INCONCLUSIVE: a canary that saw no traffic proved nothing, good or bad.
2. If a threshold compares with the stable fleet and the stable fleet has too
   little traffic in the same window, that is INCONCLUSIVE too.
3. Otherwise every threshold that is set is checked, all of them, and any one
   exceeded is a FAIL whose reason lists each exceeded check with the measured
   number next to the threshold. A measurement equal to its threshold passes.
4. Otherwise PASS, with the measured numbers in the reason.

What counts:

- An *error* is a 5xx response. The router answers 502 itself when no backend
  of the fleet accepted a connection, and still records that request with its
  status, so it is counted once, in ``requests`` and in ``responses_5xx``.
  ``connect_errors`` counts failed connection *attempts* (one per backend
  tried, including ones retried successfully on another backend); adding it
  would count one request several times, so it is not part of the error rate.
- *p99* is read from the latency histogram: the upper bound of the bucket that
  holds the request of rank ceil(0.99 * n). It is therefore always one of
  ``LATENCY_BUCKETS_MS``, or ``inf`` when that request is past the last bound
  (the +Inf slot). ``inf`` is the honest value: reporting the last bound
  instead would pass a p99 threshold equal to it while the true p99 is far
  above. Reasons print it as ``>10000ms``. (Python's ``json`` writes it as
  ``Infinity``; a strict JSON encoder needs to map it, e.g. to null.)
- Two p99s both past the last bound cannot be told apart: their ratio is
  taken as 1. A stable p99 below the smallest bound is taken as that bound,
  the histogram's resolution, so the ratio never divides by zero.

This module must never read metrics or time itself; the engine passes both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from kiln.model.analysis import FleetWindow, Outcome, Thresholds, Verdict
from kiln.model.route import LATENCY_BUCKETS_MS, FleetMetrics

_BOUNDS: tuple[float, ...] = (*(float(b) for b in LATENCY_BUCKETS_MS), math.inf)
# Absorbs float rounding (0.05 - 0.04 > 0.01 in binary) so equal means equal.
_TOLERANCE = 1e-9


def window(before: FleetMetrics | None, after: FleetMetrics) -> FleetWindow:
    """One fleet's traffic between two reads; ``before=None``: since the router started.

    Counters only grow while a router runs. If any counter of ``after`` is
    below ``before``, the router restarted in between and ``after`` alone is
    the window (a restart that already made up the difference is not visible:
    the window then undercounts, it never invents traffic).
    """
    if len(after.latency_counts) != len(_BOUNDS):
        raise ValueError(f"{after.fleet}: latency histogram has {len(after.latency_counts)} slots")
    if before is not None and before.fleet != after.fleet:
        raise ValueError(f"window across two fleets: {before.fleet} and {after.fleet}")
    if before is None or _restarted(before, after):
        requests, errors, counts = after.requests, after.responses_5xx, after.latency_counts
    else:
        requests = after.requests - before.requests
        errors = after.responses_5xx - before.responses_5xx
        counts = tuple(
            a - b for a, b in zip(after.latency_counts, before.latency_counts, strict=True)
        )
    return FleetWindow(fleet=after.fleet, requests=requests, errors=errors, p99_ms=p99(counts))


def _restarted(before: FleetMetrics, after: FleetMetrics) -> bool:
    # in_flight is a gauge, not a counter: it may fall without a restart.
    if len(before.latency_counts) != len(after.latency_counts):
        return True
    pairs = [
        (before.requests, after.requests),
        (before.responses_5xx, after.responses_5xx),
        (before.connect_errors, after.connect_errors),
        *zip(before.latency_counts, after.latency_counts, strict=True),
    ]
    return any(a < b for b, a in pairs)


def p99(counts: Sequence[int]) -> float | None:
    """Upper bound of the bucket holding the 99th-percentile request; None: no requests.

    ``counts`` is per bucket (not cumulative) over ``LATENCY_BUCKETS_MS`` plus
    the +Inf slot, whose bound is ``inf``.
    """
    total = sum(counts)
    if total <= 0:
        return None
    rank = -(-99 * total // 100)  # ceil(0.99 * total) in integers: no float rounding
    seen = 0
    for bound, count in zip(_BOUNDS, counts, strict=True):
        seen += count
        if seen >= rank:
            return bound
    return _BOUNDS[-1]  # unreachable with non-negative counts


def judge(thresholds: Thresholds, canary: FleetWindow, stable: FleetWindow | None) -> Verdict:
    """The verdict on one window; ``stable`` is the fleet the canary replaces, if any."""
    needed = max(thresholds.min_requests, 1)
    if canary.requests < needed:
        why = f"canary: {canary.requests} of {needed} requests needed"
        return Verdict(Outcome.INCONCLUSIVE, why, canary, stable)
    if thresholds.compares_stable:
        if stable is None:
            why = "stable: no traffic to compare with"
            return Verdict(Outcome.INCONCLUSIVE, why, canary, stable)
        if stable.requests < needed:
            why = f"stable: {stable.requests} of {needed} requests needed to compare"
            return Verdict(Outcome.INCONCLUSIVE, why, canary, stable)
    failures = _failures(thresholds, canary, stable)
    if failures:
        return Verdict(Outcome.FAIL, "; ".join(failures), canary, stable)
    summary = _describe(canary)
    if stable is not None:
        summary += f"; stable: {_describe(stable)}"
    return Verdict(Outcome.PASS, summary, canary, stable)


def _failures(t: Thresholds, canary: FleetWindow, stable: FleetWindow | None) -> list[str]:
    out: list[str] = []
    rate = canary.error_rate
    if t.max_error_rate is not None and _exceeds(rate, t.max_error_rate):
        out.append(
            f"error rate {_pct(rate)} > {_pct(t.max_error_rate)} "
            f"({canary.errors}/{canary.requests} requests)"
        )
    p99_ms = canary.p99_ms
    if t.max_p99_ms is not None and p99_ms is not None and _exceeds(p99_ms, t.max_p99_ms):
        out.append(f"p99 {_ms(p99_ms)} > {_ms(t.max_p99_ms)}")
    if stable is None:
        return out  # judge() only gets here without stable when no check needs it
    if t.max_error_rate_vs_stable is not None:
        diff = rate - stable.error_rate
        if _exceeds(diff, t.max_error_rate_vs_stable):
            out.append(
                f"error rate {_pct(rate)} vs stable {_pct(stable.error_rate)}: "
                f"{_signed_pct(diff)} > {_signed_pct(t.max_error_rate_vs_stable)} "
                f"({canary.errors}/{canary.requests} vs {stable.errors}/{stable.requests})"
            )
    if t.max_p99_ratio_vs_stable is not None and p99_ms is not None and stable.p99_ms is not None:
        ratio = _ratio(p99_ms, stable.p99_ms)
        if _exceeds(ratio, t.max_p99_ratio_vs_stable):
            out.append(
                f"p99 {_ms(p99_ms)} vs stable {_ms(stable.p99_ms)}: "
                f"{_ratio_text(ratio, stable.p99_ms)} > {_num(t.max_p99_ratio_vs_stable)}x"
            )
    return out


def _ratio(canary_ms: float, stable_ms: float) -> float:
    if canary_ms == math.inf and stable_ms == math.inf:
        return 1.0  # both past the last bound: indistinguishable
    return canary_ms / max(stable_ms, LATENCY_BUCKETS_MS[0])


def _ratio_text(ratio: float, stable_ms: float) -> str:
    if ratio == math.inf:  # the canary is past the last bound: at least this much
        return f">{_num(_ratio(LATENCY_BUCKETS_MS[-1], stable_ms))}x"
    return f"{_num(ratio)}x"


def _exceeds(measured: float, limit: float) -> bool:
    return measured > limit + _TOLERANCE * max(1.0, abs(limit))


def _describe(w: FleetWindow) -> str:
    p99_text = "n/a" if w.p99_ms is None else _ms(w.p99_ms)
    return f"error rate {_pct(w.error_rate)} ({w.errors}/{w.requests}), p99 {p99_text}"


def _pct(rate: float) -> str:
    """4.2%, 0.0%, 1.04%: one decimal unless the second one matters."""
    text = f"{rate * 100:.2f}"
    return (text[:-1] if text.endswith("0") else text) + "%"


def _signed_pct(rate: float) -> str:
    """A difference of rates, in percentage points: +1.5%, -0.2%."""
    return ("+" if rate >= 0 else "") + _pct(rate)


def _ms(value: float) -> str:
    if value == math.inf:
        return f">{_num(LATENCY_BUCKETS_MS[-1])}ms"
    return f"{_num(value)}ms"


def _num(value: float) -> str:
    """750, 0.5, 2.13: at most two decimals, no trailing zeros."""
    return f"{value:.2f}".rstrip("0").rstrip(".")
