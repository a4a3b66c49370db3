"""Analysis suite: the cost of evaluating a canary step from the router's metrics.

10 fleets (5 services, each a stable and a canary fleet) record 100k requests
each (seeded random statuses and latencies) into a real ``Counters``, between
a ``snapshot()`` before and one after. One evaluation is what the engine does
per analysis step: ``window()`` for all 10 fleets and ``judge()`` for the 5
canaries, every threshold set. Its time does not depend on the traffic: it
walks 14 histogram slots per fleet, however many requests they hold.

Reported as rates (evaluations per second, higher is better). Baselines,
measured in the same run:

- The headline: the exact evaluation a router without a histogram would need,
  over the same window's 1M raw (status, latency) records: count the 5xx and
  sort each fleet's latencies for the nearest-rank p99, then judge. It is the
  design the histogram replaces, answering the same question, so the ratio is
  what the histogram buys (and the run checks that both find the same p99
  bucket).
- For scale: recording those 1M requests in the counters, the data plane's own
  bookkeeping for the window. The ratio says analysis is negligible next to it.
"""

from __future__ import annotations

import math
import random
import time
import timeit
from collections.abc import Callable

from bench.common import Result
from kiln.model.analysis import FleetWindow, Thresholds
from kiln.model.route import LATENCY_BUCKETS_MS, RouteTable
from kiln.router.counters import Counters
from kiln.strategies.analysis import judge, window

SERVICES = 5
REQUESTS = 100_000  # per fleet, in the window
THRESHOLDS = Thresholds(
    min_requests=50,
    max_error_rate=0.05,
    max_p99_ms=1000,
    max_error_rate_vs_stable=0.01,
    max_p99_ratio_vs_stable=2.0,
)
_BOUNDS = (*LATENCY_BUCKETS_MS, math.inf)

Traffic = dict[str, tuple[list[int], list[float]]]  # fleet -> (statuses, latencies in ms)


def _traffic(rng: random.Random, n: int) -> Traffic:
    """Stable fleets: 1% 5xx around 20 ms; canaries: 2% 5xx around 30 ms, long tails."""
    out: Traffic = {}
    for s in range(SERVICES):
        for role, error_rate, median_ms in (("stable", 0.01, 20.0), ("canary", 0.02, 30.0)):
            statuses = [500 if rng.random() < error_rate else 200 for _ in range(n)]
            latencies = [rng.lognormvariate(math.log(median_ms), 1.0) for _ in range(n)]
            out[f"svc{s}-{role}"] = (statuses, latencies)
    return out


def _record(counters: Counters, traffic: Traffic) -> None:
    for name, (statuses, latencies) in traffic.items():
        record = counters.fleet(name).record
        for status, latency_ms in zip(statuses, latencies, strict=True):
            record(status, latency_ms)


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _per_call(fn: Callable[[], object], min_seconds: float = 0.2, repeat: int = 5) -> float:
    """Seconds per call: the best of ``repeat`` batches of at least ``min_seconds`` each."""
    timer = timeit.Timer(fn)
    number = 1
    while timer.timeit(number) < min_seconds:
        number *= 2
    return min(timer.repeat(repeat=repeat, number=number)) / number


def _exact_window(name: str, statuses: list[int], latencies: list[float]) -> FleetWindow:
    n = len(latencies)
    p99 = sorted(latencies)[math.ceil(n * 99 / 100) - 1]
    return FleetWindow(name, n, sum(1 for s in statuses if s >= 500), p99)


def run() -> list[Result]:
    rng = random.Random(4)
    counters = Counters()
    _record(counters, _traffic(rng, 1_000))  # traffic before the window
    before = counters.snapshot(RouteTable()).fleets
    traffic = _traffic(rng, REQUESTS)
    recording = _timed(lambda: _record(counters, traffic))
    # One-shot timings are noisy; take the better of this and a throwaway recording.
    recording = min(recording, _timed(lambda: _record(Counters(), traffic)))
    after = counters.snapshot(RouteTable()).fleets

    def evaluate() -> None:
        windows = {name: window(before[name], after[name]) for name in after}
        for s in range(SERVICES):
            judge(THRESHOLDS, windows[f"svc{s}-canary"], windows[f"svc{s}-stable"])

    def evaluate_exact() -> None:
        windows = {name: _exact_window(name, *traffic[name]) for name in traffic}
        for s in range(SERVICES):
            judge(THRESHOLDS, windows[f"svc{s}-canary"], windows[f"svc{s}-stable"])

    for name, (statuses, latencies) in traffic.items():  # both ways judge the same numbers
        fast, exact = window(before[name], after[name]), _exact_window(name, statuses, latencies)
        exact_bucket = next(b for b in _BOUNDS if exact.p99_ms is not None and exact.p99_ms <= b)
        if (fast.requests, fast.errors, fast.p99_ms) != (
            exact.requests,
            exact.errors,
            exact_bucket,
        ):
            raise RuntimeError(f"{name}: histogram {fast} disagrees with raw data {exact}")

    per_eval = _per_call(evaluate)
    per_exact = _per_call(evaluate_exact, min_seconds=0.5, repeat=3)
    # As rates, higher is better: the table prints ratios with two decimals, and
    # evaluation is thousands of times faster than either baseline.
    suite = "analysis"
    what = f"step evaluations ({2 * SERVICES} fleets x {REQUESTS // 1000}k requests)"
    return [
        Result(
            suite, what, 1 / per_eval, "/s", "exact, sorting raw latencies", 1 / per_exact, True
        ),
        Result(
            suite, what, 1 / per_eval, "/s", "windows of 1M requests recorded", 1 / recording, True
        ),
    ]


if __name__ == "__main__":
    from bench.common import table

    print(table(run()))
