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


@dataclass(frozen=True)
class Runtime:
    """What an instance really runs with, as its engine or ``/proc`` reports it now.

    Providers leave out what they add themselves (the port, kiln's labels, the
    volume variables), so what is left compares with the release. ``env``
    values may be secrets: a runtime is compared in memory and never stored
    or shown; only the names of what differs are.
    """

    env: dict[str, str] = field(repr=False)  # never in a log or traceback
    # The image's own environment, which a container inherits (empty for processes).
    base_env: dict[str, str] = field(default_factory=dict)
    # False: ``env`` may hold variables a wrapper added before exec'ing the app (a
    # version manager's shim, a shell script's export), so only the variables the
    # release names are compared.
    exact_env: bool = True
    # argv as it runs (docker: entrypoint + cmd); None where it cannot be told reliably.
    command: tuple[str, ...] | None = None
    default_command: tuple[str, ...] = ()  # what an empty release command means (the image's)
    # Mount path -> "volume:NAME" for the environment's declared volumes, else the
    # engine's type and source; "/" appears only when the root filesystem is writable.
    # None: the provider has no mounts (processes see volumes as directories).
    mounts: dict[str, str] | None = None
