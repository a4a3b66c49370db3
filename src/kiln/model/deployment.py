"""Deployments: durable state machines; their step log is what makes resume possible."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


class DeploymentStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # the previous release still serves


class StepStatus(StrEnum):
    STARTED = "started"
    OK = "ok"
    FAILED = "failed"


@dataclass(frozen=True)
class StepRecord:
    seq: int
    step: Any  # kiln.model.steps.Step (a discriminated union)
    status: StepStatus
    detail: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True)
class Deployment:
    id: int
    app: str
    env: str
    release: int
    from_release: int | None
    strategy: str
    status: DeploymentStatus
    # service -> new fleet id, and service -> fleet it replaces (None if first deploy)
    fleets: dict[str, str]
    previous: dict[str, str | None]
    reason: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    steps: tuple[StepRecord, ...] = ()
    # live numbers of the running step, rewritten by the driving kiln (canary analysis)
    progress: dict[str, Any] | None = None
