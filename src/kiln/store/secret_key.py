"""The state directory's secret-digest key, kept in a file beside the database.

Secret versions are recorded as HMACs under this key, not plain hashes, so a
digest shown by ``kiln status --json`` cannot be brute-forced back into a short
secret by someone without the state directory. The file is created once,
mode 0600, and must never be printed or logged.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from kiln.errors import StoreError

KEY_BYTES = 32


def path_for(database: Path) -> Path:
    return database.with_name(database.name + ".secret-key")


def load_or_create(path: Path) -> bytes:
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    key = secrets.token_bytes(KEY_BYTES)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # never replaces a key another process just created
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
        return _read(path)
    except OSError as e:
        raise StoreError(f"cannot create the secret-digest key {path}: {e.strerror}") from e


def _read(path: Path) -> bytes:
    data = path.read_bytes()
    if len(data) != KEY_BYTES:
        raise StoreError(f"the secret-digest key {path} is damaged ({len(data)} bytes)")
    return data
