"""Blue-green: launch the new fleet at full size, health gate, switch all at once.

The sequence and its failure path, top to bottom:

    launch new fleets ──fail──► destroy new fleets ──► failed (old keeps serving)
    wait until healthy ─fail──► destroy new fleets ──► failed
    switch routes ──────fail──► restore old routes ──► destroy new ──► failed
    retain old fleets (warm, for instant rollback) or retire them
    succeeded

An interrupted step (Ctrl-C) is recorded as failed, so the same failure path
runs (see ``common.fail``).
"""

from __future__ import annotations

from collections.abc import Sequence

from kiln.model import StepRecord
from kiln.model.steps import Launch, SetRoutes, Step, WaitHealthy
from kiln.strategies.base import Finish, Plan
from kiln.strategies.common import (
    final_weights,
    forward_or_fail,
    old_fleet_steps,
    targets,
)


def decide(plan: Plan, log: Sequence[StepRecord]) -> Step | Finish:
    return forward_or_fail(plan, log, forward)


def forward(plan: Plan) -> list[Step]:
    new = targets(plan)
    return [
        Launch(fleets=new),
        WaitHealthy(fleets=new),
        SetRoutes(weights=final_weights(plan)),
        *old_fleet_steps(plan),
    ]
