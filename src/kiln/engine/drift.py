"""Drift, observed and enforced: what runs or routes otherwise than kiln put it.

``detect`` gathers what the provider and router report, compares it purely
(``kiln.drift``), stores the findings with their evidence and logs each new
one. ``reconcile`` also acts on them when the environment says
``on_drift: enforce``: unknown instances are destroyed, missing ones
replaced, drifted or tampered ones replaced with capacity kept (the
replacement is healthy before the old instance leaves the route), and the
router's routes restored to what kiln last applied.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from kiln.drift import (
    Expected,
    compare,
    compare_listeners,
    compare_routes,
    listener_of,
    stray_backends,
)
from kiln.engine.context import Context
from kiln.engine.deploy import tidy
from kiln.engine.drift_evidence import with_evidence
from kiln.engine.executor import (
    apply_routes,
    destroy_instances,
    drain,
    launch_up_to,
    quarantined,
    service_of,
    wait_until_healthy,
)
from kiln.engine.lock import EnvLock
from kiln.engine.releases import bake
from kiln.engine.routes import route_name
from kiln.errors import KilnError
from kiln.model import FleetState, Instance, Route, Runtime, Secret, ServiceRelease, to_json
from kiln.model.drift import DriftKind, DriftRecord, Finding
from kiln.providers import host
from kiln.providers.base import FILE_CHANGES, INTRUSIONS, RUNTIME


@dataclass(frozen=True)
class Pass:
    """One look at an environment: what is open now, and what this pass did."""

    open: list[DriftRecord]
    new: list[DriftRecord]
    actions: list[str]
    skipped: str = ""  # why nothing was compared (a deployment is moving fleets)


def detect(ctx: Context, env: str) -> Pass:
    """Compare, record and log; changes nothing that runs."""
    running = ctx.store.running_deployment(ctx.app, env)
    if running is not None:
        return Pass(
            ctx.store.findings(ctx.app, env, open_only=True),
            [],
            [],
            f"deployment {running.id} is running: drift is judged between deployments",
        )
    before = {r.id for r in ctx.store.findings(ctx.app, env, open_only=True)}
    records = ctx.store.record_findings(ctx.app, _findings(ctx, env))
    seen = {r.id for r in records}
    for gone in before - seen:
        ctx.store.resolve_finding(gone, "no longer seen")
    new = [r for r in records if r.id not in before]
    new = [_keep_evidence(ctx, env, r) for r in new]
    for record in new:
        f = record.finding
        ctx.notify(env, {"event": "drift.found", "finding": to_json(record)})
        ctx.event(
            "drift.found",
            env,
            f.summary,
            finding=record.id,
            kind=f.kind.value,
            subject=f.subject,
            enforce_by=f.action.value,
            changes=[f"{c.kind} {c.path}" for c in f.changes],
        )
    return Pass(records, new, [])


def _keep_evidence(ctx: Context, env: str, record: DriftRecord) -> DriftRecord:
    """Read the changed files and writable areas of a newly found drifted instance while
    it still runs."""
    f = record.finding
    if f.kind not in (DriftKind.IN_INSTANCE_CHANGE, DriftKind.CONFIG_DRIFT):
        return record
    instance = next((i for i in ctx.provider(env).observe(env) if i.id == f.subject), None)
    if instance is None:
        return record
    kept = with_evidence(ctx, f, instance)
    ctx.store.update_finding(record.id, kept)
    return replace(record, finding=kept)


def _findings(ctx: Context, env: str) -> list[Finding]:
    store, app = ctx.store, ctx.app
    fleets = store.fleets(app, env, states=[FleetState.ACTIVE, FleetState.RETAINED])
    specs = {f.id: service_of(ctx, f) for f in fleets}
    expected = [
        Expected(
            f.id,
            f.service,
            f.replicas,
            f.artifact,
            frozenset({f.config_digest, specs[f.id].config_digest()}),
            specs[f.id],
        )
        for f in fleets
    ]
    provider = ctx.provider(env)
    observed = provider.observe(env)
    live = [i for i in observed if i.alive and i.fleet in specs]
    caps = provider.capabilities
    changes = {i.id: provider.changes(i) for i in live} if FILE_CHANGES in caps else {}
    execs = {i.id: provider.intrusions(i) for i in live} if INTRUSIONS in caps else {}
    runtimes: dict[str, Runtime] = {}
    if RUNTIME in caps:
        key = store.secret_key()
        for i in live:
            runtime = provider.runtime(i)
            if runtime is not None:
                runtimes[i.id] = _sealed(runtime, specs[i.fleet], key)
    findings = compare(env, expected, observed, changes, execs, quarantined(ctx, env), runtimes)
    applied = store.applied_routes(app, env)
    routed = _router_routes(ctx, env)
    if applied is not None:
        findings += compare_routes(env, applied, routed)
    strays = stray_backends([*(applied or ()), *routed], observed)
    findings += compare_listeners(env, strays, host.listeners(strays))
    return findings


def _sealed(runtime: Runtime, spec: ServiceRelease, key: bytes) -> Runtime:
    """The runtime with the values of the release's secrets digested as the release
    pins them: comparable, and no secret value goes further than this function."""
    env = {k: Secret(k, v).digest(key) if k in spec.secrets else v for k, v in runtime.env.items()}
    return replace(runtime, env=env)


def _router_routes(ctx: Context, env: str) -> list[Route]:
    prefix = route_name(ctx.app, env, "")
    return [r for r in ctx.router().table().routes if r.name.startswith(prefix)]


def reconcile(ctx: Context, env: str, *, wait: bool = True) -> Pass:
    """Detect, then (``on_drift: enforce``) put the environment back as released.

    ``wait=False`` (the controller): if another kiln holds the environment's lock
    (a deploy), skip this pass rather than queue behind it.
    """
    drift = ctx.spec.environments[env].drift
    lock = EnvLock(ctx, env, "reconcile")
    if wait:
        lock.acquire()
    elif not lock.try_acquire():
        return Pass([], [], [], "another kiln holds the lock (a deploy?): skipped this pass")
    try:
        return _reconcile_locked(ctx, env, drift.on_drift)
    finally:
        lock.release()


def _reconcile_locked(ctx: Context, env: str, on_drift: str) -> Pass:
    tidy(ctx, env)
    found = detect(ctx, env)
    if found.skipped or on_drift == "report":
        return found
    actions = _end_quarantines(ctx, env)
    if found.open:
        actions += _enforce(ctx, env, found.open)
    return Pass(ctx.store.findings(ctx.app, env, open_only=True), found.new, actions)


def _end_quarantines(ctx: Context, env: str) -> list[str]:
    """Destroy the quarantined instances whose inspection window is over."""
    now = datetime.now(UTC)
    due = [
        r
        for r in ctx.store.quarantined(ctx.app, env)
        if r.quarantined_until is not None and r.quarantined_until <= now
    ]
    if not due:
        return []
    observed = {i.id: i for i in ctx.provider(env).observe(env)}
    destroy_instances(
        ctx, env, [observed[r.finding.subject] for r in due if r.finding.subject in observed]
    )
    actions = []
    for r in due:
        resolution = f"quarantine over: {r.finding.subject} destroyed"
        ctx.store.quarantine(r.id, None, resolution)
        ctx.event("drift.enforced", env, r.finding.summary, finding=r.id, resolution=resolution)
        actions.append(f"finding {r.id} ({r.finding.kind.value} {r.finding.subject}): {resolution}")
    return actions


def _enforce(ctx: Context, env: str, records: list[DriftRecord]) -> list[str]:
    window = ctx.spec.environments[env].drift.quarantine
    provider = ctx.provider(env)
    observed = {i.id: i for i in provider.observe(env)}
    done: dict[int, str] = {}
    # Unknown instances: nothing kiln released runs there. Out they go, and so do
    # strangers listening on a route's backend.
    unknown = [r for r in records if r.finding.kind is DriftKind.UNKNOWN_INSTANCE]
    doomed = [observed[r.finding.subject] for r in unknown if r.finding.subject in observed]
    destroy_instances(ctx, env, doomed)
    for r in unknown:
        stranger = listener_of(r.finding)
        if stranger is not None:
            host.stop(stranger)
        done[r.id] = "destroyed" if stranger is None else f"stopped process {stranger.pid}"
    # Drifted or tampered instances, and fleets short of instances: new ones first.
    bad: dict[str, list[tuple[DriftRecord, Instance]]] = defaultdict(list)
    short: dict[str, list[DriftRecord]] = defaultdict(list)
    for r in records:
        f = r.finding
        if f.kind in (DriftKind.CONFIG_DRIFT, DriftKind.IN_INSTANCE_CHANGE) and f.fleet:
            inst = observed.get(f.subject)
            if inst is not None and all(inst is not b for _, b in bad[f.fleet]):
                bad[f.fleet].append((r, inst))
            elif inst is not None:
                done[r.id] = "replaced with the same instance's other finding"
        elif f.kind is DriftKind.MISSING_INSTANCE and f.fleet:
            short[f.fleet].append(r)
    fleets = sorted(set(bad) | set(short))
    weights, roles = _applied_weights(ctx, env)
    # Quarantine: a tampered instance leaves the route at once, before its replacement
    # is up (a moment with less capacity beats serving from it one more second).
    held = {
        r.id: inst
        for fl in fleets
        for r, inst in bad[fl]
        if window > 0 and r.finding.kind is DriftKind.IN_INSTANCE_CHANGE
    }
    if held:
        apply_routes(ctx, env, weights, roles, frozenset(i.id for i in held.values()))
    for fleet_id in fleets:
        _restore_artifact(ctx, env, fleet_id)
    if fleets:
        counts = {fl: ctx.store.get_fleet(fl).replicas + len(bad[fl]) for fl in fleets}
        started = launch_up_to(ctx, env, counts)
        wait_until_healthy(ctx, env, counts)
        for fl in fleets:
            for r in short[fl]:
                done[r.id] = f"replaced: {started}"
    leaving = [inst for fl in fleets for _, inst in bad[fl]]
    routes = [r for r in records if r.finding.kind is DriftKind.ROUTE_DRIFT]
    if leaving or routes or fleets:
        # Kiln's last applied weights, with today's instances as backends (the
        # tampered ones no longer among them): this also restores drifted routes.
        apply_routes(ctx, env, weights, roles, frozenset(i.id for i in leaving))
        for r in routes:
            done[r.id] = "routes restored"
    if held:
        until = datetime.now(UTC) + timedelta(seconds=window)
        for rid in held:
            done[rid] = (
                f"quarantined until {until:%H:%M:%S} UTC (out of the route, kept for "
                f"inspection); replaced"
            )
            ctx.store.quarantine(rid, until, done[rid])
        leaving = [i for i in leaving if i not in held.values()]
    if leaving:
        drain(ctx, env, tuple(sorted({i.fleet for i in leaving})), leaving)
        destroy_instances(ctx, env, leaving)
        for fl in fleets:
            for r, inst in bad[fl]:
                done.setdefault(r.id, f"replaced: {inst.id} destroyed once a new one was healthy")
    actions = []
    for r in records:
        resolution = done.get(r.id)
        if resolution is None:
            continue
        if r.id not in held:
            ctx.store.resolve_finding(r.id, resolution)
        ctx.notify(
            env,
            {
                "event": "drift.enforced",
                "finding": r.id,
                "kind": r.finding.kind.value,
                "subject": r.finding.subject,
                "resolution": resolution,
            },
        )
        ctx.event(
            "drift.enforced",
            env,
            r.finding.summary,
            finding=r.id,
            kind=r.finding.kind.value,
            resolution=resolution,
        )
        actions.append(f"finding {r.id} ({r.finding.kind.value} {r.finding.subject}): {resolution}")
    return actions


def _restore_artifact(ctx: Context, env: str, fleet_id: str) -> None:
    """Make sure replacements start from the artifact as baked, baking it again if its
    files were changed (a local artifact edited in place)."""
    fleet = ctx.store.get_fleet(fleet_id)
    provider = ctx.provider(env)
    if provider.has_artifact(fleet.artifact):
        return
    if fleet.service not in ctx.spec.services:
        raise KilnError(f"artifact of {fleet_id} was changed and its service left the spec")
    rebaked = bake(ctx, env, fleet.service)[fleet.service]
    if rebaked != fleet.artifact:
        raise KilnError(
            f"artifact {fleet.artifact} of {fleet_id} was changed, and the build directory "
            f"now bakes {rebaked}: deploy a new release to replace its instances"
        )
    ctx.reporter.info(f"artifact of {fleet_id} was changed; baked it again from the spec")


def _applied_weights(ctx: Context, env: str) -> tuple[dict[str, dict[str, int]], dict[str, str]]:
    """Weights and roles as kiln last applied them (for a state directory older than
    that record: as the router has them now)."""
    routes = ctx.store.applied_routes(ctx.app, env)
    if routes is None:
        routes = tuple(_router_routes(ctx, env))
    prefix = route_name(ctx.app, env, "")
    weights = {r.name.removeprefix(prefix): {f.fleet: f.weight for f in r.fleets} for r in routes}
    roles = {f.fleet: f.role for r in routes for f in r.fleets if f.role}
    return weights, roles
