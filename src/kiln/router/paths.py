"""Where one router keeps its files under a kiln state directory.

Only names paths; it must never create, read or delete anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RouterPaths:
    dir: Path

    @classmethod
    def of(cls, state_dir: Path) -> RouterPaths:
        return cls(Path(state_dir) / "router")

    @property
    def sock(self) -> Path:
        return self.dir / "admin.sock"

    @property
    def table(self) -> Path:
        return self.dir / "table.json"

    @property
    def pid(self) -> Path:
        # Held under an exclusive flock by the live router, so "locked" means "running".
        return self.dir / "router.pid"

    @property
    def log(self) -> Path:
        return self.dir / "router.log"

    @property
    def start_lock(self) -> Path:
        return self.dir / "start.lock"
