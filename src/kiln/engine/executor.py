"""Executing one deployment step against the provider, router and store.

Every executor is idempotent: a deployment resumed after a crash runs the
interrupted step again, and it must converge rather than double anything.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from kiln.engine.analysis import analyze, pause
from kiln.engine.context import Context
from kiln.engine.health import Gate, wait_healthy
from kiln.engine.routes import apply_env_routes, env_routes
from kiln.engine.secrets import secrets_for_launch
from kiln.errors import KilnError
from kiln.model import Deployment, Fleet, FleetState, Instance, ServiceRelease, StepRecord
from kiln.model.steps import (
    Analyze,
    Destroy,
    Grow,
    Launch,
    Pause,
    Retain,
    Retire,
    SetRoutes,
    Shrink,
    Step,
    WaitHealthy,
)


def service_of(ctx: Context, fleet: Fleet) -> ServiceRelease:
    release = ctx.store.get_release(fleet.app, fleet.env, fleet.release)
    return release.services[fleet.service]


def execute(ctx: Context, dep: Deployment, step: Step, record: StepRecord) -> str:
    """Run ``step``; return a short detail for the step log, raise KilnError on failure."""
    env = dep.env
    if isinstance(step, Analyze):
        return analyze(ctx, dep, step)
    if isinstance(step, Pause):
        return pause(ctx, dep, step, record)
    if isinstance(step, Launch):
        return launch_up_to(ctx, env, _full_size(ctx, step.fleets))
    if isinstance(step, WaitHealthy):
        return wait_until_healthy(ctx, env, _full_size(ctx, step.fleets))
    if isinstance(step, Grow):
        started = launch_up_to(ctx, env, step.counts)
        return f"{started}; {wait_until_healthy(ctx, env, step.counts)}"
    if isinstance(step, Shrink):
        return _shrink(ctx, env, step)
    if isinstance(step, SetRoutes):
        return apply_routes(ctx, env, step.weights, step.roles)
    if isinstance(step, Retain):
        until = datetime.now(UTC) + timedelta(seconds=step.seconds)
        for fleet in step.fleets:
            ctx.store.set_fleet_state(fleet, FleetState.RETAINED, retain_until=until)
        return f"warm until {until:%H:%M:%S} UTC"
    if isinstance(step, Retire):
        return retire_fleets(ctx, env, step.fleets)
    if isinstance(step, Destroy):
        # A canary or a rolling batch served until the routes were restored: drain it.
        drain(ctx, env, step.fleets)
        return destroy_fleets(ctx, env, step.fleets, FleetState.FAILED)
    raise KilnError(f"unknown step {step!r}")


def _full_size(ctx: Context, fleets: tuple[str, ...]) -> dict[str, int]:
    return {f: ctx.store.get_fleet(f).replicas for f in fleets}


def launch_up_to(ctx: Context, env: str, counts: dict[str, int]) -> str:
    """Bring each fleet up to its count of live instances (dead ones are cleared)."""
    provider = ctx.provider(env)
    kept = quarantined(ctx, env)  # alive, but serving no more: not counted
    observed = [i for i in provider.observe(env) if i.id not in kept]
    started = 0
    for fleet_id, count in counts.items():
        fleet = ctx.store.get_fleet(fleet_id)
        mine = [i for i in observed if i.fleet == fleet_id]
        for dead in (i for i in mine if not i.alive):
            provider.destroy(dead, grace=0)
        missing = count - sum(1 for i in mine if i.alive)
        if missing <= 0:
            continue
        service = service_of(ctx, fleet)
        secrets = secrets_for_launch(
            service.secrets, ctx.environ, fleet.release, ctx.store.secret_key()
        )
        ctx.reporter.progress(f"launching {missing} instance(s) of {fleet_id}")
        provider.launch(fleet, service, secrets, missing)
        started += missing
    return f"{started} instance(s) started"


def quarantined(ctx: Context, env: str) -> frozenset[str]:
    """Instances drift enforcement keeps out of the route for inspection."""
    return frozenset(r.finding.subject for r in ctx.store.quarantined(ctx.app, env))


def wait_until_healthy(ctx: Context, env: str, counts: dict[str, int]) -> str:
    provider = ctx.provider(env)
    kept = quarantined(ctx, env)
    gates = []
    for fleet_id, count in counts.items():
        fleet = ctx.store.get_fleet(fleet_id)
        check = service_of(ctx, fleet).health
        # A warm fleet already passed its gate once: one good answer each is enough.
        warm = fleet.state in (FleetState.RETAINED, FleetState.ACTIVE)
        gates.append(Gate(fleet_id, count, check, 1 if warm else check.healthy_after))

    def last_logs(inst: Instance) -> str:
        lines = list(provider.logs(env, inst.service, tail=5))
        mine = [ln for ln in lines if ln.startswith(inst.id)][-3:]
        return (": " + " | ".join(mine)) if mine else ""

    wait_healthy(
        gates,
        lambda: [i for i in provider.observe(env) if i.id not in kept],
        on_progress=ctx.reporter.progress,
        last_logs=last_logs,
    )
    return "all instances healthy"


def apply_routes(
    ctx: Context,
    env: str,
    weights: dict[str, dict[str, int]],
    roles: dict[str, str],
    leaving: frozenset[str] = frozenset(),
) -> str:
    """Apply ``weights``; instances in ``leaving`` (ids) are no backend any more."""
    listen: dict[str, str] = {}
    headers: dict[str, str] = {}
    for fleets in weights.values():
        for fleet_id in fleets:
            fleet = ctx.store.get_fleet(fleet_id)
            service = service_of(ctx, fleet)
            if service.route is not None:
                listen[fleet.service] = service.route
                # The newest release's header name wins: it is the one being rolled out.
                if fleet.service not in headers or fleet_id in roles:
                    headers[fleet.service] = service.strategy.header
    out = leaving | quarantined(ctx, env)
    instances = [i for i in ctx.provider(env).observe(env) if i.id not in out]
    routes = env_routes(ctx, env, weights, listen, instances, roles=roles, headers=headers)
    table = apply_env_routes(ctx, env, routes)
    shares = [
        f"{fleet} {weight}%"
        for fleets in weights.values()
        if len(fleets) > 1
        for fleet, weight in sorted(fleets.items(), key=lambda kv: -kv[1])
    ]
    for fleets in weights.values():
        for fleet_id, weight in fleets.items():
            if weight > 0:
                ctx.store.set_fleet_state(fleet_id, FleetState.ACTIVE)
    return f"route table version {table.version}" + (f": {', '.join(shares)}" if shares else "")


def _shrink(ctx: Context, env: str, step: Shrink) -> str:
    """Out of the route, drained, destroyed: the instances above each fleet's count."""
    provider = ctx.provider(env)
    observed = provider.observe(env)
    leaving = []
    for fleet_id, keep in step.counts.items():
        alive = [i for i in observed if i.fleet == fleet_id and i.alive]
        leaving += alive[keep:]
    routes = apply_routes(ctx, env, step.weights, {}, frozenset(i.id for i in leaving))
    if leaving:
        drain(ctx, env, tuple(step.counts), leaving)
        destroy_instances(ctx, env, leaving)
    return f"{len(leaving)} instance(s) out; {routes}"


def retire_fleets(ctx: Context, env: str, fleets: tuple[str, ...]) -> str:
    """Drain (the fleets are already out of the route), then destroy."""
    drain(ctx, env, fleets)
    return destroy_fleets(ctx, env, fleets, FleetState.RETIRED)


def drain(
    ctx: Context, env: str, fleets: tuple[str, ...], instances: list[Instance] | None = None
) -> None:
    """Wait until the router has no request in flight to ``instances`` (default: every
    instance of ``fleets``), up to the longest drain_timeout of the fleets."""
    if instances is None:
        instances = [i for i in ctx.provider(env).observe(env) if i.fleet in fleets]
    if not instances:
        return
    timeout = max(service_of(ctx, ctx.store.get_fleet(f)).strategy.drain_timeout for f in fleets)
    ctx.reporter.progress(f"draining {', '.join(fleets)}")
    if not ctx.router().wait_drained([i.address for i in instances], timeout):
        ctx.reporter.info(f"drain timeout ({timeout:g}s) reached; stopping anyway")


def destroy_fleets(ctx: Context, env: str, fleets: tuple[str, ...], state: FleetState) -> str:
    provider = ctx.provider(env)
    doomed = [i for i in provider.observe(env) if i.fleet in fleets]
    destroy_instances(ctx, env, doomed)
    for fleet in fleets:
        ctx.store.set_fleet_state(fleet, state)
    return f"{len(doomed)} instance(s) stopped"


def destroy_instances(ctx: Context, env: str, instances: list[Instance]) -> None:
    """Destroy in parallel: each destroy may wait out a grace period for its instance."""
    provider = ctx.provider(env)
    with ThreadPoolExecutor(max_workers=16, thread_name_prefix="kiln-destroy") as pool:
        list(pool.map(provider.destroy, instances))
