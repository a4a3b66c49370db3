"""Blue-green: launch the new fleet at full size, health gate, switch all at once.

The sequence and its failure path, top to bottom:

    launch new fleets ──fail──► destroy new fleets ──► failed (old keeps serving)
    wait until healthy ─fail──► destroy new fleets ──► failed
    switch routes ──────fail──► destroy new fleets ──► failed (switch is atomic)
    retain old fleets (warm, for instant rollback) or retire them
    succeeded

Before the switch an abort destroys the new fleets; after it, the deployment
is finished in all but clean-up and goes on to the end.
"""

from __future__ import annotations

from collections.abc import Sequence

from kiln.model import DeploymentStatus, StepRecord, StepStatus
from kiln.model.steps import Destroy, Launch, Retain, Retire, SetRoutes, Step, WaitHealthy
from kiln.strategies.base import Finish, Plan


def decide(plan: Plan, log: Sequence[StepRecord]) -> Step | Finish:
    if log and log[-1].status is StepStatus.STARTED:
        return log[-1].step  # type: ignore[no-any-return]  # interrupted: run it again
    new = _targets(plan)
    done = {r.step.kind for r in log if r.status is StepStatus.OK}
    failed = next((r for r in log if r.status is StepStatus.FAILED), None)

    if failed is not None:
        return _fail(plan, log, failed, new)
    if "set_routes" not in done:
        if plan.abort_requested:
            return _fail(plan, log, None, new)
        if "launch" not in done:
            return Launch(fleets=new)
        if "wait_healthy" not in done:
            return WaitHealthy(fleets=new)
        return SetRoutes(weights=_weights(plan))
    # Switched: the new release serves. What remains is the old fleets' fate.
    for step in _old_fleet_steps(plan):
        if step.kind not in done:
            return step
    return Finish(DeploymentStatus.SUCCEEDED)


def _fail(
    plan: Plan, log: Sequence[StepRecord], failed: StepRecord | None, new: tuple[str, ...]
) -> Step | Finish:
    reason = "aborted" if failed is None else f"{failed.step.kind} failed: {failed.detail}"
    if failed is not None and failed.step.kind in ("retain", "retire"):
        # The switch happened; only clean-up of old fleets failed. Housekeeping retries it.
        return Finish(DeploymentStatus.SUCCEEDED, f"previous fleet clean-up pending: {reason}")
    destroyed = [r for r in log if r.step.kind == "destroy"]
    if not destroyed:
        # Keep a fleet that was reused from a warm, retained one: it never stopped being good.
        return Destroy(fleets=tuple(f for f in new if f not in _previous_fleets(plan)))
    if destroyed[-1].status is StepStatus.FAILED:
        first = next(r for r in log if r.status is StepStatus.FAILED)
        return Finish(
            DeploymentStatus.FAILED,
            f"{first.step.kind} failed: {first.detail}; "
            f"clean-up failed too: {destroyed[-1].detail}",
        )
    return Finish(DeploymentStatus.FAILED, reason)


def _targets(plan: Plan) -> tuple[str, ...]:
    """Fleets this deployment brings in: every service whose fleet changes."""
    return tuple(sorted({f for s, f in plan.new.items() if f != plan.previous.get(s)}))


def _weights(plan: Plan) -> dict[str, dict[str, int]]:
    return {
        service: {fleet: 100}
        for service, fleet in sorted(plan.new.items())
        if service in plan.routed
    }


def _previous_fleets(plan: Plan) -> set[str]:
    return {f for f in plan.previous.values() if f is not None}


def _old_fleet_steps(plan: Plan) -> list[Step]:
    retained: list[str] = []
    retired: list[str] = []
    seconds = 0.0
    for service, old in sorted(plan.previous.items()):
        if old is None or old == plan.new.get(service):
            continue
        keep = plan.retain_seconds.get(service, 0.0)
        if keep > 0:
            retained.append(old)
            seconds = max(seconds, keep)
        else:
            retired.append(old)
    steps: list[Step] = []
    if retained:
        steps.append(Retain(fleets=tuple(retained), seconds=seconds))
    if retired:
        steps.append(Retire(fleets=tuple(retired)))
    return steps
