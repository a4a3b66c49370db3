"""Gates from other terminals, and the waits that honour them.

`kiln advance`, `kiln pause` and `kiln abort` never take the deploy lock (the
deploying kiln holds it): each appends a ``deploy.gate`` audit event naming
the deployment. The deploying kiln polls for them between steps and while it
pauses or analyses; the audit log records who pulled which gate, and why.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from kiln.engine.context import Context
from kiln.errors import KilnError, NotFound
from kiln.model import Deployment
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


def deadline_of(dep: Deployment, seconds: float) -> datetime:
    assert dep.started_at is not None
    return dep.started_at + timedelta(seconds=seconds)


def check_going(ctx: Context, dep: Deployment, g: Gates, deadline: datetime) -> None:
    """Raise if the deployment must stop: aborted, or past its progress deadline."""
    if g.aborted is not None:
        raise KilnError(f"aborted: {g.aborted.said()}")
    if datetime.now(UTC) >= deadline:
        assert dep.started_at is not None
        took = format_duration((deadline - dep.started_at).total_seconds())
        raise KilnError(f"progress deadline ({took}) passed")


def hold_while_paused(ctx: Context, dep: Deployment, deadline: datetime) -> None:
    """Before a forward step: wait out a `kiln pause` (abort and deadline still apply)."""
    announced = False
    while True:
        g = gates(ctx, dep, datetime.now(UTC))
        check_going(ctx, dep, g, deadline)
        if g.paused is None:
            return
        if not announced:
            ctx.reporter.info(f"paused: {g.paused.said()}; `kiln advance` goes on")
            announced = True
        time.sleep(POLL)
