"""Fleets and instances: only ever created or destroyed, never changed."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class FleetState(StrEnum):
    LAUNCHING = "launching"
    ACTIVE = "active"  # serving traffic
    RETAINED = "retained"  # out of the route, kept warm for instant rollback
    RETIRED = "retired"  # destroyed
    FAILED = "failed"  # never served; destroyed


@dataclass(frozen=True)
class Fleet:
    id: str
    app: str
    env: str
    service: str
    release: int
    artifact: str
    config_digest: str
    replicas: int
    state: FleetState
    created_at: datetime
    retain_until: datetime | None = None

    @staticmethod
    def make_id(app: str, env: str, service: str, release: int) -> str:
        return f"{app}.{env}.{service}.r{release}"


@dataclass(frozen=True)
class Instance:
    """One running unit of a fleet, as a provider observes it."""

    id: str
    app: str
    env: str
    service: str
    fleet: str
    release: int
    address: str  # host:port the router and health checks reach it on
    ref: str  # provider identity, e.g. "pid:starttime" for local
    alive: bool = True
    started_at: datetime | None = None
    labels: dict[str, str] = field(default_factory=dict)
    # The artifact the provider sees running, whatever the labels say ("": it cannot
    # tell apart from the labels; docker: the container's image ID).
    running_artifact: str = ""
