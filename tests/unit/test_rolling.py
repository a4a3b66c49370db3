"""The rolling state machine: batches, the failure path, and its bounds as properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiln.model import DeploymentStatus, StepRecord, StepStatus, StrategyConfig
from kiln.model.steps import Destroy, Grow, Retire, SetRoutes, Shrink
from kiln.strategies import Finish, Plan, decide
from kiln.strategies.rolling import batches
from tests.unit.drive import NOW, run

NEW, OLD = "a.dev.web.r2", "a.dev.web.r1"


def plan(replicas: int = 3, old: int = 3, surge: int = 1, unavailable: int = 0) -> Plan:
    return Plan(
        strategy="rolling",
        new={"web": NEW},
        previous={"web": OLD},
        routed=frozenset({"web"}),
        config=StrategyConfig(type="rolling", max_surge=surge, max_unavailable=unavailable),
        replicas={NEW: replicas, OLD: old},
    )


def test_surge_one_unavailable_zero_replaces_one_at_a_time() -> None:
    steps, end = run(plan())
    assert steps == [
        Grow(counts={NEW: 1}),
        SetRoutes(weights={"web": {NEW: 25, OLD: 75}}),
        Shrink(counts={OLD: 2}, weights={"web": {NEW: 33, OLD: 67}}),
        Grow(counts={NEW: 2}),
        SetRoutes(weights={"web": {NEW: 50, OLD: 50}}),
        Shrink(counts={OLD: 1}, weights={"web": {NEW: 67, OLD: 33}}),
        Grow(counts={NEW: 3}),
        SetRoutes(weights={"web": {NEW: 75, OLD: 25}}),
        Shrink(counts={OLD: 0}, weights={"web": {NEW: 100, OLD: 0}}),
        SetRoutes(weights={"web": {NEW: 100}}),
        Retire(fleets=(OLD,)),
    ]
    assert end == Finish(DeploymentStatus.SUCCEEDED)


def test_batches() -> None:
    assert batches(3, 3, 0, 1) == [(0, 2), (1, 1), (2, 0), (3, 0)]
    assert batches(4, 4, 2, 1) == [(2, 1), (4, 0)]
    assert batches(3, 0, 1, 0) == [(3, 0)]  # a new service: all at once
    with pytest.raises(ValueError, match="at least 1"):
        batches(3, 3, 0, 0)


def test_a_failing_batch_grows_the_old_fleet_back_then_rolls_back() -> None:
    steps, end = run(plan(), fail="grow", at=(2,))  # the second batch never gets healthy
    assert steps[-3:] == [
        Grow(counts={OLD: 3}),  # new instances of the old release, back to full size
        SetRoutes(weights={"web": {OLD: 100}}),
        Destroy(fleets=(NEW,)),
    ]
    assert end.status is DeploymentStatus.FAILED
    assert end.reason == "grow failed: boom"


def test_a_failing_first_batch_destroys_only_the_new_fleet() -> None:
    steps, end = run(plan(), fail="grow")
    assert steps == [Grow(counts={NEW: 1}), Destroy(fleets=(NEW,))]
    assert end.status is DeploymentStatus.FAILED


def test_when_the_old_fleet_cannot_grow_back_both_keep_serving() -> None:
    steps, _ = run(plan(), fail="grow", at=(2,))
    log = [StepRecord(i + 1, s, StepStatus.OK, "", NOW) for i, s in enumerate(steps[:-3])]
    log[-1] = StepRecord(len(log), steps[len(log) - 1], StepStatus.FAILED, "boom", NOW)
    log.append(StepRecord(len(log) + 1, Grow(counts={OLD: 3}), StepStatus.FAILED, "full", NOW))
    final = decide(plan(), log)
    assert isinstance(final, Finish)
    assert "growing the previous fleet back failed too: full" in final.reason


@given(
    replicas=st.integers(1, 12),
    old=st.integers(0, 12),
    surge=st.integers(0, 4),
    unavailable=st.integers(0, 4),
)
@settings(max_examples=300, deadline=None)
def test_bounds_hold_in_every_batch(replicas: int, old: int, surge: int, unavailable: int) -> None:
    if surge + unavailable == 0:
        return
    steps, end = run(plan(replicas, old, surge, unavailable))
    assert end.status is DeploymentStatus.SUCCEEDED
    live = {NEW: 0, OLD: old}
    healthy_floor = min(old, replicas - unavailable)
    for step in steps:
        if isinstance(step, Grow):
            # While the new instances start, only what already served is healthy.
            assert live[NEW] + live[OLD] >= healthy_floor
            live.update(step.counts)
            assert live[NEW] + live[OLD] <= max(replicas + surge, old)
        elif isinstance(step, Shrink):
            live.update(step.counts)
            assert live[NEW] + live[OLD] >= healthy_floor
        elif isinstance(step, SetRoutes):
            for fleets in step.weights.values():
                assert sum(fleets.values()) == 100
                # Traffic in proportion to instances: no fleet without instances gets any.
                for fleet, weight in fleets.items():
                    assert weight == 0 or live[fleet] > 0
    assert live == {NEW: replicas, OLD: 0}
