"""The planner: keep, launch, reuse a warm fleet, remove; diffs never show secret values."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from kiln.model import Fleet, FleetState, HealthCheck, ServiceRelease, StrategyConfig
from kiln.planner import diff_service, plan_release

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def svc(artifact: str = "sha256:aaa", **kw: object) -> ServiceRelease:
    base = ServiceRelease(
        service="web",
        artifact=artifact,
        command=("python3", "s.py"),
        port=8000,
        replicas=2,
        env={"A": "1"},
        secrets={"TOKEN": "sha256:t1"},
        health=HealthCheck(),
        volumes={},
        strategy=StrategyConfig(),
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def fleet(s: ServiceRelease, release: int, state: FleetState) -> Fleet:
    return Fleet(
        id=f"a.dev.web.r{release}",
        app="a",
        env="dev",
        service="web",
        release=release,
        artifact=s.artifact,
        config_digest=s.config_digest(),
        replicas=s.replicas,
        state=state,
        created_at=NOW,
    )


def test_first_release_launches() -> None:
    plan = plan_release(
        new_fleet_ids={"web": "a.dev.web.r1"},
        new={"web": svc()},
        current={},
        active={},
        warm=[],
        alive={},
    )
    (change,) = plan.changes
    assert (change.action, change.target, change.launch, change.current) == (
        "launch",
        "a.dev.web.r1",
        2,
        None,
    )
    assert plan.changed


def test_unchanged_service_keeps_its_fleet() -> None:
    s = svc()
    f1 = fleet(s, 1, FleetState.ACTIVE)
    plan = plan_release(
        new_fleet_ids={"web": "a.dev.web.r2"},
        new={"web": s},
        current={"web": s},
        active={"web": f1},
        warm=[],
        alive={f1.id: 2},
    )
    assert plan.changes[0].action == "keep"
    assert not plan.changed


def test_unchanged_but_degraded_fleet_is_replaced() -> None:
    s = svc()
    f1 = fleet(s, 1, FleetState.ACTIVE)
    plan = plan_release(
        new_fleet_ids={"web": "a.dev.web.r2"},
        new={"web": s},
        current={"web": s},
        active={"web": f1},
        warm=[],
        alive={f1.id: 1},
    )
    assert plan.changes[0].action == "launch"


def test_env_change_launches_a_new_fleet() -> None:
    old, new = svc(), svc(env={"A": "2"})
    f1 = fleet(old, 1, FleetState.ACTIVE)
    plan = plan_release(
        new_fleet_ids={"web": "a.dev.web.r2"},
        new={"web": new},
        current={"web": old},
        active={"web": f1},
        warm=[],
        alive={f1.id: 2},
    )
    change = plan.changes[0]
    assert (change.action, change.current, change.target, change.retire) == (
        "launch",
        f1.id,
        "a.dev.web.r2",
        2,
    )
    assert change.diff is not None
    assert change.diff.env_changed == ("A",)


def test_warm_fleet_with_same_content_is_reused() -> None:
    v1, v2 = svc("sha256:v1"), svc("sha256:v2")
    f1, f2 = fleet(v1, 1, FleetState.RETAINED), fleet(v2, 2, FleetState.ACTIVE)
    plan = plan_release(
        new_fleet_ids={"web": "a.dev.web.r3"},
        new={"web": v1},
        current={"web": v2},
        active={"web": f2},
        warm=[f1, f2],
        alive={f1.id: 2, f2.id: 2},
    )
    assert (plan.changes[0].action, plan.changes[0].target) == ("reuse", f1.id)
    # ... but not when it lost instances: then a new fleet is launched.
    plan = plan_release(
        new_fleet_ids={"web": "a.dev.web.r3"},
        new={"web": v1},
        current={"web": v2},
        active={"web": f2},
        warm=[f1, f2],
        alive={f1.id: 1, f2.id: 2},
    )
    assert plan.changes[0].action == "launch"


def test_removed_service() -> None:
    s = svc()
    f1 = fleet(s, 1, FleetState.ACTIVE)
    plan = plan_release(
        new_fleet_ids={}, new={}, current={"web": s}, active={"web": f1}, warm=[], alive={f1.id: 2}
    )
    assert plan.changes[0].action == "remove"
    assert plan.previous == {"web": f1.id}
    assert plan.new == {}


def test_diff_names_changed_secrets_but_never_their_digests() -> None:
    old, new = svc(), svc(secrets={"TOKEN": "sha256:t2", "NEW": "sha256:n"}, replicas=3)
    diff = diff_service(old, new)
    assert diff.secrets_changed == ("NEW", "TOKEN")
    assert diff.fields_changed == ("replicas",)
    text = " ".join(diff.summary())
    assert "t2" not in text
    assert "secret TOKEN changed" in text
    assert diff_service(old, old).empty
