"""The evidence a promotion carries, and the evidence an environment requires."""

from __future__ import annotations

from datetime import UTC, datetime

from kiln.engine.context import Context
from kiln.errors import KilnError
from kiln.model import DeploymentStatus, Promotion, Release
from kiln.spec.durations import format_duration


def evidence(ctx: Context, release: Release) -> Promotion:
    """How ``release`` fared in its own environment: its deployment, soak and analysis."""
    app, env = ctx.app, release.env
    deployments = ctx.store.list_deployments(app, env, limit=10_000)  # newest first
    served = next(
        (
            d
            for d in deployments
            if d.release == release.number and d.status is DeploymentStatus.SUCCEEDED
        ),
        None,
    )
    if served is None or served.finished_at is None:
        tried = next((d for d in deployments if d.release == release.number), None)
        how = f"its deployment {tried.id} {tried.status.value}" if tried else "never deployed"
        raise KilnError(
            f"release {release.number} of {env} never served there ({how}); "
            "only a release that served can be promoted"
        )
    since = served.finished_at
    until = datetime.now(UTC)
    if ctx.store.current_release(app, env) != release.number:
        # Replaced since: it served until the next deployment that succeeded.
        later = [
            d.finished_at
            for d in deployments
            if d.id > served.id and d.status is DeploymentStatus.SUCCEEDED and d.finished_at
        ]
        until = min(later, default=until)
    return Promotion(
        env=env,
        release=release.number,
        deployment=served.id,
        result=served.status.value,
        serving_since=since,
        soak_seconds=round(max(0.0, (until - since).total_seconds()), 3),
        analysis=tuple(r.detail for r in served.steps if r.step.kind == "analyze" and r.detail),
    )


def check_requirements(ctx: Context, env: str, proof: Promotion | None) -> None:
    """Refuse a release for ``env`` without the evidence its ``requires:`` asks for."""
    requires = ctx.spec.environments[env].requires
    if requires is None:
        return
    wanted = requires.promoted_from
    if proof is None and (wanted is not None or requires.min_soak > 0):
        source = wanted or "another environment"
        raise KilnError(
            f"{env} only takes releases promoted from {source}: "
            f"`kiln promote --from {wanted or 'ENV'} --to {env}`"
        )
    if proof is None:
        return
    if wanted is not None and proof.env != wanted:
        raise KilnError(f"{env} only takes releases promoted from {wanted}, not from {proof.env}")
    if proof.soak_seconds < requires.min_soak:
        raise KilnError(
            f"{env} requires {format_duration(requires.min_soak)} of soak in {proof.env}; "
            f"release {proof.release} has served there for {format_duration(proof.soak_seconds)}"
        )
