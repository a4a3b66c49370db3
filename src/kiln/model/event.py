"""Audit events: append-only and hash-chained (see store.events)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Event:
    seq: int
    at: datetime
    actor: str  # who: "user@host"
    action: str  # what: "deploy.started", "release.created", ...
    app: str
    env: str
    reason: str  # why
    detail: dict[str, Any]
    prev_hash: str
    hash: str
