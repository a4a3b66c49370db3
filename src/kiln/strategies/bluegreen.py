"""Blue-green: launch the new fleet at full size, health gate, switch all at once.

The sequence and its failure path, top to bottom:

    launch new fleets ──fail──► destroy new fleets ──► failed (old keeps serving)
    wait until healthy ─fail──► destroy new fleets ──► failed
    switch routes ──────fail──► restore old routes ──► destroy new ──► failed
    retain old fleets (warm, for instant rollback) or retire them
    succeeded

A failed switch may still have reached the router (a timeout after the apply),
so the old routes are put back before anything is destroyed; if that fails
too, nothing is destroyed. A fleet reused warm is never destroyed: it was
good before this deployment and stays retained. An interrupted step (Ctrl-C)
is recorded as failed, so the same failure path runs.
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
    plan: Plan, log: Sequence[StepRecord], failed: StepRecord, new: tuple[str, ...]
) -> Step | Finish:
    reason = f"{failed.step.kind} failed: {failed.detail}"
    if failed.step.kind in ("retain", "retire"):
        # The switch happened; only clean-up of old fleets failed. Housekeeping retries it.
        return Finish(DeploymentStatus.SUCCEEDED, f"previous fleet clean-up pending: {reason}")
    after = list(log[log.index(failed) + 1 :])
    if failed.step.kind == "set_routes":
        restores = [r for r in after if r.step.kind == "set_routes"]
        if not restores:
            return SetRoutes(weights=_previous_weights(plan))
        if restores[-1].status is StepStatus.FAILED:
            return Finish(
                DeploymentStatus.FAILED,
                f"{reason}; restoring the previous routes failed too: "
                f"{restores[-1].detail}; new fleets kept for inspection",
            )
    destroyed = [r for r in after if r.step.kind == "destroy"]
    if not destroyed:
        return Destroy(fleets=tuple(f for f in new if f not in plan.reused))
    if destroyed[-1].status is StepStatus.FAILED:
        return Finish(
            DeploymentStatus.FAILED, f"{reason}; clean-up failed too: {destroyed[-1].detail}"
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


def _previous_weights(plan: Plan) -> dict[str, dict[str, int]]:
    return {
        service: {fleet: 100}
        for service, fleet in sorted(plan.previous.items())
        if fleet is not None and service in plan.routed
    }


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
