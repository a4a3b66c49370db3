"""What every strategy does the same way: which fleets move, the end routes, the old
fleets' fate, and the failure path."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from kiln.model import DeploymentStatus, StepRecord, StepStatus
from kiln.model.steps import Destroy, Retain, Retire, SetRoutes, Step
from kiln.strategies.base import Finish, Plan


def resumed(log: Sequence[StepRecord]) -> Step | None:
    """The step a killed kiln left started: it runs again (steps are idempotent)."""
    if log and log[-1].status is StepStatus.STARTED:
        return log[-1].step  # type: ignore[no-any-return]
    return None


def first_failure(log: Sequence[StepRecord]) -> StepRecord | None:
    return next((r for r in log if r.status is StepStatus.FAILED), None)


def forward_or_fail(
    plan: Plan, log: Sequence[StepRecord], forward: Callable[[Plan], list[Step]]
) -> Step | Finish:
    """A strategy whose failure path is the common one: resume, fail, or go forward."""
    again = resumed(log)
    if again is not None:
        return again
    failed = first_failure(log)
    if failed is not None:
        return fail(plan, log, failed)
    return follow(forward(plan), log)


def follow(forward: Sequence[Step], log: Sequence[StepRecord]) -> Step | Finish:
    """The next of ``forward`` (a log without failures has done a prefix of it)."""
    done = sum(1 for r in log if r.status is StepStatus.OK)
    if done < len(forward):
        return forward[done]
    return Finish(DeploymentStatus.SUCCEEDED)


def targets(plan: Plan) -> tuple[str, ...]:
    """Fleets this deployment brings in: every service whose fleet changes."""
    return tuple(sorted({f for s, f in plan.new.items() if f != plan.previous.get(s)}))


def final_weights(plan: Plan) -> dict[str, dict[str, int]]:
    return {
        service: {fleet: 100}
        for service, fleet in sorted(plan.new.items())
        if service in plan.routed
    }


def previous_weights(plan: Plan) -> dict[str, dict[str, int]]:
    return {
        service: {fleet: 100}
        for service, fleet in sorted(plan.previous.items())
        if fleet is not None and service in plan.routed
    }


def old_fleet_steps(plan: Plan) -> list[Step]:
    """Once the new fleets serve: keep the old ones warm, or retire them."""
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


def fail(plan: Plan, log: Sequence[StepRecord], failed: StepRecord) -> Step | Finish:
    """After a failed step: put the previous routes back, destroy what was launched.

    A failed switch may still have reached the router (a timeout after the
    apply), so once any route change was attempted the previous routes are put
    back before anything is destroyed; if that fails too, nothing is destroyed.
    A fleet reused warm is never destroyed: it was good before this deployment.
    """
    reason = f"{failed.step.kind} failed: {failed.detail}"
    if failed.step.kind in ("retain", "retire"):
        # The switch happened; only clean-up of old fleets failed. Housekeeping retries it.
        return Finish(DeploymentStatus.SUCCEEDED, f"previous fleet clean-up pending: {reason}")
    at = log.index(failed)
    before, after = log[: at + 1], list(log[at + 1 :])
    if any(r.step.kind == "set_routes" for r in before):
        restores = [r for r in after if r.step.kind == "set_routes"]
        if not restores:
            return SetRoutes(weights=previous_weights(plan))
        if restores[-1].status is StepStatus.FAILED:
            return Finish(
                DeploymentStatus.FAILED,
                f"{reason}; restoring the previous routes failed too: "
                f"{restores[-1].detail}; new fleets kept for inspection",
            )
    destroyed = [r for r in after if r.step.kind == "destroy"]
    if not destroyed:
        return Destroy(fleets=tuple(f for f in targets(plan) if f not in plan.reused))
    if destroyed[-1].status is StepStatus.FAILED:
        return Finish(
            DeploymentStatus.FAILED, f"{reason}; clean-up failed too: {destroyed[-1].detail}"
        )
    return Finish(DeploymentStatus.FAILED, reason)
