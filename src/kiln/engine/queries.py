"""Read-only views for status, history and plan: data, never rendering."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kiln.engine.context import Context
from kiln.engine.deploy import compute_plan, previous_replicas, strategy_plan
from kiln.engine.releases import build_release
from kiln.engine.routes import route_name
from kiln.model import Deployment, Fleet, FleetState, Instance, Release, to_json
from kiln.planner import ReleasePlan
from kiln.spec.durations import format_duration
from kiln.strategies import Finish, decide
from kiln.strategies.base import Plan


@dataclass(frozen=True)
class FleetView:
    fleet: Fleet
    alive: int
    instances: tuple[Instance, ...]


@dataclass(frozen=True)
class Status:
    app: str
    env: str
    provider: str
    current: Release | None
    running: Deployment | None
    last: Deployment | None
    fleets: tuple[FleetView, ...]
    routes: dict[str, str]
    strays: tuple[Instance, ...]  # instances of no known live fleet
    weights: dict[str, int]  # fleet -> its share of its route's traffic, as the router has it

    def to_json(self) -> dict[str, Any]:
        return {
            "app": self.app,
            "env": self.env,
            "provider": self.provider,
            "current_release": to_json(self.current) if self.current else None,
            "running_deployment": _dep_json(self.running),
            "last_deployment": _dep_json(self.last),
            "routes": self.routes,
            "fleets": [
                {
                    **to_json(v.fleet),
                    "alive": v.alive,
                    "instances": [to_json(i) for i in v.instances],
                }
                for v in self.fleets
            ],
            "strays": [to_json(i) for i in self.strays],
            "weights": self.weights,
        }


def _dep_json(dep: Deployment | None) -> dict[str, Any] | None:
    if dep is None:
        return None
    data: dict[str, Any] = to_json(dep)
    return data


def status(ctx: Context, env: str) -> Status:
    store, app = ctx.store, ctx.app
    current_no = store.current_release(app, env)
    fleets = store.fleets(
        app, env, states=[FleetState.LAUNCHING, FleetState.ACTIVE, FleetState.RETAINED]
    )
    observed = ctx.provider(env).observe(env)
    known = {f.id for f in fleets}
    deployments = store.list_deployments(app, env, limit=1)
    return Status(
        app=app,
        env=env,
        provider=ctx.spec.environments[env].provider,
        current=store.get_release(app, env, current_no) if current_no else None,
        running=store.running_deployment(app, env),
        last=deployments[0] if deployments else None,
        fleets=tuple(
            FleetView(
                f,
                sum(1 for i in observed if i.fleet == f.id and i.alive),
                tuple(i for i in observed if i.fleet == f.id),
            )
            for f in fleets
        ),
        routes=dict(ctx.spec.environments[env].routes),
        strays=tuple(i for i in observed if i.fleet not in known),
        weights={
            f.fleet: f.weight
            for r in ctx.router().table().routes
            if r.name.startswith(route_name(app, env, ""))
            for f in r.fleets
        },
    )


@dataclass(frozen=True)
class HistoryEntry:
    release: Release
    deployment: Deployment | None  # the latest deployment of this release


def history(ctx: Context, env: str) -> list[HistoryEntry]:
    deps: dict[int, Deployment] = {}
    for dep in reversed(ctx.store.list_deployments(ctx.app, env, limit=10_000)):
        deps[dep.release] = dep
    return [
        HistoryEntry(r, deps.get(r.number)) for r in reversed(ctx.store.list_releases(ctx.app, env))
    ]


@dataclass(frozen=True)
class DeployPreview:
    release: Release  # not stored; number is 0
    current: Release | None
    plan: ReleasePlan
    steps: tuple[str, ...]  # the strategy's steps, if everything goes well


def preview(ctx: Context, env: str) -> DeployPreview:
    """What ``kiln deploy`` would do. Bakes (content-addressed, so harmless) but changes nothing."""
    release = build_release(ctx, env)
    plan, current = compute_plan(ctx, env, release)
    steps: list[str] = []
    if plan.changed:
        strat = strategy_plan(
            release,
            plan.new,
            plan.previous,
            plan.reused,
            previous_replicas(ctx, plan.previous),
        )
        steps = _happy_path(strat)
    return DeployPreview(release, current, plan, tuple(steps))


def _happy_path(plan: Plan) -> list[str]:
    """Simulate the strategy with every step succeeding; the plan is pure data."""
    from datetime import UTC, datetime

    from kiln.model import StepRecord, StepStatus

    log: list[StepRecord] = []
    out: list[str] = []
    for seq in range(1, 1000):
        step = decide(plan, log)
        if isinstance(step, Finish):
            break
        out.append(_describe(step))
        log.append(StepRecord(seq, step, StepStatus.OK, "", datetime.now(UTC), None))
    return out


def _describe(step: Any) -> str:
    if step.kind == "set_routes":
        return "switch routes: " + ", ".join(
            f"{svc} -> " + " ".join(f"{f}={w}%" for f, w in fleets.items())
            for svc, fleets in step.weights.items()
        )
    if step.kind == "retain":
        return f"retain {', '.join(step.fleets)} warm for {step.seconds:g}s"
    if step.kind == "analyze":
        t = step.thresholds
        checks = [
            f"{name} {value:g}"
            for name, value in (
                ("max_error_rate", t.max_error_rate),
                ("max_p99_ms", t.max_p99_ms),
                ("max_error_rate_vs_stable", t.max_error_rate_vs_stable),
                ("max_p99_ratio_vs_stable", t.max_p99_ratio_vs_stable),
            )
            if value is not None
        ]
        return (
            f"analyze canary at {step.weight}% over {format_duration(t.window)} "
            f"(min {t.min_requests} requests; {', '.join(checks) or 'no thresholds'})"
        )
    if step.kind in ("grow", "shrink"):
        sizes = ", ".join(f"{f} to {n}" for f, n in step.counts.items())
        return f"{step.kind} {sizes}"
    if step.kind == "pause":
        if step.seconds is None:
            return f"pause at {step.weight}% until `kiln advance`"
        return f"pause at {step.weight}% for {format_duration(step.seconds)}"
    return f"{step.kind.replace('_', ' ')} {', '.join(step.fleets)}"
