"""The canary's timed steps: analysis on the router's metrics, and pauses.

Both wait in small polls so that a gate (`kiln abort`, `kiln pause`, `kiln
advance`) or the progress deadline takes effect within a fraction of a second.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from datetime import UTC, datetime

from kiln.engine.context import Context
from kiln.engine.gates import POLL, Deadline, check_going, gates
from kiln.errors import KilnError
from kiln.model import Deployment, RouterMetrics, StepRecord
from kiln.model.analysis import FleetWindow, Outcome, Verdict
from kiln.model.route import LATENCY_BUCKETS_MS
from kiln.model.steps import Analyze, Pause
from kiln.spec.durations import format_duration
from kiln.strategies.analysis import judge, window

ANALYSIS_EVENT = "deploy.analysis"


def _verdicts(step: Analyze, base: RouterMetrics, now: RouterMetrics) -> dict[str, Verdict]:
    """service -> verdict on its canary against its stable fleet, between two reads."""
    out = {}
    for service, canary in sorted(step.canary.items()):
        stable = step.stable[service]
        c_now, s_now = now.fleets.get(canary), now.fleets.get(stable)
        # A fleet the router has not counted yet has seen no traffic.
        c_win = window(base.fleets.get(canary), c_now) if c_now else FleetWindow(canary, 0, 0, None)
        s_win = window(base.fleets.get(stable), s_now) if s_now else None
        out[service] = judge(step.thresholds, c_win, s_win)
    return out


def _summary(verdicts: dict[str, Verdict]) -> str:
    if len(verdicts) == 1:
        return next(iter(verdicts.values())).reason
    return "; ".join(f"{s}: {v.reason}" for s, v in verdicts.items())


def window_json(w: FleetWindow) -> dict[str, object]:
    """A window as strict JSON: a p99 past the histogram's last bound (inf) is given as
    ``p99_over_ms`` (that bound) with ``p99_ms`` null, since JSON has no infinity."""
    data: dict[str, object] = asdict(w)
    if w.p99_ms is not None and math.isinf(w.p99_ms):
        data["p99_ms"] = None
        data["p99_over_ms"] = LATENCY_BUCKETS_MS[-1]
    return data


def _numbers(verdicts: dict[str, Verdict]) -> dict[str, object]:
    return {
        s: {
            "outcome": v.outcome.value,
            "reason": v.reason,
            "canary": window_json(v.canary),
            "stable": window_json(v.stable) if v.stable else None,
        }
        for s, v in verdicts.items()
    }


def _progress(step: Analyze, verdicts: dict[str, Verdict], elapsed: float) -> dict[str, object]:
    return {
        "kind": "analyze",
        "step": step.step + 1,
        "weight": step.weight,
        "elapsed": round(elapsed, 1),
        "window": step.thresholds.window,
        "services": _numbers(verdicts),
    }


def analyze(ctx: Context, dep: Deployment, step: Analyze) -> str:
    """Pass after a whole window within thresholds; fail at the first window that is not.

    An inconclusive window (too few requests) widens until it decides, or the
    progress deadline fails the deployment. The measured numbers go into the
    step's detail, the audit log, and the deployment's live progress.
    """
    router = ctx.router()
    deadline = Deadline.of(dep, step.deadline)
    base = router.metrics()
    started = time.monotonic()
    label = f"step {step.step + 1} (canary {step.weight}%)"
    try:
        return _judge_until_decided(ctx, dep, step, base, started, deadline, label)
    finally:
        ctx.store.set_progress(dep.id, None)


def _judge_until_decided(
    ctx: Context,
    dep: Deployment,
    step: Analyze,
    base: RouterMetrics,
    started: float,
    deadline: Deadline,
    label: str,
) -> str:
    router = ctx.router()
    while True:
        time.sleep(min(POLL * 4, step.thresholds.window))
        elapsed = time.monotonic() - started
        verdicts = _verdicts(step, base, router.metrics())
        ctx.store.set_progress(dep.id, _progress(step, verdicts, elapsed))
        outcomes = {v.outcome for v in verdicts.values()}
        summary = _summary(verdicts)
        ctx.reporter.progress(f"analysis {label}, {elapsed:.0f}s: {summary}")
        if Outcome.FAIL in outcomes:
            _record(ctx, dep, step, verdicts, "fail")
            raise KilnError(f"analysis at {label} failed: {summary}")
        g = gates(ctx, dep, datetime.now(UTC))
        held = g.paused is not None or g.aborted is not None
        if elapsed >= step.thresholds.window and outcomes == {Outcome.PASS} and not held:
            _record(ctx, dep, step, verdicts, "pass")
            return f"analysis at {label} passed: {summary}"
        try:
            check_going(ctx, g, deadline)
        except KilnError as stop:
            _record(ctx, dep, step, verdicts, "stopped")
            raise KilnError(f"{stop} during the analysis at {label}: {summary}") from None


def _record(
    ctx: Context, dep: Deployment, step: Analyze, verdicts: dict[str, Verdict], result: str
) -> None:
    ctx.event(
        ANALYSIS_EVENT,
        dep.env,
        _summary(verdicts),
        deployment=dep.id,
        step=step.step + 1,
        weight=step.weight,
        result=result,
        services=_numbers(verdicts),
    )


def pause(ctx: Context, dep: Deployment, step: Pause, record: StepRecord) -> str:
    """Hold for ``step.seconds``, or until `kiln advance`; abort and deadline end it."""
    deadline = Deadline.of(dep, step.deadline)
    # Only an advance given while this pause runs ends it: one given during the
    # analysis before must not approve a pause its giver has not seen yet.
    assert record.started_at is not None
    since = record.started_at
    started = time.monotonic()
    label = f"step {step.step + 1} (canary {step.weight}%)"
    waiting = "`kiln advance`" if step.seconds is None else format_duration(step.seconds)
    ctx.store.set_progress(
        dep.id, {"kind": "pause", "step": step.step + 1, "weight": step.weight, "until": waiting}
    )
    ctx.reporter.progress(f"paused at {label}: waiting for {waiting}")
    try:
        while True:
            g = gates(ctx, dep, since)
            check_going(ctx, g, deadline)
            if g.advanced is not None:
                return f"advanced at {label}: {g.advanced.said()}"
            done = step.seconds is not None and time.monotonic() - started >= step.seconds
            if done and g.paused is None:
                return f"paused {format_duration(step.seconds or 0)} at {label}"
            time.sleep(POLL)
    finally:
        ctx.store.set_progress(dep.id, None)
