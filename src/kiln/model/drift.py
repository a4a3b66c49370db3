"""Drift: what runs, or how it is routed, that no release of kiln's put there."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from kiln.model.change import FileChange


class DriftKind(StrEnum):
    UNKNOWN_INSTANCE = "unknown_instance"  # carries kiln's labels, no fleet of kiln's
    MISSING_INSTANCE = "missing_instance"  # a fleet has fewer live instances than replicas
    CONFIG_DRIFT = "config_drift"  # runs another artifact or config than its release's
    IN_INSTANCE_CHANGE = "in_instance_change"  # files changed inside a running instance
    ROUTE_DRIFT = "route_drift"  # the router's table is not what kiln last applied


class DriftAction(StrEnum):
    DESTROY = "destroy"
    REPLACE = "replace"  # a new instance from the same release, then the old one goes
    CAPTURE_REPLACE = "capture_replace"  # keep the evidence, then replace
    RESTORE = "restore"  # apply kiln's routes again


# What enforcement does for each kind (the spec's on_drift: enforce).
DEFAULT_ACTIONS: dict[DriftKind, DriftAction] = {
    DriftKind.UNKNOWN_INSTANCE: DriftAction.DESTROY,
    DriftKind.MISSING_INSTANCE: DriftAction.REPLACE,
    DriftKind.CONFIG_DRIFT: DriftAction.REPLACE,
    DriftKind.IN_INSTANCE_CHANGE: DriftAction.CAPTURE_REPLACE,
    DriftKind.ROUTE_DRIFT: DriftAction.RESTORE,
}


@dataclass(frozen=True)
class Evidence:
    """One changed file as found inside an instance, kept so the change can become code."""

    path: str  # as the provider reports it (local: in the artifact; docker: absolute)
    kind: str  # added | changed | deleted
    source: str | None = None  # the build-context path it maps to, if one does
    content: str | None = None  # the file now (text), up to EVIDENCE_BYTES
    size: int = 0  # bytes of the file now
    binary: bool = False
    truncated: bool = False
    diff: str = ""  # unified diff from the build context's file to the file now (text)


# Evidence keeps at most this much of each changed file.
EVIDENCE_BYTES = 64 * 1024


@dataclass(frozen=True)
class HostProcess:
    """A process on kiln's machine listening on a port, as /proc shows it."""

    port: int
    pid: int
    start_time: int  # with the pid, names the process (pids are reused)
    command: str


@dataclass(frozen=True)
class Finding:
    """One drift, as the comparison found it: what, where, and the evidence."""

    kind: DriftKind
    env: str
    subject: str  # the instance id, fleet id or route name it is about
    summary: str  # one line for humans
    fleet: str | None = None
    instance_ref: str | None = None  # the provider's identity of the instance
    changes: tuple[FileChange, ...] = ()  # in_instance_change: what changed
    # kind-specific facts: expected vs observed digests, counts, route contents
    detail: dict[str, object] = field(default_factory=dict)
    evidence: tuple[Evidence, ...] = ()  # in_instance_change: the changed files themselves

    @property
    def action(self) -> DriftAction:
        return DEFAULT_ACTIONS[self.kind]


@dataclass(frozen=True)
class DriftRecord:
    """A finding as stored: numbered, timed, and what was done about it."""

    id: int
    app: str
    finding: Finding
    found_at: datetime
    resolution: str = ""  # "" while open; what enforcement did
    resolved_at: datetime | None = None
    # While set, the instance is out of the route but kept alive for inspection.
    quarantined_until: datetime | None = None
