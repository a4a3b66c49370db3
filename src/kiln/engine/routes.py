"""Building an environment's routes from fleets and applying them to the router."""

from __future__ import annotations

from collections.abc import Mapping

from kiln.engine.context import Context
from kiln.errors import RouterError, RouteTableConflict
from kiln.model import FleetRoute, Instance, Route, RouteTable


def route_name(app: str, env: str, service: str) -> str:
    return f"{app}/{env}/{service}"


def env_routes(
    ctx: Context,
    env: str,
    weights: Mapping[str, Mapping[str, int]],
    listen: Mapping[str, str],
    instances: list[Instance],
    *,
    roles: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[Route, ...]:
    """Routes for ``env``: each service's fleets with their live instances as backends.

    ``roles`` (fleet -> "canary"/"stable") and ``headers`` (service -> header
    name) let a request reach a fleet by role whatever its weight.
    """
    roles = roles or {}
    headers = headers or {}
    routes = []
    for service, fleets in sorted(weights.items()):
        if service not in listen:
            continue
        routes.append(
            Route(
                name=route_name(ctx.app, env, service),
                listen=listen[service],
                header=headers.get(service, Route.header),
                fleets=tuple(
                    FleetRoute(
                        fleet=f,
                        weight=w,
                        role=roles.get(f, ""),
                        backends=tuple(
                            sorted(i.address for i in instances if i.fleet == f and i.alive)
                        ),
                    )
                    for f, w in sorted(fleets.items())
                ),
            )
        )
    return tuple(routes)


def apply_env_routes(ctx: Context, env: str, routes: tuple[Route, ...]) -> RouteTable:
    """Replace ``env``'s routes in the router's table, atomically, leaving others alone."""
    router = ctx.router()
    prefix = route_name(ctx.app, env, "")
    for _ in range(10):
        table = router.table()
        try:
            applied = router.apply(table.replace(routes, prefix=prefix))
        except RouteTableConflict:
            continue  # another environment applied in between: read again
        # What route drift is measured against (kiln's own applies only).
        ctx.store.set_applied_routes(ctx.app, env, routes)
        return applied
    raise RouterError("route table kept changing under us; try again")
