"""Turning the spec into an immutable, pinned release: bake, resolve, digest."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime

from kiln.engine.context import Context
from kiln.engine.secrets import resolve_secrets
from kiln.engine.source import source_info
from kiln.errors import KilnError, NotFound, SpecError
from kiln.model import ArtifactSource, HealthCheck, Release, ServiceRelease, StrategyConfig
from kiln.model.release import release_config_digest
from kiln.providers.base import IMAGES
from kiln.spec import ServiceSpec


def build_release(
    ctx: Context,
    env: str,
    *,
    reason: str = "deploy",
    artifacts: Mapping[str, ServiceRelease] | None = None,
) -> Release:
    """Bake every service and pin the result; the release is not stored yet (number 0).

    With ``artifacts`` (service -> a release's service, for promotion) nothing is
    baked: each service runs that artifact, which the provider must already have.
    """
    provider = ctx.provider(env)
    env_spec = ctx.spec.environments[env]
    services: dict[str, ServiceRelease] = {}
    key = ctx.store.secret_key()
    for name in sorted(ctx.spec.services):
        svc = ctx.spec.service(env, name)
        secrets = resolve_secrets(svc.secrets, ctx.environ)
        if svc.command is None and IMAGES not in provider.capabilities:
            raise SpecError(
                f"service {name} has no command, and provider "
                f"{env_spec.provider} has no image to take one from"
            )
        image = svc.image
        if artifacts is None:
            ctx.reporter.progress(f"baking {name} from {svc.build or svc.image}")
            artifact = provider.bake(name, _source(ctx, svc))
        else:
            artifact, image = _promoted(ctx, env, name, artifacts)
        services[name] = ServiceRelease(
            service=name,
            artifact=artifact,
            command=tuple(svc.command or ()),
            port=svc.port,
            replicas=svc.replicas,
            env=dict(svc.env),
            secrets={n: s.digest(key) for n, s in secrets.items()},
            health=HealthCheck(**svc.health.model_dump()),
            volumes=dict(svc.volumes),
            strategy=_strategy(name, svc),
            route=env_spec.routes.get(name),
            image=image,
            cap_add=tuple(svc.cap_add),
            cpus=svc.cpus,
            memory=svc.memory,
            network=svc.network,
        )
    source = source_info(ctx.spec_dir)
    return Release(
        app=ctx.app,
        env=env,
        number=0,
        services=services,
        config_digest=release_config_digest(services),
        spec_digest=ctx.spec.digest(),
        commit=source.commit,
        dirty=source.dirty,
        author=ctx.actor,
        created_at=datetime.now(UTC),
        reason=reason,
        provider=env_spec.provider,
    )


def _strategy(name: str, svc: ServiceSpec) -> StrategyConfig:
    config = svc.strategy.config(svc.replicas)
    if config.type == "rolling" and config.max_surge + config.max_unavailable == 0:
        raise SpecError(
            f"service {name}: max_surge and max_unavailable both come to 0 of "
            f"{svc.replicas} replicas; nothing could be replaced"
        )
    return config


def _promoted(
    ctx: Context, env: str, name: str, artifacts: Mapping[str, ServiceRelease]
) -> tuple[str, str | None]:
    """The artifact ``name`` is promoted with; never rebaked, so it must exist already."""
    source = artifacts.get(name)
    if source is None:
        raise NotFound(f"service {name} has no artifact in the release being promoted")
    if not ctx.provider(env).has_artifact(source.artifact):
        provider = ctx.spec.environments[env].provider
        raise KilnError(
            f"artifact {source.artifact} of {name} is not on {env}'s provider ({provider}); "
            "promotion never rebuilds: promote between environments that share artifacts"
        )
    return source.artifact, source.image


def rollback_release(ctx: Context, target: Release) -> Release:
    """A new release pointing at ``target``'s artifacts and config: releases are never edited."""
    return replace(
        target,
        promotion=None,  # the evidence stays with the release it was given for
        number=0,
        author=ctx.actor,
        created_at=datetime.now(UTC),
        reason=f"rollback to release {target.number}",
    )


def same_content(a: Release, b: Release) -> bool:
    return a.artifacts == b.artifacts and a.config_digest == b.config_digest


def bake(ctx: Context, env: str, service: str | None = None) -> dict[str, str]:
    """Bake one service (or all) without releasing: returns service -> artifact digest."""
    names = sorted(ctx.spec.services) if service is None else [service]
    if service is not None and service not in ctx.spec.services:
        known = ", ".join(sorted(ctx.spec.services))
        raise NotFound(f"unknown service {service!r} (services: {known})")
    provider = ctx.provider(env)
    return {n: provider.bake(n, _source(ctx, ctx.spec.service(env, n))) for n in names}


def _source(ctx: Context, svc: ServiceSpec) -> ArtifactSource:
    build = (ctx.spec_dir / svc.build).resolve() if svc.build is not None else None
    return ArtifactSource(build=build, dockerfile=svc.dockerfile, image=svc.image)
