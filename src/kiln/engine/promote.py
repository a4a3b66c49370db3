"""Promotion: the very artifact that served in one environment, released in another.

Nothing is rebuilt. The new release takes the source release's artifact
digests and the target environment's own config (env, secrets, replicas,
routes, strategy), and records the evidence it was promoted on. An
environment may require that evidence (``requires:`` in the spec); a deploy or
promotion without it is refused before anything changes.
"""

from __future__ import annotations

from dataclasses import replace

from kiln.engine.context import Context
from kiln.engine.deploy import Outcome, deploy_release, tidy
from kiln.engine.evidence import check_requirements, evidence
from kiln.engine.lock import EnvLock
from kiln.engine.releases import build_release
from kiln.errors import NotFound, SpecError
from kiln.model import Release


def promote(
    ctx: Context, *, source: str, target: str, release: int | None = None, reason: str = ""
) -> Outcome:
    ctx.spec.select_env(source)
    ctx.spec.select_env(target)
    if source == target:
        raise SpecError(f"cannot promote {source} to itself: name two environments")
    with EnvLock(ctx, target, "promote"):
        tidy(ctx, target)
        promoted = _source_release(ctx, source, release)
        proof = evidence(ctx, promoted)
        check_requirements(ctx, target, proof)
        new = build_release(
            ctx,
            target,
            reason=reason or f"promote {source} release {promoted.number}",
            artifacts=promoted.services,
        )
        new = replace(new, promotion=proof)
        return deploy_release(ctx, target, new)


def _source_release(ctx: Context, env: str, number: int | None) -> Release:
    if number is None:
        number = ctx.store.current_release(ctx.app, env)
        if number is None:
            raise NotFound(f"nothing serves in {ctx.app}/{env} to promote")
    return ctx.store.get_release(ctx.app, env, number)
