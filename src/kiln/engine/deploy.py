"""Deployments end to end: create the release, plan, then run the strategy durably.

The loop is: ask the strategy for the next step, record it as started, run
it, record how it ended. A killed ``kiln`` leaves a running deployment whose
log says exactly where it stopped; ``resume_interrupted`` picks it up there.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

from kiln.engine.context import Context
from kiln.engine.evidence import check_requirements
from kiln.engine.executor import execute, retire_fleets
from kiln.engine.gates import POLL, Deadline, hold_while_paused, request_gate
from kiln.engine.lock import EnvLock
from kiln.engine.releases import build_release, rollback_release, same_content
from kiln.errors import DeploymentFailed, KilnError, NotFound
from kiln.model import (
    Deployment,
    DeploymentStatus,
    Fleet,
    FleetState,
    Release,
    Step,
    StepStatus,
    StrategyConfig,
)
from kiln.planner import ReleasePlan, plan_release
from kiln.strategies import Finish, Plan, decide
from kiln.strategies.common import first_failure
from kiln.strategies.gates import Gate


@dataclass(frozen=True)
class Outcome:
    release: Release | None  # None when nothing changed
    deployment: Deployment | None
    message: str


def deploy(ctx: Context, env: str, *, reason: str = "") -> Outcome:
    check_requirements(ctx, env, None)  # an environment that takes promotions only
    with EnvLock(ctx, env, "deploy"):
        tidy(ctx, env)
        release = build_release(ctx, env, reason=reason or "deploy")
        return deploy_release(ctx, env, release)


# How long `kiln rollback` waits for an aborted deployment's failure path.
ABORT_WAIT = 300.0


def rollback(ctx: Context, env: str, *, to: int | None = None, reason: str = "") -> Outcome:
    """Back to the previous release (or ``to``); during a deployment, abort it instead.

    A running deployment (a canary at 10 %, say) still has the previous release
    serving: aborting it is the rollback, and takes no steps. Only if it had
    already succeeded does the rollback go on to the release before it.
    """
    running = ctx.store.running_deployment(ctx.app, env)
    if running is not None and to is None:
        done = _abort_and_wait(ctx, env, running, reason)
        if done.status is not DeploymentStatus.SUCCEEDED:
            serving = ctx.store.current_release(ctx.app, env)
            return Outcome(
                None,
                done,
                f"deployment {done.id} {done.status.value}; "
                f"release {serving} serves {ctx.app}/{env}",
            )
    with EnvLock(ctx, env, "rollback"):
        tidy(ctx, env)
        target = ctx.store.get_release(ctx.app, env, to if to is not None else _previous(ctx, env))
        # Immediate, whatever the release's own strategy: no canary steps again.
        return deploy_release(
            ctx, env, rollback_release(ctx, target), reason=reason, strategy="blue-green"
        )


# How long `kiln rollback` waits for an aborted deployment's failure path.
ABORT_WAIT = 300.0


def _abort_and_wait(ctx: Context, env: str, dep: Deployment, reason: str) -> Deployment:
    """Abort ``dep`` and wait until it ended; drive it here if its kiln is gone."""
    try:
        request_gate(ctx, env, Gate.ABORT, reason or "kiln rollback during the deployment")
        ctx.reporter.info(f"deployment {dep.id} is running: aborting it")
    except NotFound:
        pass  # it ended in the meantime
    deadline = time.monotonic() + ABORT_WAIT
    while (done := ctx.store.get_deployment(dep.id)).status is DeploymentStatus.RUNNING:
        lock = EnvLock(ctx, env, "rollback")
        if lock.try_acquire():  # nobody drives it: run its failure path here
            try:
                resume_interrupted(ctx, env)
            except DeploymentFailed as failed:
                ctx.reporter.info(str(failed))
            finally:
                lock.release()
            continue
        if time.monotonic() > deadline:
            raise KilnError(
                f"asked deployment {dep.id} to abort; it was still running after "
                f"{ABORT_WAIT:g}s (`kiln status` shows where it is)"
            )
        time.sleep(POLL)
    return done


def resume(ctx: Context, env: str) -> Deployment | None:
    """Finish (or roll back) a deployment that a killed kiln left running."""
    with EnvLock(ctx, env, "resume"):
        dep = resume_interrupted(ctx, env)
        tidy(ctx, env)
        return dep


def _previous(ctx: Context, env: str) -> int:
    """The release that served before the current one."""
    current = ctx.store.current_release(ctx.app, env)
    for dep in ctx.store.list_deployments(ctx.app, env, limit=1000):
        if dep.status is DeploymentStatus.SUCCEEDED and dep.release == current:
            if dep.from_release is None:
                break
            return dep.from_release
    raise NotFound(
        f"no release before {current} to roll back to in {ctx.app}/{env}"
        if current
        else f"nothing deployed in {ctx.app}/{env} yet"
    )


def compute_plan(ctx: Context, env: str, release: Release) -> tuple[ReleasePlan, Release | None]:
    """What deploying ``release`` would do, against what serves now (read-only)."""
    store, app = ctx.store, ctx.app
    current_no = store.current_release(app, env)
    current = store.get_release(app, env, current_no) if current_no else None
    fleets = store.fleets(app, env, states=[FleetState.ACTIVE, FleetState.RETAINED])
    alive = Counter(i.fleet for i in ctx.provider(env).observe(env) if i.alive)
    number = (store.latest_release(app, env) or release).number + 1
    plan = plan_release(
        new_fleet_ids={s: Fleet.make_id(app, env, s, number) for s in release.services},
        new=release.services,
        current=current.services if current else {},
        active={f.service: f for f in fleets if f.state is FleetState.ACTIVE},
        warm=fleets,
        alive=alive,
    )
    return plan, current


def deploy_release(
    ctx: Context, env: str, release: Release, *, reason: str = "", strategy: str | None = None
) -> Outcome:
    store, app = ctx.store, ctx.app
    plan, current = compute_plan(ctx, env, release)
    if current is not None and same_content(current, release) and not plan.changed:
        return Outcome(None, None, f"release {current.number} already serves this; nothing to do")
    stored = store.create_release(release)
    ctx.event(
        "release.created",
        env,
        release.reason,
        release=stored.number,
        artifacts=stored.artifacts,
        config_digest=stored.config_digest,
        commit=stored.commit,
        dirty=stored.dirty,
    )
    if stored.promotion is not None:
        ctx.event(
            "release.promoted",
            env,
            stored.reason,
            release=stored.number,
            source_env=stored.promotion.env,
            source_release=stored.promotion.release,
            soak_seconds=stored.promotion.soak_seconds,
        )
    now = datetime.now(UTC)
    for change in plan.changes:
        if change.action == "launch" and change.target is not None:
            svc = stored.services[change.service]
            store.add_fleet(
                Fleet(
                    id=change.target,
                    app=app,
                    env=env,
                    service=change.service,
                    release=stored.number,
                    artifact=svc.artifact,
                    config_digest=svc.config_digest(),
                    replicas=svc.replicas,
                    state=FleetState.LAUNCHING,
                    created_at=now,
                )
            )
    dep = store.create_deployment(
        app,
        env,
        stored.number,
        current.number if current else None,
        strategy or rollout_config(stored).type,
        fleets=plan.new,
        previous=plan.previous,
    )
    ctx.event(
        "deploy.started",
        env,
        reason or release.reason,
        deployment=dep.id,
        release=stored.number,
        from_release=dep.from_release,
        strategy=dep.strategy,
        plan={c.service: c.action for c in plan.changes},
    )
    done = run(ctx, dep)
    return Outcome(stored, done, f"release {stored.number} serves {app}/{env}")


def rollout_config(release: Release) -> StrategyConfig:
    """How traffic moves in a deployment of ``release``: its routed services' strategy.

    The spec makes routed services agree on it; a release without routes takes
    its first service's.
    """
    services = sorted(release.services.values(), key=lambda s: (s.route is None, s.service))
    return services[0].strategy


def strategy_plan(
    release: Release,
    new: dict[str, str],
    previous: dict[str, str | None],
    reused: frozenset[str],
    previous_replicas: dict[str, int],
    strategy: str | None = None,
) -> Plan:
    """``previous_replicas``: fleet -> replica count of each fleet in ``previous``."""
    config = rollout_config(release)
    replicas = {fleet: release.services[s].replicas for s, fleet in new.items()}
    return Plan(
        strategy=strategy or config.type,
        config=config,
        replicas={**previous_replicas, **replicas},
        batch_limits={
            s: (svc.strategy.max_surge, svc.strategy.max_unavailable)
            for s, svc in release.services.items()
        },
        new=new,
        previous=previous,
        routed=frozenset(s for s, svc in release.services.items() if svc.route),
        retain_seconds={s: svc.strategy.retain_previous for s, svc in release.services.items()},
        reused=reused,
    )


def plan_of(ctx: Context, dep: Deployment) -> Plan:
    release = ctx.store.get_release(dep.app, dep.env, dep.release)
    # A fleet launched by this deployment carries its release number; any other was reused.
    reused = frozenset(
        f for f in dep.fleets.values() if ctx.store.get_fleet(f).release != dep.release
    )
    return strategy_plan(
        release,
        dep.fleets,
        dep.previous,
        reused,
        previous_replicas(ctx, dep.previous),
        dep.strategy,
    )


def previous_replicas(ctx: Context, previous: dict[str, str | None]) -> dict[str, int]:
    return {f: ctx.store.get_fleet(f).replicas for f in previous.values() if f is not None}


def run(ctx: Context, dep: Deployment) -> Deployment:
    """Drive ``dep`` to its end; raises DeploymentFailed if it ends failed.

    Ctrl-C or SIGTERM (KeyboardInterrupt, see the CLI) anywhere in the loop is
    recorded as a failed step, so the strategy's failure path runs at once (new
    fleets destroyed, old routes kept); then the interrupt is re-raised. A
    second interrupt stops on the spot and leaves the log to the next kiln.
    """
    plan = plan_of(ctx, dep)
    interrupted: KeyboardInterrupt | None = None
    while True:
        try:
            end = _advance(ctx, plan, dep.id)
        except KeyboardInterrupt as e:
            if interrupted is not None:
                raise
            interrupted = e
            _record_interrupt(ctx, plan, dep.id)
            continue
        if end is None:
            continue
        if interrupted is None:
            return _finish(ctx, end[0], end[1])
        try:
            _finish(ctx, end[0], end[1])
        except DeploymentFailed as failed:
            ctx.reporter.info(str(failed))
        raise interrupted


def _advance(ctx: Context, plan: Plan, deployment_id: int) -> tuple[Deployment, Finish] | None:
    """Run one step; return the deployment and how it ends once the strategy says so."""
    if ctx.lease_lost.is_set():
        raise KilnError(
            f"lost the deploy lock (lease not renewed); stopped deployment {deployment_id} "
            "so that only one kiln drives it; `kiln resume` continues it"
        )
    dep = ctx.store.get_deployment(deployment_id)
    decision = decide(plan, dep.steps)
    if isinstance(decision, Finish):
        return dep, decision
    last = dep.steps[-1] if dep.steps else None
    resumed = last if last is not None and last.status is StepStatus.STARTED else None
    stop = _forward_stop(ctx, plan, dep, decision)
    if stop is not None:  # aborted or out of time: the strategy's failure path runs next
        failed = (
            ctx.store.finish_step(dep.id, resumed.seq, StepStatus.FAILED, stop)
            if resumed is not None
            else ctx.store.record_failed_step(dep.id, decision, stop)
        )
        ctx.reporter.step_finished(failed)
        return None
    if resumed is not None:
        record = resumed  # interrupted: the step runs again under the same record
        ctx.reporter.info(f"resuming step {record.seq} ({record.step.kind})")
    else:
        record = ctx.store.begin_step(dep.id, decision)
    ctx.reporter.step_started(record)
    _failpoint(ctx, f"before:{decision.kind}")
    try:
        detail = execute(ctx, dep, decision, record)
        status = StepStatus.OK
    except KilnError as e:
        detail, status = str(e), StepStatus.FAILED
    _failpoint(ctx, f"after:{decision.kind}")
    ctx.reporter.step_finished(ctx.store.finish_step(dep.id, record.seq, status, detail))
    return None


# Steps after the switch: the new release already serves. Stopping them could only
# turn a good deployment into a muddle; clean-up failures end it succeeded anyway.
_AFTER_SWITCH = ("retain", "retire")


def _forward_stop(ctx: Context, plan: Plan, dep: Deployment, step: Step) -> str | None:
    """Before a step on the way forward (or resumed): why it must not run (None: go on).

    Waits out a `kiln pause` first. Steps of the failure path always run: they
    are what an abort or a passed deadline asks for.
    """
    if first_failure(dep.steps) is not None or step.kind in _AFTER_SWITCH:
        return None
    try:
        hold_while_paused(ctx, dep, Deadline.of(dep, plan.config.progress_deadline))
    except KilnError as e:
        return str(e)
    return None


INTERRUPTED = "interrupted (Ctrl-C or SIGTERM)"


def _record_interrupt(ctx: Context, plan: Plan, deployment_id: int) -> None:
    """Make the interrupt a failed step in the log, wherever in the loop it landed."""
    dep = ctx.store.get_deployment(deployment_id)
    last = dep.steps[-1] if dep.steps else None
    if last is not None and last.status is StepStatus.STARTED:
        ctx.reporter.step_finished(
            ctx.store.finish_step(dep.id, last.seq, StepStatus.FAILED, INTERRUPTED)
        )
        return
    decision = decide(plan, dep.steps)
    if not isinstance(decision, Finish):  # between two steps: fail the next one unrun
        ctx.store.record_failed_step(dep.id, decision, INTERRUPTED)


def _failpoint(ctx: Context, where: str) -> None:
    """``KILN_FAILPOINT=before:set_routes`` kills this process there, as ``kill -9`` would.

    Lets the crash-recovery tests stop a deploy at an exact point instead of racing it.
    """
    if ctx.environ.get("KILN_FAILPOINT") == where:
        os.kill(os.getpid(), signal.SIGKILL)


def _finish(ctx: Context, dep: Deployment, end: Finish) -> Deployment:
    store = ctx.store
    if end.status is DeploymentStatus.SUCCEEDED:
        # Current first: a crash between the two leaves the deployment running, and
        # resuming it finishes again; the other order could lose the new current.
        store.set_current_release(dep.app, dep.env, dep.release)
    done = store.finish_deployment(dep.id, end.status, end.reason)
    if end.status is DeploymentStatus.SUCCEEDED:
        ctx.event("deploy.succeeded", dep.env, end.reason, deployment=dep.id, release=dep.release)
        return done
    ctx.event("deploy.failed", dep.env, end.reason, deployment=dep.id, release=dep.release)
    serving = store.current_release(dep.app, dep.env)
    tail = f"; release {serving} still serves" if serving else ""
    raise DeploymentFailed(
        f"deployment {dep.id} (release {dep.release}) failed: {end.reason}{tail}"
    )


def resume_interrupted(ctx: Context, env: str) -> Deployment | None:
    """Call with the env lock held: the running deployment, if any, lost its driver."""
    dep = ctx.store.running_deployment(ctx.app, env)
    if dep is None:
        return None
    ctx.reporter.info(f"resuming interrupted deployment {dep.id} (release {dep.release})")
    ctx.event("deploy.resumed", env, "previous driver is gone", deployment=dep.id)
    return run(ctx, dep)


def tidy(ctx: Context, env: str) -> None:
    """What every command does first under the lock: finish what a dead kiln left.

    An interrupted deployment that now fails is reported, not raised: the user
    asked for something else, and the environment is consistent again.
    """
    try:
        resume_interrupted(ctx, env)
    except DeploymentFailed as e:
        ctx.reporter.info(str(e))
    retire_expired(ctx, env)
    retire_orphans(ctx, env)


def retire_expired(ctx: Context, env: str) -> list[str]:
    """Retire retained fleets whose warm window ended. Call with the env lock held."""
    now = datetime.now(UTC)
    due = tuple(
        f.id
        for f in ctx.store.fleets(ctx.app, env, states=[FleetState.RETAINED])
        if f.retain_until is not None and f.retain_until <= now
    )
    if due:
        retire_fleets(ctx, env, due)
        ctx.event("fleet.retired", env, "retain_previous window ended", fleets=list(due))
    return list(due)


def retire_orphans(ctx: Context, env: str) -> list[str]:
    """Retire launching or active fleets that nothing serves from or deploys to.

    They are left by a kiln killed between creating a release and its deployment,
    or by a clean-up step that failed. Call with the env lock held and no
    deployment running.
    """
    store, app = ctx.store, ctx.app
    if store.running_deployment(app, env) is not None:
        return []
    current = store.current_release(app, env)
    serving = next(
        (
            set(dep.fleets.values())
            for dep in store.list_deployments(app, env, limit=1000)
            if dep.release == current and dep.status is DeploymentStatus.SUCCEEDED
        ),
        None,
    )
    if serving is None:
        return []  # cannot tell what serves: touch nothing
    # Never retire what the router sends traffic to, whatever the store says.
    routed = {f.fleet for r in ctx.router().table().routes for f in r.fleets if f.weight > 0}
    live = store.fleets(app, env, states=[FleetState.LAUNCHING, FleetState.ACTIVE])
    orphans = tuple(f.id for f in live if f.id not in serving and f.id not in routed)
    if orphans:
        retire_fleets(ctx, env, orphans)
        ctx.event("fleet.retired", env, "no release serves from it", fleets=list(orphans))
    return list(orphans)


def housekeeping(ctx: Context, env: str) -> None:
    """What any kiln command does in passing when nobody else holds the lock."""
    lock = EnvLock(ctx, env, "housekeeping")
    if not lock.try_acquire():
        return
    try:
        tidy(ctx, env)
    finally:
        lock.release()
