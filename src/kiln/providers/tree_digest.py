"""Content digests of directory trees, shared by providers.

A tree's manifest maps each regular file and symlink (relative path) to its
type, executable bit and content sha256 (or link target); its digest is the
canonical digest of that manifest sorted by path. Mtimes, ownership, the order
files were written in and empty directories do not count, so the same content
always gives the same digest. The local provider names its artifacts by this
digest; the docker provider keys skip-rebake on it.

Pure reading: this module must never write to the trees it scans, and never
follows a symlink (a link is recorded by its target, not its content).
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from kiln.errors import PermanentProviderError
from kiln.model import canonical_digest

CHUNK = 1 << 20

Entry = dict[str, Any]  # {"type": "file", "exec": bool, "sha256": hex} | {"type": "symlink", ...}
Manifest = dict[str, Entry]


def manifest_digest(manifest: Manifest) -> str:
    return canonical_digest([[path, manifest[path]] for path in sorted(manifest)])


def walk(root: Path, skip: Callable[[str, str], bool]) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """(relative path, entry) of every regular file and symlink under ``root``.

    ``skip(path, name)`` is asked for every directory; True leaves it out.
    """
    stack = [""]
    while stack:
        rel = stack.pop()
        with os.scandir(root / rel if rel else root) as it:
            for e in it:
                path = f"{rel}/{e.name}" if rel else e.name
                if e.is_symlink() or e.is_file(follow_symlinks=False):
                    yield path, e
                elif e.is_dir(follow_symlinks=False) and not skip(path, e.name):
                    stack.append(path)
                # Sockets, fifos and devices are not content: they are left out.


def check_name(path: str, what: str = "file name") -> None:
    # Digests are computed over UTF-8 JSON; a name that is not UTF-8 has no
    # canonical encoding, so refuse it rather than guess one.
    try:
        path.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PermanentProviderError(f"{what} is not valid UTF-8: {path!r}") from exc


def file_entry(sha256: str, mode: int) -> Entry:
    return {"type": "file", "exec": bool(mode & stat.S_IXUSR), "sha256": sha256}


def link_entry(target: str) -> Entry:
    return {"type": "symlink", "target": target}


def scan(root: Path, skip: Callable[[str, str], bool] = lambda p, n: False) -> Manifest:
    """The manifest of a tree as it is now."""
    manifest: Manifest = {}
    for path, e in walk(root, skip):
        if e.is_symlink():
            manifest[path] = link_entry(os.readlink(e.path))
            continue
        h = hashlib.sha256()
        with open(e.path, "rb") as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
            mode = os.fstat(f.fileno()).st_mode
        manifest[path] = file_entry(h.hexdigest(), mode)
    return manifest
