"""Which fleets a new release needs: keep, launch a new one, or reuse a warm one."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from kiln.model import Fleet, FleetState, ServiceRelease
from kiln.planner.diff import ServiceDiff, diff_service

Action = Literal["keep", "launch", "reuse", "remove"]


@dataclass(frozen=True)
class ServiceChange:
    service: str
    action: Action
    current: str | None  # fleet serving now
    target: str | None  # fleet serving after (None when the service is removed)
    launch: int  # instances to start
    retire: int  # instances that leave the route
    diff: ServiceDiff | None


@dataclass(frozen=True)
class ReleasePlan:
    changes: tuple[ServiceChange, ...]

    @property
    def changed(self) -> bool:
        return any(c.action != "keep" for c in self.changes)

    @property
    def new(self) -> dict[str, str]:
        return {c.service: c.target for c in self.changes if c.target is not None}

    @property
    def previous(self) -> dict[str, str | None]:
        return {c.service: c.current for c in self.changes}

    @property
    def reused(self) -> frozenset[str]:
        return frozenset(c.target for c in self.changes if c.action == "reuse" and c.target)


def plan_release(
    *,
    new_fleet_ids: Mapping[str, str],
    new: Mapping[str, ServiceRelease],
    current: Mapping[str, ServiceRelease],
    active: Mapping[str, Fleet],
    warm: Iterable[Fleet],
    alive: Mapping[str, int],
) -> ReleasePlan:
    """Plan a release against what serves now.

    ``current``/``active``: the serving release's services and their fleets.
    ``warm``: retained fleets that could serve again instantly. ``alive``:
    live instance counts per fleet id. A service whose artifact and config are
    unchanged keeps its fleet; a warm fleet with the same artifact and config
    and all its instances alive is reused instead of launching a new one.
    """
    warm_fleets = [f for f in warm if f.state is FleetState.RETAINED]
    changes: list[ServiceChange] = []
    for name, service in sorted(new.items()):
        fleet = active.get(name)
        serving = alive.get(fleet.id, 0) if fleet else 0
        diff = diff_service(current.get(name), service)
        if fleet is not None and _same(fleet, service) and serving >= service.replicas:
            changes.append(ServiceChange(name, "keep", fleet.id, fleet.id, 0, 0, None))
            continue
        reusable = next(
            (
                f
                for f in reversed(warm_fleets)
                if f.service == name
                and _same(f, service)
                and alive.get(f.id, 0) >= service.replicas
            ),
            None,
        )
        if reusable is not None:
            changes.append(
                ServiceChange(
                    name, "reuse", fleet.id if fleet else None, reusable.id, 0, serving, diff
                )
            )
        else:
            changes.append(
                ServiceChange(
                    name,
                    "launch",
                    fleet.id if fleet else None,
                    new_fleet_ids[name],
                    service.replicas,
                    serving,
                    diff,
                )
            )
    for name, fleet in sorted(active.items()):
        if name not in new:
            changes.append(
                ServiceChange(name, "remove", fleet.id, None, 0, alive.get(fleet.id, 0), None)
            )
    return ReleasePlan(tuple(changes))


def _same(fleet: Fleet, service: ServiceRelease) -> bool:
    # The config digest covers replicas, env, secret versions, command, health, ...
    return fleet.artifact == service.artifact and fleet.config_digest == service.config_digest()
