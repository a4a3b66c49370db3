"""The blue-green state machine: golden paths, failure paths, resume, properties."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from kiln.model import DeploymentStatus, StepRecord, StepStatus
from kiln.model.steps import Destroy, Launch, Retain, Retire, SetRoutes, Step, WaitHealthy
from kiln.strategies import Finish, Plan, decide

NOW = datetime(2026, 1, 1, tzinfo=UTC)

FIRST = Plan(
    strategy="blue-green",
    new={"web": "a.dev.web.r1"},
    previous={"web": None},
    routed=frozenset({"web"}),
    retain_seconds={"web": 600},
)
SECOND = Plan(
    strategy="blue-green",
    new={"web": "a.dev.web.r2", "worker": "a.dev.worker.r1"},
    previous={"web": "a.dev.web.r1", "worker": "a.dev.worker.r1"},
    routed=frozenset({"web"}),
    retain_seconds={"web": 600, "worker": 600},
)


def run(plan: Plan, fail: dict[str, str] | None = None) -> tuple[list[Step], Finish]:
    """Drive the strategy with each step succeeding unless its kind is in ``fail``."""
    fail = fail or {}
    log: list[StepRecord] = []
    for seq in range(1, 30):
        decision = decide(plan, log)
        if isinstance(decision, Finish):
            return [r.step for r in log], decision
        status = StepStatus.FAILED if decision.kind in fail else StepStatus.OK
        log.append(StepRecord(seq, decision, status, fail.get(decision.kind, ""), NOW))
    raise AssertionError("strategy did not finish")


def test_first_deploy() -> None:
    steps, end = run(FIRST)
    assert steps == [
        Launch(fleets=("a.dev.web.r1",)),
        WaitHealthy(fleets=("a.dev.web.r1",)),
        SetRoutes(weights={"web": {"a.dev.web.r1": 100}}),
    ]
    assert end == Finish(DeploymentStatus.SUCCEEDED)


def test_replacement_keeps_unchanged_services_and_retains_the_old_fleet() -> None:
    steps, end = run(SECOND)
    assert steps == [
        Launch(fleets=("a.dev.web.r2",)),
        WaitHealthy(fleets=("a.dev.web.r2",)),
        SetRoutes(weights={"web": {"a.dev.web.r2": 100}}),
        Retain(fleets=("a.dev.web.r1",), seconds=600),
    ]
    assert end.status is DeploymentStatus.SUCCEEDED


def test_no_retention_retires_at_once() -> None:
    plan = Plan(**{**SECOND.__dict__, "retain_seconds": {"web": 0}})
    steps, _ = run(plan)
    assert steps[-1] == Retire(fleets=("a.dev.web.r1",))


def test_removed_service_is_retired_and_loses_its_route() -> None:
    plan = Plan(
        strategy="blue-green",
        new={"web": "a.dev.web.r1"},
        previous={"web": "a.dev.web.r1", "api": "a.dev.api.r1"},
        routed=frozenset({"web"}),
        retain_seconds={},
    )
    steps, end = run(plan)
    assert steps == [
        Launch(fleets=()),
        WaitHealthy(fleets=()),
        SetRoutes(weights={"web": {"a.dev.web.r1": 100}}),
        Retire(fleets=("a.dev.api.r1",)),
    ]
    assert end.status is DeploymentStatus.SUCCEEDED


def test_failed_health_destroys_new_fleet_and_never_touches_the_route() -> None:
    steps, end = run(SECOND, fail={"wait_healthy": "1/3 healthy"})
    assert steps[-1] == Destroy(fleets=("a.dev.web.r2",))
    assert not any(isinstance(s, SetRoutes | Retain | Retire) for s in steps)
    assert end == Finish(DeploymentStatus.FAILED, "wait_healthy failed: 1/3 healthy")


def test_failed_launch_ends_failed() -> None:
    steps, end = run(SECOND, fail={"launch": "boom"})
    assert steps[-1] == Destroy(fleets=("a.dev.web.r2",))
    assert end == Finish(DeploymentStatus.FAILED, "launch failed: boom")


def test_failed_switch_restores_the_old_routes_before_destroying() -> None:
    log = [
        StepRecord(1, Launch(fleets=("a.dev.web.r2",)), StepStatus.OK, "", NOW),
        StepRecord(2, WaitHealthy(fleets=("a.dev.web.r2",)), StepStatus.OK, "", NOW),
        StepRecord(
            3,
            SetRoutes(weights={"web": {"a.dev.web.r2": 100}}),
            StepStatus.FAILED,
            "router timed out",
            NOW,
        ),
    ]
    restore = SetRoutes(weights={"web": {"a.dev.web.r1": 100}})
    assert decide(SECOND, log) == restore
    log.append(StepRecord(4, restore, StepStatus.OK, "", NOW))
    assert decide(SECOND, log) == Destroy(fleets=("a.dev.web.r2",))
    log.append(StepRecord(5, Destroy(fleets=("a.dev.web.r2",)), StepStatus.OK, "", NOW))
    assert decide(SECOND, log) == Finish(
        DeploymentStatus.FAILED, "set_routes failed: router timed out"
    )


def test_failed_restore_destroys_nothing() -> None:
    log = [
        StepRecord(
            1,
            SetRoutes(weights={"web": {"a.dev.web.r2": 100}}),
            StepStatus.FAILED,
            "router down",
            NOW,
        ),
        StepRecord(
            2,
            SetRoutes(weights={"web": {"a.dev.web.r1": 100}}),
            StepStatus.FAILED,
            "router down",
            NOW,
        ),
    ]
    end = decide(SECOND, log)
    assert isinstance(end, Finish)
    assert end.status is DeploymentStatus.FAILED
    assert "restoring the previous routes failed too" in end.reason


def test_failed_clean_up_is_reported() -> None:
    _, end = run(SECOND, fail={"wait_healthy": "x", "destroy": "engine gone"})
    assert end.status is DeploymentStatus.FAILED
    assert "clean-up failed too: engine gone" in end.reason


def test_failed_retention_still_succeeds() -> None:
    _, end = run(SECOND, fail={"retain": "db locked"})
    assert end.status is DeploymentStatus.SUCCEEDED
    assert "clean-up pending" in end.reason


def test_interrupted_step_runs_again() -> None:
    log = [
        StepRecord(1, Launch(fleets=("a.dev.web.r2",)), StepStatus.OK, "", NOW),
        StepRecord(2, WaitHealthy(fleets=("a.dev.web.r2",)), StepStatus.STARTED, "", NOW),
    ]
    assert decide(SECOND, log) == WaitHealthy(fleets=("a.dev.web.r2",))


def test_interrupted_step_recorded_failed_takes_the_failure_path() -> None:
    log = [
        StepRecord(1, Launch(fleets=("a.dev.web.r2",)), StepStatus.OK, "", NOW),
        StepRecord(
            2, WaitHealthy(fleets=("a.dev.web.r2",)), StepStatus.FAILED, "interrupted (Ctrl-C)", NOW
        ),
    ]
    assert decide(SECOND, log) == Destroy(fleets=("a.dev.web.r2",))


def test_reused_warm_fleet_is_not_destroyed_on_failure() -> None:
    # Rolling back to r1 while r2 serves: r1 is the warm fleet being reused.
    plan = Plan(
        strategy="blue-green",
        new={"web": "a.dev.web.r1"},
        previous={"web": "a.dev.web.r2"},
        routed=frozenset({"web"}),
        retain_seconds={"web": 60},
        reused=frozenset({"a.dev.web.r1"}),
    )
    steps, end = run(plan, fail={"wait_healthy": "x"})
    assert steps[-1] == Destroy(fleets=())
    assert end.status is DeploymentStatus.FAILED


KINDS = ["launch", "wait_healthy", "set_routes", "retain", "retire", "destroy"]


@settings(max_examples=300, deadline=None)
@given(
    fail=st.sets(st.sampled_from(KINDS)),
    retain=st.sampled_from([0, 60]),
    interrupt_at=st.integers(min_value=0, max_value=8),
)
def test_properties(fail: set[str], retain: int, interrupt_at: int) -> None:
    """Always ends; old fleets are never touched before the switch; a failure before
    the switch never switches; an interrupted step repeats exactly."""
    plan = Plan(**{**SECOND.__dict__, "retain_seconds": {"web": retain, "worker": retain}})
    log: list[StepRecord] = []
    for seq in range(1, 30):
        decision = decide(plan, log)
        if isinstance(decision, Finish):
            break
        if seq == interrupt_at:
            interrupted = [*log, StepRecord(seq, decision, StepStatus.STARTED, "", NOW)]
            assert decide(plan, interrupted) == decision
        switched = any(r.step.kind == "set_routes" and r.status is StepStatus.OK for r in log)
        if isinstance(decision, Retain | Retire):
            assert switched
            assert "a.dev.web.r2" not in decision.fleets
        failed_before = [r for r in log if r.status is StepStatus.FAILED]
        if isinstance(decision, SetRoutes) and failed_before:
            # only ever a restore of the old routes after a failed switch
            assert failed_before[0].step.kind == "set_routes"
            assert decision == SetRoutes(weights={"web": {"a.dev.web.r1": 100}})
        if isinstance(decision, Destroy):
            assert "a.dev.web.r1" not in decision.fleets  # the serving fleet survives
            assert not (switched and not failed_before)
        status = StepStatus.FAILED if decision.kind in fail else StepStatus.OK
        log.append(StepRecord(seq, decision, status, "x", NOW))
    else:
        raise AssertionError("did not finish")
    pre_switch_failure = any(
        r.status is StepStatus.FAILED and r.step.kind in ("launch", "wait_healthy", "set_routes")
        for r in log
    )
    assert decision.status is (
        DeploymentStatus.FAILED if pre_switch_failure else DeploymentStatus.SUCCEEDED
    )
