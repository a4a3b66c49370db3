"""Rolling: replace a fleet in batches, new instances in, old instances out.

With N replicas, ``max_surge`` s and ``max_unavailable`` u (counts, resolved
from the spec), every batch keeps at most N + s instances and at least N - u
healthy ones serving:

    grow the new fleet (launch, wait until healthy), within N + s in all
    set weights in proportion to each fleet's instances
    shrink the old fleet to what N - u still allows (out of the route,
    drained, destroyed)
    ... until the new fleet has N and the old one none

No instance is ever modified: a batch is new instances in, old ones out. On a
failure the old fleet is grown back to its size (new instances of the old
release), then the common failure path puts its routes back and destroys the
new fleet.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import zip_longest

from kiln.model import DeploymentStatus, StepRecord, StepStatus
from kiln.model.steps import Grow, Retire, SetRoutes, Shrink, Step
from kiln.strategies.base import Finish, Plan
from kiln.strategies.common import fail, final_weights, first_failure, follow, resumed


def decide(plan: Plan, log: Sequence[StepRecord]) -> Step | Finish:
    again = resumed(log)
    if again is not None:
        return again
    failed = first_failure(log)
    if failed is None:
        return follow(forward(plan), log)
    shrunk = any(r.step.kind == "shrink" and r.status is StepStatus.OK for r in log)
    if failed.step.kind not in ("retain", "retire") and (shrunk or failed.step.kind == "shrink"):
        after = list(log[log.index(failed) + 1 :])
        regrown = [r for r in after if r.step.kind == "grow"]
        if not regrown:
            return Grow(counts=_old_sizes(plan))
        if regrown[-1].status is StepStatus.FAILED:
            return Finish(
                DeploymentStatus.FAILED,
                f"{failed.step.kind} failed: {failed.detail}; growing the previous fleet "
                f"back failed too: {regrown[-1].detail}; both fleets kept serving",
            )
    return fail(plan, log, failed)


def _moving(plan: Plan) -> dict[str, tuple[str, str | None]]:
    """service -> (new fleet, fleet it replaces or None), for services that change."""
    return {
        service: (new, plan.previous.get(service))
        for service, new in sorted(plan.new.items())
        if new != plan.previous.get(service)
    }


def _old_sizes(plan: Plan) -> dict[str, int]:
    return {old: plan.replicas.get(old, 0) for _, old in _moving(plan).values() if old is not None}


def batches(replicas: int, old: int, surge: int, unavailable: int) -> list[tuple[int, int]]:
    """(new instances, old instances) after each batch, from (0, old) to (replicas, 0).

    Growth is capped at ``replicas + surge`` instances in all; the old fleet shrinks
    as far as ``replicas - unavailable`` healthy instances still allow.
    """
    if surge + unavailable < 1:
        raise ValueError("max_surge + max_unavailable must be at least 1")
    new, out = 0, []
    while new < replicas or old > 0:
        new = max(new, min(replicas, replicas + surge - old))
        old = min(old, max(0, replicas - unavailable - new))
        if new == replicas:
            old = 0  # the new fleet is whole: nothing old is needed any more
        out.append((new, old))
    return out


def forward(plan: Plan) -> list[Step]:
    moving = _moving(plan)
    default = (plan.config.max_surge, plan.config.max_unavailable)
    old_now = {s: plan.replicas.get(old, 0) if old else 0 for s, (_, old) in moving.items()}
    new_now = dict.fromkeys(moving, 0)
    old_next = dict(old_now)
    per_service = {
        service: batches(
            plan.replicas.get(new, 1),
            old_now[service],
            *plan.batch_limits.get(service, default),
        )
        for service, (new, _) in moving.items()
    }
    steps: list[Step] = []
    for batch in zip_longest(*per_service.values()):
        for service, counts in zip(per_service, batch, strict=True):
            if counts is not None:
                new_now[service], old_next[service] = counts
        steps.append(Grow(counts={moving[s][0]: new_now[s] for s in moving}))
        steps.append(SetRoutes(weights=_weights(plan, moving, new_now, old_now)))
        shrink = {
            old: old_next[s]
            for s, (_, old) in moving.items()
            if old is not None and old_next[s] < old_now[s]
        }
        if shrink:
            old_now.update(old_next)
            steps.append(Shrink(counts=shrink, weights=_weights(plan, moving, new_now, old_now)))
    steps.append(SetRoutes(weights=final_weights(plan)))
    # Replaced fleets are empty by now (this marks them retired); a removed service's
    # fleet is drained and destroyed here. Rolling keeps no warm fleet to roll back to.
    old = sorted(
        {o for _, o in moving.values() if o is not None}
        | {o for s, o in plan.previous.items() if o is not None and s not in plan.new}
    )
    if old:
        steps.append(Retire(fleets=tuple(old)))
    return steps


def _weights(
    plan: Plan,
    moving: dict[str, tuple[str, str | None]],
    new_now: dict[str, int],
    old_now: dict[str, int],
) -> dict[str, dict[str, int]]:
    """Each fleet's share of its route in proportion to its serving instances."""
    weights = final_weights(plan)
    for service, (new, old) in moving.items():
        if service not in plan.routed or old is None:
            continue
        n, o = new_now[service], old_now[service]
        share = 100 if o == 0 else round(100 * n / (n + o))
        weights[service] = {new: share, old: 100 - share}
    return weights
