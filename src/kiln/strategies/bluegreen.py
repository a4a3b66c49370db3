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
    fail,
    final_weights,
    first_failure,
    follow,
    old_fleet_steps,
    resumed,
    targets,
)


def decide(plan: Plan, log: Sequence[StepRecord]) -> Step | Finish:
    again = resumed(log)
    if again is not None:
        return again
    failed = first_failure(log)
    if failed is not None:
        return fail(plan, log, failed)
    return follow(forward(plan), log)


def forward(plan: Plan) -> list[Step]:
    new = targets(plan)
    return [
        Launch(fleets=new),
        WaitHealthy(fleets=new),
        SetRoutes(weights=final_weights(plan)),
        *old_fleet_steps(plan),
    ]
