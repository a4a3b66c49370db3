"""The audit anchor: the last event's (seq, hash), kept in a file beside the database.

A hash chain alone cannot show that its newest rows were deleted: the shorter
chain is still valid. The anchor records where the chain must end, outside the
table, so ``verify_events`` can tell. It is written only while the database's
write lock is held (inside the append's transaction), so anchors of concurrent
appenders can never be written out of order. It must never hold anything but
a sequence number and a hash.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kiln.errors import AuditError, StoreError


@dataclass(frozen=True)
class Head:
    seq: int
    hash: str


def path_for(database: Path) -> Path:
    """``kiln.db`` -> ``kiln.db.audit.head``: one anchor per database file."""
    return database.with_name(database.name + ".audit.head")


def read(path: Path) -> Head | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as e:
        raise StoreError(f"cannot read the audit anchor {path}: {e}") from e
    try:
        data = json.loads(text)
        return Head(seq=int(data["seq"]), hash=str(data["hash"]))
    except (ValueError, KeyError, TypeError) as e:
        raise AuditError(f"the audit anchor {path} is unreadable: {e}") from e


def write(path: Path, head: Head) -> None:
    """Replace the anchor atomically: a reader sees the old one or the new one, never half."""
    data = json.dumps({"seq": head.seq, "hash": head.hash}) + "\n"
    try:
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise StoreError(f"cannot write the audit anchor {path}: {e}") from e
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise StoreError(f"cannot write the audit anchor {path}: {e}") from e
        raise


def restore(path: Path, ours: Head, previous: Head | None) -> None:
    """Undo our write after our append was rolled back, unless another append replaced it.

    Best effort: the check and the write are not atomic, but this only runs
    when a commit failed after the anchor was written, which is rare already.
    """
    if read(path) != ours:
        return
    if previous is None:
        path.unlink(missing_ok=True)
    else:
        write(path, previous)
