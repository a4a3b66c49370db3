"""The canary state machine and the gates fold: golden paths, failure paths, properties."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiln.model import CanaryStep, DeploymentStatus, StepRecord, StepStatus, StrategyConfig
from kiln.model.analysis import Thresholds
from kiln.model.steps import (
    Analyze,
    Destroy,
    Launch,
    Pause,
    Retain,
    SetRoutes,
    WaitHealthy,
)
from kiln.spec import parse_spec
from kiln.strategies import Finish, Plan, decide
from kiln.strategies.gates import Gate, GateRequest, Gates, fold
from tests.unit.drive import NOW, run

CHECK = Thresholds(window=30, min_requests=50, max_error_rate=0.01)


def plan(*steps: CanaryStep, deadline: float = 600) -> Plan:
    return Plan(
        strategy="canary",
        new={"web": "a.dev.web.r2", "worker": "a.dev.worker.r2"},
        previous={"web": "a.dev.web.r1", "worker": "a.dev.worker.r1"},
        routed=frozenset({"web"}),
        retain_seconds={"web": 600, "worker": 0},
        config=StrategyConfig(type="canary", steps=steps, progress_deadline=deadline),
    )


TWO_STEPS = plan(
    CanaryStep(weight=10, pause=30.0, analysis=CHECK),
    CanaryStep(weight=50, manual=True),
)
ROLES = {"a.dev.web.r2": "canary", "a.dev.web.r1": "stable"}


def test_golden_path_moves_traffic_step_by_step() -> None:
    steps, end = run(TWO_STEPS)
    assert steps == [
        Launch(fleets=("a.dev.web.r2", "a.dev.worker.r2")),
        WaitHealthy(fleets=("a.dev.web.r2", "a.dev.worker.r2")),
        SetRoutes(weights={"web": {"a.dev.web.r2": 10, "a.dev.web.r1": 90}}, roles=ROLES),
        Analyze(
            step=0,
            weight=10,
            canary={"web": "a.dev.web.r2"},
            stable={"web": "a.dev.web.r1"},
            thresholds=CHECK,
            deadline=600,
        ),
        Pause(step=0, weight=10, seconds=30.0, deadline=600),
        SetRoutes(weights={"web": {"a.dev.web.r2": 50, "a.dev.web.r1": 50}}, roles=ROLES),
        Pause(step=1, weight=50, seconds=None, deadline=600),
        SetRoutes(weights={"web": {"a.dev.web.r2": 100}}),
        Retain(fleets=("a.dev.web.r1",), seconds=600),
        *steps[-1:],  # the worker's old fleet: retired (retain 0)
    ]
    assert steps[-1].kind == "retire"
    assert end == Finish(DeploymentStatus.SUCCEEDED)


@pytest.mark.parametrize("kind", ["analyze", "pause", "set_routes"])
def test_failure_after_traffic_moved_restores_routes_then_destroys(kind: str) -> None:
    steps, end = run(TWO_STEPS, fail=kind)
    assert steps[-2:] == [
        SetRoutes(weights={"web": {"a.dev.web.r1": 100}}),
        Destroy(fleets=("a.dev.web.r2", "a.dev.worker.r2")),
    ]
    assert end.status is DeploymentStatus.FAILED
    assert end.reason == f"{kind} failed: boom"
    # The stable fleet is never retired or retained on the way down.
    assert not any(s.kind in ("retain", "retire") for s in steps)


def test_failed_health_never_touches_routes() -> None:
    steps, end = run(TWO_STEPS, fail="wait_healthy")
    assert [s.kind for s in steps] == ["launch", "wait_healthy", "destroy"]
    assert end.status is DeploymentStatus.FAILED


def test_failed_restore_keeps_the_canary_for_inspection() -> None:
    steps, end = run(TWO_STEPS, fail="set_routes", at=(2, 3))  # step 2's, then the restore
    assert steps[-1] == SetRoutes(weights={"web": {"a.dev.web.r1": 100}})
    assert "restoring the previous routes failed too" in end.reason


def test_first_deploy_has_no_canary_and_runs_as_blue_green() -> None:
    first = Plan(
        strategy="canary",
        new={"web": "a.dev.web.r1"},
        previous={"web": None},
        routed=frozenset({"web"}),
        config=TWO_STEPS.config,
    )
    steps, end = run(first)
    assert [s.kind for s in steps] == ["launch", "wait_healthy", "set_routes"]
    assert end.status is DeploymentStatus.SUCCEEDED


def test_an_interrupted_step_runs_again() -> None:
    steps, _ = run(TWO_STEPS)
    log = [StepRecord(i + 1, s, StepStatus.OK, "", NOW) for i, s in enumerate(steps[:3])]
    log.append(StepRecord(4, steps[3], StepStatus.STARTED, "", NOW))
    assert decide(TWO_STEPS, log) == steps[3]


canary_steps = st.lists(
    st.builds(
        CanaryStep,
        weight=st.integers(0, 100),
        pause=st.none() | st.floats(1, 100),
        manual=st.booleans(),
        analysis=st.none() | st.just(CHECK),
    ),
    min_size=1,
    max_size=6,
).map(lambda steps: sorted({s.weight: s for s in steps}.values(), key=lambda s: s.weight))


@given(canary_steps, st.sampled_from([None, "launch", "set_routes", "analyze", "pause"]))
@settings(max_examples=200, deadline=None)
def test_properties(steps: list[CanaryStep], fail: str | None) -> None:
    p = plan(*steps)
    log, end = run(p, fail=fail)
    weights_seen = [s.weights for s in log if isinstance(s, SetRoutes)]
    # Every route's weights sum to 100, at every step.
    for weights in weights_seen:
        for fleets in weights.values():
            assert sum(fleets.values()) == 100
    # The stable fleet keeps all its instances until the canary serves 100 %.
    full = next(
        (i for i, s in enumerate(log) if isinstance(s, SetRoutes) and not s.roles),
        len(log),
    )
    before = log[:full]
    assert not any(isinstance(s, Destroy | Retain) and "a.dev.web.r1" in s.fleets for s in before)
    assert not any(s.kind == "retire" for s in before)
    if any(isinstance(s, Retain) and "a.dev.web.r1" in s.fleets for s in log):
        assert weights_seen[-1] == {"web": {"a.dev.web.r2": 100}}
    # Canary weights only go up on the way forward.
    forward = [w["web"].get("a.dev.web.r2", 0) for w in weights_seen if "a.dev.web.r1" in w["web"]]
    if fail is None:
        assert forward == sorted(forward)
        assert end.status is DeploymentStatus.SUCCEEDED
    elif any(s.kind == fail for s in log):
        assert end.status is DeploymentStatus.FAILED
        assert log[-1] == Destroy(fleets=("a.dev.web.r2", "a.dev.worker.r2"))


# -- gates --------------------------------------------------------------------


def req(gate: Gate, seconds: float) -> GateRequest:
    return GateRequest(gate, "alice@host", NOW + timedelta(seconds=seconds))


def test_gates_fold() -> None:
    started = NOW + timedelta(seconds=10)
    assert fold([], started) == Gates()
    # An advance made before the step started was for an earlier step.
    assert fold([req(Gate.ADVANCE, 5)], started).advanced is None
    assert fold([req(Gate.ADVANCE, 11)], started).advanced == req(Gate.ADVANCE, 11)
    # An advance first lifts a pause; a second one advances the step.
    paused = [req(Gate.PAUSE, 12)]
    assert fold(paused, started).paused == req(Gate.PAUSE, 12)
    lifted = fold([*paused, req(Gate.ADVANCE, 13)], started)
    assert lifted == Gates()
    assert fold([*paused, req(Gate.ADVANCE, 13), req(Gate.ADVANCE, 14)], started).advanced
    # An abort is final, whatever follows.
    aborted = fold([req(Gate.ABORT, 1), req(Gate.ADVANCE, 20)], started)
    assert aborted.aborted == req(Gate.ABORT, 1)


def test_gate_request_says_who_and_why() -> None:
    said = GateRequest(Gate.ABORT, "bob@ci", NOW, "p99 too high").said()
    assert said == "kiln abort by bob@ci (p99 too high)"


# -- spec -----------------------------------------------------------------------

SPEC = """\
app: a
services:
  web:
    build: .
    command: [x]
    replicas: 4
    strategy: {STRATEGY}
environments:
  dev:
    routes: {web: "127.0.0.1:9000"}
"""


def strategy(text: str) -> StrategyConfig:
    spec = parse_spec(SPEC.replace("{STRATEGY}", text))
    return spec.services["web"].strategy.config(4)


def test_canary_spec_merges_the_default_analysis_into_every_step() -> None:
    config = strategy(
        "{type: canary, progress_deadline: 10m, steps: ["
        "{weight: 10, pause: 30s}, "
        "{weight: 50, pause: manual, analysis: {window: 60s, max_error_rate: 0.01}}],"
        " analysis: {max_error_rate: 0.02, max_p99_ms: 500}}"
    )
    assert config.progress_deadline == 600
    first, second = config.steps
    assert first == CanaryStep(
        weight=10, pause=30.0, analysis=Thresholds(max_error_rate=0.02, max_p99_ms=500)
    )
    assert second.manual
    assert second.pause is None
    assert second.analysis == Thresholds(window=60, max_error_rate=0.01, max_p99_ms=500)


def test_rolling_amounts_resolve_against_replicas() -> None:
    config = strategy("{type: rolling, max_surge: 25%, max_unavailable: 50%}")
    assert (config.max_surge, config.max_unavailable) == (1, 2)
    default = strategy("{type: rolling}")
    assert (default.max_surge, default.max_unavailable) == (1, 0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{type: canary}", "type: canary needs steps"),
        ("{type: canary, steps: [{weight: 50}, {weight: 20}]}", "step weights must increase"),
        ("{type: canary, steps: [{weight: 101}]}", "less than or equal to 100"),
        ("{type: blue-green, steps: [{weight: 5}]}", "steps and analysis are for type: canary"),
        ("{type: canary, steps: [{weight: 5, pause: later}]}", "steps[0].pause"),
        (
            "{type: canary, steps: [{weight: 100}], analysis: {max_p99_ratio_vs_stable: 2}}",
            "a step at weight 100 leaves the stable fleet no traffic",
        ),
        ("{type: rolling, max_surge: 0, max_unavailable: 0%}", "cannot both be 0"),
        (
            "{type: canary, progress_deadline: 10s, steps: [{weight: 10, pause: 10s}]}",
            "step 1 waits 10s, not less than progress_deadline (10s)",
        ),
        (
            "{type: canary, progress_deadline: 1m, steps: [{weight: 10}],"
            " analysis: {window: 2m, max_error_rate: 0.1}}",
            "step 1 waits 120s",
        ),
        ("{type: rolling, max_surge: 150%}", "150% is more than 100%"),
        ("{type: canary, steps: [{weight: 5}], max_surge: 1}", "are for type: rolling"),
        (
            "{type: canary, steps: [{weight: 5, analysis: {max_error_rate: 2}}]}",
            "max_error_rate: Input should be less than or equal to 1",
        ),
    ],
)
def test_strategy_errors(text: str, expected: str) -> None:
    from kiln.errors import SpecError

    with pytest.raises(SpecError) as info:
        strategy(text)
    assert "kiln.yaml:7: services.web.strategy" in str(info.value)
    assert expected in str(info.value), str(info.value)


def test_routed_services_must_roll_out_alike() -> None:
    from kiln.errors import SpecError

    text = SPEC.replace("{STRATEGY}", "{type: canary, steps: [{weight: 10}]}")
    text = text.replace(
        "environments:",
        "  api:\n    build: .\n    command: [x]\n    strategy: {type: blue-green}\nenvironments:",
    )
    text = text.replace('routes: {web: "127.0.0.1:9000"}', 'routes: {web: ":9000", api: ":9001"}')
    text = text.replace('":9000"', '"127.0.0.1:9000"').replace('":9001"', '"127.0.0.1:9001"')
    with pytest.raises(SpecError, match="routed services api and web roll out differently"):
        parse_spec(text)
