"""Gates from other terminals, and the waits that honour them.

`kiln advance`, `kiln pause` and `kiln abort` never take the deploy lock (the
deploying kiln holds it): each appends a ``deploy.gate`` audit event naming
the deployment. The deploying kiln polls for them between steps and while it
pauses or analyses; the audit log records who pulled which gate, and why.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from kiln.engine.context import Context
from kiln.errors import KilnError, NotFound
from kiln.model import Deployment, StepStatus
from kiln.spec.durations import format_duration
from kiln.strategies.gates import Gate, GateRequest, Gates, fold

GATE_EVENT = "deploy.gate"
POLL = 0.25  # seconds between looks at the gates while waiting
# Strategies with steps to hold at; any deployment can be aborted.
STEPPED = ("canary", "rolling")


def request_gate(ctx: Context, env: str, gate: Gate, reason: str = "") -> Deployment:
    """Ask the running deployment of ``env`` to advance, pause or abort."""
    dep = ctx.store.running_deployment(ctx.app, env)
    if dep is None:
        raise NotFound(f"no deployment is running in {ctx.app}/{env}")
    if gate is not Gate.ABORT and dep.strategy not in STEPPED:
        raise KilnError(
            f"deployment {dep.id} is {dep.strategy}: it has no steps to {gate}; "
            "`kiln abort` rolls it back"
        )
    ctx.event(GATE_EVENT, env, reason, deployment=dep.id, gate=gate.value)
    return dep


def gate_requests(ctx: Context, dep: Deployment) -> list[GateRequest]:
    return [
        GateRequest(Gate(e.detail["gate"]), e.actor, e.at, e.reason)
        for e in ctx.store.events(ctx.app, dep.env, action=GATE_EVENT)
        if e.detail.get("deployment") == dep.id
    ]


def gates(ctx: Context, dep: Deployment, since: datetime) -> Gates:
    return fold(gate_requests(ctx, dep), since)


@dataclass(frozen=True)
class Deadline:
    """``progress_deadline``: the time a deployment may go without a step completing.

    As Kubernetes' progressDeadlineSeconds: it counts from the last step that
    ended well (or the start), so a long rolling deployment that keeps making
    progress is never cut off, while a stuck one (an analysis that never
    decides, a forgotten manual pause) always ends.
    """

    at: datetime
    seconds: float

    @classmethod
    def of(cls, dep: Deployment, seconds: float) -> Deadline:
        ok = [r.finished_at for r in dep.steps if r.status is StepStatus.OK and r.finished_at]
        assert dep.started_at is not None
        last = max(ok, default=dep.started_at)
        return cls(last + timedelta(seconds=seconds), seconds)


def check_going(ctx: Context, g: Gates, deadline: Deadline) -> None:
    """Raise if the deployment must stop: aborted, out of time, or no longer ours."""
    if g.aborted is not None:
        raise KilnError(f"aborted: {g.aborted.said()}")
    if datetime.now(UTC) >= deadline.at:
        raise KilnError(f"progress deadline ({format_duration(deadline.seconds)}) passed")
    if ctx.lease_lost.is_set():
        raise KilnError("lost the deploy lock (lease not renewed)")


def hold_while_paused(ctx: Context, dep: Deployment, deadline: Deadline) -> None:
    """Before a forward step: wait out a `kiln pause` (abort and deadline still apply)."""
    announced = False
    while True:
        g = gates(ctx, dep, datetime.now(UTC))
        check_going(ctx, g, deadline)
        if g.paused is None:
            return
        if not announced:
            ctx.reporter.info(f"paused: {g.paused.said()}; `kiln advance` goes on")
            announced = True
        time.sleep(POLL)
