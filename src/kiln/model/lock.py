"""Who holds an environment's deploy lock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class LockHolder:
    id: str  # unique per acquisition (uuid4 hex)
    pid: int
    host: str
    user: str
    command: str  # "deploy", "rollback", ...
    started_at: datetime

    def describe(self) -> str:
        at = self.started_at.strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"{self.user}@{self.host} pid {self.pid} ({self.command}, since {at})"
