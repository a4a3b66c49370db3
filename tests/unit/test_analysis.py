"""Canary analysis: windows of router counters, p99 from the histogram, verdicts."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from kiln.model.analysis import FleetWindow, Outcome, Thresholds
from kiln.model.route import LATENCY_BUCKETS_MS, FleetMetrics, RouteTable
from kiln.router.counters import Counters
from kiln.strategies.analysis import judge, p99, window

SLOTS = len(LATENCY_BUCKETS_MS) + 1
BOUNDS = (*LATENCY_BUCKETS_MS, math.inf)
ALL = Thresholds(
    min_requests=50,
    max_error_rate=0.01,
    max_p99_ms=500,
    max_error_rate_vs_stable=0.01,
    max_p99_ratio_vs_stable=3.0,
)


def recorded(requests: list[tuple[int, float]], counters: Counters | None = None) -> FleetMetrics:
    """Metrics of fleet ``web`` after the real router counters recorded ``requests``."""
    counters = counters or Counters()
    for status, latency_ms in requests:
        counters.fleet("web").record(status, latency_ms)
    return counters.snapshot(RouteTable()).fleets["web"]


def fw(
    requests: int, errors: int = 0, p99_ms: float | None = 10.0, fleet: str = "c"
) -> FleetWindow:
    return FleetWindow(fleet=fleet, requests=requests, errors=errors, p99_ms=p99_ms)


# --- window ---------------------------------------------------------------------------------


def test_window_since_router_start_is_the_whole_read() -> None:
    after = recorded([(200, 3.0)] * 90 + [(503, 40.0)] * 10)
    assert window(None, after) == FleetWindow("web", requests=100, errors=10, p99_ms=50.0)


def test_window_is_the_traffic_between_two_reads() -> None:
    counters = Counters()
    before = recorded([(500, 9000.0)] * 100, counters)  # a bad minute, before the window
    after = recorded([(200, 3.0)] * 200, counters)
    assert window(before, after) == FleetWindow("web", requests=200, errors=0, p99_ms=5.0)


def test_window_after_a_router_restart_is_the_new_read() -> None:
    before = recorded([(200, 3.0)] * 1000)
    after = recorded([(502, 700.0)] * 10)  # a fresh router: every counter restarted at 0
    assert window(before, after) == FleetWindow("web", requests=10, errors=10, p99_ms=1000.0)


def test_one_lower_counter_is_enough_to_see_a_restart() -> None:
    before = FleetMetrics("web", requests=10, latency_counts=(10,) + (0,) * (SLOTS - 1))
    # More requests in total, but the first bucket fell: the counters were reset.
    after = FleetMetrics("web", requests=20, latency_counts=(5, 15) + (0,) * (SLOTS - 2))
    assert window(before, after) == FleetWindow("web", requests=20, errors=0, p99_ms=2.0)
    fewer_connect_errors = dataclasses.replace(after, connect_errors=0)
    before = dataclasses.replace(before, connect_errors=3, latency_counts=after.latency_counts)
    assert window(before, fewer_connect_errors).requests == 20


def test_in_flight_falling_is_not_a_restart() -> None:
    before = dataclasses.replace(recorded([(200, 3.0)] * 10), in_flight=7)
    after = dataclasses.replace(recorded([(200, 3.0)] * 15), in_flight=0)
    assert window(before, after).requests == 5


def test_connect_errors_are_not_added_to_errors() -> None:
    # The router counts a failed connection attempt per backend tried; the request itself
    # is recorded once, as a 502 if no backend accepted, or with the status of the one that did.
    counters = Counters()
    counters.fleet("web").connect_errors += 3  # three backends refused ...
    after = recorded([(502, 1.0)], counters)  # ... and the router answered 502
    assert window(None, after) == FleetWindow("web", requests=1, errors=1, p99_ms=1.0)


def test_window_refuses_two_fleets_or_a_foreign_histogram() -> None:
    with pytest.raises(ValueError, match="two fleets"):
        window(FleetMetrics("a"), FleetMetrics("b"))
    with pytest.raises(ValueError, match="slots"):
        window(None, FleetMetrics("a", latency_counts=(1, 2)))


# --- p99 ------------------------------------------------------------------------------------


def counts(**by_bound: int) -> tuple[int, ...]:
    """A histogram from bucket bounds: counts(b5=3, inf=1)."""
    out = [0] * SLOTS
    for key, n in by_bound.items():
        out[-1 if key == "inf" else LATENCY_BUCKETS_MS.index(float(key[1:]))] = n
    return tuple(out)


@pytest.mark.parametrize(
    ("histogram", "expected"),
    [
        (counts(), None),
        (counts(b5=100), 5.0),
        (counts(b1=99, b1000=1), 1.0),  # rank 99 of 100 is still fast
        (counts(b1=98, b1000=2), 1000.0),
        (counts(b1=990, b250=10), 1.0),
        (counts(b1=989, b250=11), 250.0),
        (counts(b1=1), 1.0),
        (counts(b1=1, b10=1), 10.0),  # rank ceil(1.98) = 2
        (counts(b10000=1, inf=99), math.inf),
        (counts(b1=98, inf=2), math.inf),
    ],
)
def test_p99_is_the_bound_of_the_bucket_holding_rank_ceil_99_percent(
    histogram: tuple[int, ...], expected: float | None
) -> None:
    assert p99(histogram) == expected


def test_a_latency_on_a_bound_belongs_to_that_bucket() -> None:
    assert window(None, recorded([(200, 5.0)])).p99_ms == 5.0
    assert window(None, recorded([(200, 5.001)])).p99_ms == 10.0
    assert window(None, recorded([(200, 10_000.5)])).p99_ms == math.inf


# --- judge: examples ------------------------------------------------------------------------


def test_pass_states_the_numbers() -> None:
    verdict = judge(ALL, fw(512, 0, 25.0), fw(4605, 1, 10.0, fleet="s"))
    assert verdict.outcome is Outcome.PASS
    assert verdict.reason == (
        "error rate 0.0% (0/512), p99 25ms; stable: error rate 0.02% (1/4605), p99 10ms"
    )
    assert verdict.canary == fw(512, 0, 25.0)
    assert verdict.stable == fw(4605, 1, 10.0, fleet="s")


def test_pass_without_stable_when_nothing_compares_with_it() -> None:
    verdict = judge(Thresholds(max_error_rate=0.05), fw(100, 5, 25.0), None)
    assert verdict.outcome is Outcome.PASS
    assert verdict.reason == "error rate 5.0% (5/100), p99 25ms"


@pytest.mark.parametrize(
    ("thresholds", "canary", "stable", "reason"),
    [
        (
            Thresholds(max_error_rate=0.01),
            fw(500, 21),
            None,
            "error rate 4.2% > 1.0% (21/500 requests)",
        ),
        (Thresholds(max_p99_ms=500), fw(500, 0, 1000.0), None, "p99 1000ms > 500ms"),
        (Thresholds(max_p99_ms=20_000), fw(500, 0, math.inf), None, "p99 >10000ms > 20000ms"),
        (
            Thresholds(max_error_rate_vs_stable=0.01),
            fw(500, 10),
            fw(1000, 5, fleet="s"),
            "error rate 2.0% vs stable 0.5%: +1.5% > +1.0% (10/500 vs 5/1000)",
        ),
        (
            Thresholds(max_p99_ratio_vs_stable=2.0),
            fw(500, 0, 50.0),
            fw(1000, 0, 10.0, fleet="s"),
            "p99 50ms vs stable 10ms: 5x > 2x",
        ),
        (
            Thresholds(max_p99_ratio_vs_stable=2.0),
            fw(500, 0, math.inf),
            fw(1000, 0, 100.0, fleet="s"),
            "p99 >10000ms vs stable 100ms: >100x > 2x",
        ),
        (
            Thresholds(max_error_rate=0.01, max_p99_ms=500),
            fw(500, 21, 1000.0),
            None,
            "error rate 4.2% > 1.0% (21/500 requests); p99 1000ms > 500ms",
        ),
    ],
)
def test_fail_names_every_exceeded_check_with_its_numbers(
    thresholds: Thresholds, canary: FleetWindow, stable: FleetWindow | None, reason: str
) -> None:
    verdict = judge(thresholds, canary, stable)
    assert (verdict.outcome, verdict.reason) == (Outcome.FAIL, reason)


def test_a_measurement_equal_to_its_threshold_passes() -> None:
    assert judge(Thresholds(max_error_rate=0.01), fw(500, 5), None).outcome is Outcome.PASS
    assert judge(Thresholds(max_p99_ms=500), fw(500, 0, 500.0), None).outcome is Outcome.PASS
    vs = Thresholds(max_error_rate_vs_stable=0.01, max_p99_ratio_vs_stable=2.0)
    # 5% - 4% is 0.010000000000000002 in binary floating point: still equal.
    assert judge(vs, fw(100, 5, 20.0), fw(100, 4, 10.0)).outcome is Outcome.PASS
    assert judge(vs, fw(100, 6, 20.0), fw(100, 4, 10.0)).outcome is Outcome.FAIL
    assert judge(vs, fw(100, 5, 25.0), fw(100, 4, 10.0)).outcome is Outcome.FAIL


def test_two_p99s_past_the_last_bound_do_not_fail_the_ratio() -> None:
    verdict = judge(Thresholds(max_p99_ratio_vs_stable=1.5), fw(100, 0, math.inf), fw(100))
    assert verdict.outcome is Outcome.FAIL
    both = judge(
        Thresholds(max_p99_ratio_vs_stable=1.5), fw(100, 0, math.inf), fw(100, 0, math.inf)
    )
    assert both.outcome is Outcome.PASS
    assert (
        both.reason
        == "error rate 0.0% (0/100), p99 >10000ms; stable: error rate 0.0% (0/100), p99 >10000ms"
    )


def test_a_stable_p99_below_the_histogram_resolution_does_not_divide_by_zero() -> None:
    verdict = judge(Thresholds(max_p99_ratio_vs_stable=2.0), fw(100, 0, 1.0), fw(100, 0, 0.0))
    assert verdict.outcome is Outcome.PASS


@pytest.mark.parametrize(
    ("thresholds", "canary", "stable", "reason"),
    [
        (ALL, fw(12, 12, math.inf), fw(1000), "canary: 12 of 50 requests needed"),
        (ALL, fw(0, 0, None), None, "canary: 0 of 50 requests needed"),
        (Thresholds(min_requests=0), fw(0, 0, None), None, "canary: 0 of 1 requests needed"),
        (ALL, fw(500, 500, math.inf), None, "stable: no traffic to compare with"),
        (ALL, fw(500), fw(49), "stable: 49 of 50 requests needed to compare"),
    ],
)
def test_inconclusive_without_enough_traffic(
    thresholds: Thresholds, canary: FleetWindow, stable: FleetWindow | None, reason: str
) -> None:
    verdict = judge(thresholds, canary, stable)
    assert (verdict.outcome, verdict.reason) == (Outcome.INCONCLUSIVE, reason)


def test_a_short_stable_does_not_matter_when_nothing_compares_with_it() -> None:
    verdict = judge(Thresholds(max_error_rate=0.01), fw(500), fw(3))
    assert verdict.outcome is Outcome.PASS


def test_from_router_counters_to_a_failing_verdict() -> None:
    counters = Counters()
    before = {n: recorded_as(n, [(200, 3.0)] * 1000, counters) for n in ("stable", "canary")}
    recorded_as("stable", [(200, 8.0)] * 990 + [(500, 8.0)] * 10, counters)
    recorded_as("canary", [(200, 30.0)] * 90 + [(503, 30.0)] * 10, counters)
    after = counters.snapshot(RouteTable()).fleets
    verdict = judge(
        ALL, window(before["canary"], after["canary"]), window(before["stable"], after["stable"])
    )
    assert verdict.outcome is Outcome.FAIL
    assert verdict.reason == (
        "error rate 10.0% > 1.0% (10/100 requests); "
        "error rate 10.0% vs stable 1.0%: +9.0% > +1.0% (10/100 vs 10/1000); "
        "p99 50ms vs stable 10ms: 5x > 3x"
    )


def recorded_as(fleet: str, requests: list[tuple[int, float]], counters: Counters) -> FleetMetrics:
    for status, latency_ms in requests:
        counters.fleet(fleet).record(status, latency_ms)
    return counters.snapshot(RouteTable()).fleets[fleet]


# --- properties -----------------------------------------------------------------------------

histograms = st.lists(st.integers(0, 10_000), min_size=SLOTS, max_size=SLOTS).map(tuple)


@st.composite
def metrics(draw: st.DrawFn, fleet: str = "web") -> FleetMetrics:
    latency_counts = draw(histograms)
    requests = sum(latency_counts)
    return FleetMetrics(
        fleet=fleet,
        requests=requests,
        responses_5xx=draw(st.integers(0, requests)),
        connect_errors=draw(st.integers(0, 100)),
        in_flight=draw(st.integers(0, 10)),
        latency_counts=latency_counts,
    )


def plus(m: FleetMetrics, more: FleetMetrics) -> FleetMetrics:
    return dataclasses.replace(
        m,
        requests=m.requests + more.requests,
        responses_5xx=m.responses_5xx + more.responses_5xx,
        connect_errors=m.connect_errors + more.connect_errors,
        latency_counts=tuple(
            a + b for a, b in zip(m.latency_counts, more.latency_counts, strict=True)
        ),
    )


@given(metrics())
def test_the_window_of_a_read_against_itself_is_empty(m: FleetMetrics) -> None:
    assert window(m, m) == FleetWindow("web", requests=0, errors=0, p99_ms=None)


@given(metrics(), metrics())
def test_the_window_is_exactly_what_was_added(before: FleetMetrics, added: FleetMetrics) -> None:
    assert window(before, plus(before, added)) == window(None, added)


@given(metrics(), metrics())
def test_any_counter_going_down_makes_the_window_the_new_read(
    before: FleetMetrics, after: FleetMetrics
) -> None:
    went_down = (
        after.requests < before.requests
        or after.responses_5xx < before.responses_5xx
        or after.connect_errors < before.connect_errors
        or any(a < b for a, b in zip(after.latency_counts, before.latency_counts, strict=True))
    )
    assume(went_down)
    assert window(before, after) == window(None, after)


@given(histograms)
def test_p99_is_a_bucket_bound_or_none_without_traffic(histogram: tuple[int, ...]) -> None:
    value = p99(histogram)
    assert (value is None) == (sum(histogram) == 0)
    assert value is None or value in BOUNDS


@given(st.lists(st.floats(0, 20_000, allow_nan=False), min_size=1, max_size=500))
def test_p99_is_the_bucket_of_the_exact_nearest_rank_p99(latencies: list[float]) -> None:
    exact = sorted(latencies)[math.ceil(len(latencies) * 99 / 100) - 1]
    expected = next(bound for bound in BOUNDS if exact <= bound)
    assert window(None, recorded([(200, x) for x in latencies])).p99_ms == expected


@given(histograms, st.integers(0, SLOTS - 1), st.integers(1, 10_000))
def test_adding_slow_requests_never_lowers_p99(
    histogram: tuple[int, ...], slot: int, added: int
) -> None:
    current = p99(histogram)
    assume(current is not None and BOUNDS[slot] >= current)
    slower = list(histogram)
    slower[slot] += added
    new = p99(slower)
    assert new is not None
    assert new >= current


thresholds = st.builds(
    Thresholds,
    min_requests=st.integers(0, 200),
    max_error_rate=st.none() | st.floats(0, 1),
    max_p99_ms=st.none() | st.sampled_from(BOUNDS[:-1]),
    max_error_rate_vs_stable=st.none() | st.floats(-0.5, 1),
    max_p99_ratio_vs_stable=st.none() | st.floats(0.5, 100),
)


@st.composite
def windows(draw: st.DrawFn, fleet: str = "c") -> FleetWindow:
    requests = draw(st.integers(0, 2000))
    return FleetWindow(
        fleet=fleet,
        requests=requests,
        errors=draw(st.integers(0, requests)),
        p99_ms=None if requests == 0 else draw(st.sampled_from(BOUNDS)),
    )


@given(thresholds, windows(), windows("s"), st.integers(1, 2000))
def test_more_errors_never_turn_a_failure_into_a_pass(
    t: Thresholds, canary: FleetWindow, stable: FleetWindow, more: int
) -> None:
    assume(judge(t, canary, stable).outcome is Outcome.FAIL)
    worse = dataclasses.replace(canary, errors=min(canary.errors + more, canary.requests))
    assert judge(t, worse, stable).outcome is Outcome.FAIL


@given(thresholds, windows(), st.none() | windows("s"))
def test_inconclusive_iff_too_few_canary_requests_when_not_comparing(
    t: Thresholds, canary: FleetWindow, stable: FleetWindow | None
) -> None:
    t = dataclasses.replace(t, max_error_rate_vs_stable=None, max_p99_ratio_vs_stable=None)
    inconclusive = judge(t, canary, stable).outcome is Outcome.INCONCLUSIVE
    assert inconclusive == (canary.requests < max(t.min_requests, 1))


@given(thresholds, windows(), st.none() | windows("s"))
def test_every_verdict_has_a_one_line_reason_and_keeps_its_inputs(
    t: Thresholds, canary: FleetWindow, stable: FleetWindow | None
) -> None:
    verdict = judge(t, canary, stable)
    assert verdict.reason
    assert "\n" not in verdict.reason
    assert (verdict.canary, verdict.stable) == (canary, stable)


@given(thresholds, windows(), windows("s"))
def test_with_no_threshold_set_enough_traffic_passes(
    t: Thresholds, canary: FleetWindow, stable: FleetWindow
) -> None:
    t = Thresholds(min_requests=t.min_requests)
    expected = Outcome.PASS if canary.requests >= max(t.min_requests, 1) else Outcome.INCONCLUSIVE
    assert judge(t, canary, stable).outcome is expected


def test_a_negative_allowance_vs_stable_reads_with_its_sign() -> None:
    # "the canary must be at least half a point better than stable"
    verdict = judge(Thresholds(max_error_rate_vs_stable=-0.005), fw(1000, 10), fw(1000, 12))
    assert verdict.outcome is Outcome.FAIL
    assert verdict.reason == "error rate 1.0% vs stable 1.2%: -0.2% > -0.5% (10/1000 vs 12/1000)"


def test_an_infinite_p99_is_strict_json() -> None:
    import json

    from kiln.engine.analysis import window_json
    from kiln.model.analysis import FleetWindow

    slow = window_json(FleetWindow("c", 10, 0, float("inf")))
    assert slow["p99_ms"] is None
    assert slow["p99_over_ms"] == 10000
    json.dumps(slow, allow_nan=False)  # what the API's JSON encoder insists on
    assert window_json(FleetWindow("c", 10, 0, 25.0)) == {
        "fleet": "c",
        "requests": 10,
        "errors": 0,
        "p99_ms": 25.0,
    }
