"""Stopping an environment: routes removed, every instance destroyed, volumes optional."""

from __future__ import annotations

from kiln.engine.context import Context
from kiln.engine.executor import destroy_fleets
from kiln.engine.lock import EnvLock
from kiln.engine.routes import apply_env_routes
from kiln.model import DeploymentStatus, FleetState


def down(ctx: Context, env: str, *, volumes: bool = False) -> int:
    """Returns the number of instances stopped."""
    with EnvLock(ctx, env, "down"):
        running = ctx.store.running_deployment(ctx.app, env)
        if running is not None:  # its kiln died; no point finishing what we stop now
            ctx.store.finish_deployment(
                running.id, DeploymentStatus.FAILED, "environment stopped by kiln down"
            )
        apply_env_routes(ctx, env, ())
        provider = ctx.provider(env)
        instances = provider.observe(env)
        fleets = ctx.store.fleets(
            ctx.app, env, states=[FleetState.LAUNCHING, FleetState.ACTIVE, FleetState.RETAINED]
        )
        destroy_fleets(ctx, env, tuple(f.id for f in fleets), FleetState.RETIRED)
        for stray in provider.observe(env):
            provider.destroy(stray)
        if volumes:
            provider.remove_volumes(env)
        ctx.event("env.down", env, "kiln down", instances=len(instances), volumes=volumes)
        return len(instances)
