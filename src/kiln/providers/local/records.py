"""Instance records: ``instances/<env>/<instance id>.json`` under the state dir.

A record is written (atomically) before its process is spawned, without a pid,
and again after, with the pid and start time; so a launched instance is never
untracked. The ``/proc`` scan in ``observe`` covers the gap between the spawn and
the second write. Records are never edited by hand and never trusted alone: a
recorded pid counts only while its start time matches.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiln.providers.local.fsutil import atomic_write_json


@dataclass(frozen=True)
class InstanceRecord:
    id: str
    app: str
    env: str
    service: str
    fleet: str
    release: int
    artifact: str
    port: int
    address: str
    created_at: str  # ISO 8601, when the record was first written
    pid: int | None = None  # None until the process exists
    start_time: int | None = None  # /proc/PID/stat field 22
    started_at: str | None = None  # ISO 8601
    config: str = ""  # the release's config digest (records before it was kept: "")

    @property
    def ref(self) -> str:
        return f"{self.pid}:{self.start_time}" if self.pid is not None else ""


def write(path: Path, record: InstanceRecord) -> None:
    atomic_write_json(path, dataclasses.asdict(record))


def _parse(data: Any) -> InstanceRecord | None:
    if not isinstance(data, dict):
        return None
    names = {f.name for f in dataclasses.fields(InstanceRecord)}
    try:
        return InstanceRecord(**{k: v for k, v in data.items() if k in names})
    except TypeError:  # a required field is missing
        return None


def read(path: Path) -> InstanceRecord | None:
    try:
        return _parse(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None


def read_all(directory: Path) -> list[InstanceRecord]:
    """Every readable record in ``directory``.

    An unreadable or corrupt record is skipped rather than failing the whole
    observation: its process, if any, is still found by the ``/proc`` scan.
    """
    if not directory.is_dir():
        return []
    found = (read(p) for p in sorted(directory.glob("*.json")))
    return [r for r in found if r is not None]
