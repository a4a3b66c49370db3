"""Canary: launch the new fleet beside the stable one, move traffic in steps.

    launch canary fleets, wait until healthy
    for each step: set weights (canary w %, stable 100 - w %)
                   analysis over the step's window (if any thresholds)
                   pause (a duration, or until `kiln advance`)
    canary at 100 %, stable out of the route
    retain stable fleets (warm, for instant rollback) or retire them

Any failure (an analysis, a health gate, `kiln abort`, the progress deadline)
takes the common failure path: the previous routes at once, the canary
destroyed, the stable fleet never touched. The stable fleet keeps all its
instances until the canary serves 100 %.

Only routed services that replace a fleet have a canary; a new service, or
one without a route, is launched with the canary and serves from the end.
Without any canary pair there is nothing to weigh: it runs as blue-green.
"""

from __future__ import annotations

from collections.abc import Sequence

from kiln.model import StepRecord
from kiln.model.steps import Analyze, Launch, Pause, SetRoutes, Step, WaitHealthy
from kiln.strategies import bluegreen
from kiln.strategies.base import Finish, Plan
from kiln.strategies.common import (
    final_weights,
    forward_or_fail,
    old_fleet_steps,
    targets,
)

CANARY = "canary"
STABLE = "stable"


def decide(plan: Plan, log: Sequence[StepRecord]) -> Step | Finish:
    return forward_or_fail(plan, log, forward)


def pairs(plan: Plan) -> dict[str, tuple[str, str]]:
    """service -> (canary fleet, stable fleet), for routed services replacing a fleet."""
    return {
        service: (new, old)
        for service, new in sorted(plan.new.items())
        if service in plan.routed and (old := plan.previous.get(service)) and old != new
    }


def weights_at(plan: Plan, weight: int) -> dict[str, dict[str, int]]:
    """Every routed service's weights with each canary at ``weight`` percent."""
    moving = pairs(plan)
    weights = final_weights(plan)
    for service, (canary, stable) in moving.items():
        weights[service] = {canary: weight, stable: 100 - weight}
    return weights


def forward(plan: Plan) -> list[Step]:
    moving = pairs(plan)
    if not moving:
        return bluegreen.forward(plan)
    new = targets(plan)
    roles = {}
    for canary, stable in moving.values():
        roles[canary], roles[stable] = CANARY, STABLE
    canaries = {s: c for s, (c, _) in moving.items()}
    stables = {s: st for s, (_, st) in moving.items()}
    deadline = plan.config.progress_deadline
    steps: list[Step] = [Launch(fleets=new), WaitHealthy(fleets=new)]
    for index, step in enumerate(plan.config.steps):
        steps.append(SetRoutes(weights=weights_at(plan, step.weight), roles=roles))
        if step.analysis is not None:
            steps.append(
                Analyze(
                    step=index,
                    weight=step.weight,
                    canary=canaries,
                    stable=stables,
                    thresholds=step.analysis,
                    deadline=deadline,
                )
            )
        if step.manual or step.pause:
            seconds = None if step.manual else step.pause
            steps.append(Pause(step=index, weight=step.weight, seconds=seconds, deadline=deadline))
    steps.append(SetRoutes(weights=final_weights(plan)))
    return [*steps, *old_fleet_steps(plan)]
