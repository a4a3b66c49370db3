"""Small filesystem helpers for the local provider: atomic writes, safe names, OS errors.

Everything here works on paths under the state directory. It must never follow
a name it did not check into a path outside it: names that come from a spec or
from a process's environment pass through ``safe_component`` first.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import shutil
import stat
from pathlib import Path
from typing import Any

from kiln.errors import PermanentProviderError, ProviderError, TransientProviderError

# Errors a retry can cure: the machine is short of something for a moment.
_TRANSIENT_ERRNOS = frozenset(
    {errno.EAGAIN, errno.EBUSY, errno.EINTR, errno.EMFILE, errno.ENFILE, errno.ENOMEM}
)


def translate(exc: OSError, what: str) -> ProviderError:
    """A kiln error for an OS error; the caller raises it ``from exc``."""
    where = f" ({exc.filename})" if exc.filename else ""
    message = f"{what}: {exc.strerror or exc}{where}"
    if exc.errno in _TRANSIENT_ERRNOS:
        return TransientProviderError(message)
    return PermanentProviderError(message)


def is_safe_component(name: str) -> bool:
    return bool(name) and name not in (".", "..") and "/" not in name and "\0" not in name


def safe_component(name: str, what: str) -> str:
    """``name`` if it can be used as one path component, else a PermanentProviderError."""
    if not is_safe_component(name):
        raise PermanentProviderError(f"{what} {name!r} cannot be used as a directory name")
    return name


def atomic_write_json(path: Path, data: Any) -> None:
    """Write JSON so that readers see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, sort_keys=True, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def force_rmtree(path: Path) -> None:
    """Remove a tree even if it was made read-only (artifacts are); missing is fine."""
    if not path.exists() and not path.is_symlink():
        return
    # Without write permission on a directory a non-root user cannot unlink its
    # entries, so give directories back u+w first (never following symlinks).
    for dirpath, dirnames, _ in os.walk(path):
        for d in [dirpath, *(os.path.join(dirpath, n) for n in dirnames)]:
            st = os.lstat(d)
            if stat.S_ISDIR(st.st_mode):
                os.chmod(d, stat.S_IMODE(st.st_mode) | stat.S_IWUSR | stat.S_IXUSR)
    shutil.rmtree(path)
