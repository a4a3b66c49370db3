"""Local artifacts: content-addressed, read-only snapshots of a build directory.

An artifact is ``artifacts/<hex>/`` under the state directory, where
``sha256:<hex>`` is the digest of a canonical listing of its regular files and
symlinks (relative path, type, executable bit, content sha256 or link target),
sorted by path. Mtimes, ownership, the order files were written in and empty
directories do not count, so the same content always gives the same digest.
``artifacts/<hex>.json`` (path -> entry) is the manifest ``changes()`` compares
a running instance's tree against.

This module must never modify an artifact once it is renamed into place: equal
digests have to mean equal bytes, and older releases keep running from these
trees. It never follows a symlink out of the tree it copies.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from kiln.errors import NotFound, PermanentProviderError
from kiln.model import FileChange
from kiln.providers.local.fsutil import atomic_write_json, force_rmtree, translate
from kiln.providers.tree_digest import CHUNK as _CHUNK
from kiln.providers.tree_digest import Manifest, manifest_digest
from kiln.providers.tree_digest import check_name as _check_name
from kiln.providers.tree_digest import file_entry as _file_entry
from kiln.providers.tree_digest import link_entry as _link_entry
from kiln.providers.tree_digest import scan as scan  # re-exported: provider.changes uses it
from kiln.providers.tree_digest import walk as _walk

# Never part of an artifact: kiln's own state, bytecode caches, version control.
SKIP_DIRS = frozenset({".kiln", "__pycache__", ".git"})

_DIGEST = re.compile(r"^sha256:([0-9a-f]{64})$")


def digest_hex(digest: str) -> str:
    """The hex part of a ``sha256:<hex>`` digest (also the artifact's directory name)."""
    m = _DIGEST.match(digest)
    if m is None:
        raise NotFound(f"not a local artifact digest: {digest!r}")
    return m.group(1)


def has_artifact(artifacts_dir: Path, digest: str) -> bool:
    """The artifact is baked and its files are still exactly what was baked."""
    try:
        hexd = digest_hex(digest)
    except NotFound:
        return False
    if not ((artifacts_dir / hexd).is_dir() and (artifacts_dir / f"{hexd}.json").is_file()):
        return False
    return intact(artifacts_dir, digest)


def intact(artifacts_dir: Path, digest: str) -> bool:
    """No file of the artifact was added, changed or deleted since it was baked.

    The artifact is read-only by mode (and by mount for its instances), but root
    can still write to it: checked before every launch, so a tampered artifact
    is never started again.
    """
    try:
        current = scan(artifacts_dir / digest_hex(digest))
        return not diff(load_manifest(artifacts_dir, digest), current)
    except (OSError, NotFound):
        return False


def load_manifest(artifacts_dir: Path, digest: str) -> Manifest:
    path = artifacts_dir / f"{digest_hex(digest)}.json"
    try:
        data: Manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise NotFound(f"artifact {digest} has no manifest at {path}") from exc
    except OSError as exc:
        raise translate(exc, "cannot read artifact manifest") from exc
    return data


def diff(manifest: Manifest, current: Manifest) -> list[FileChange]:
    """Files added, changed (content, type, exec bit, link target) or deleted."""
    changes = [FileChange(p, "added") for p in current.keys() - manifest.keys()]
    changes += [FileChange(p, "deleted") for p in manifest.keys() - current.keys()]
    changes += [
        FileChange(p, "changed")
        for p in manifest.keys() & current.keys()
        if manifest[p] != current[p]
    ]
    return sorted(changes, key=lambda c: c.path)


def _copy(src: Path, tmp: Path, skip: Callable[[str, str], bool]) -> Manifest:
    """Copy the tree into ``tmp`` and hash what was copied, in one pass.

    Hashing the bytes as they are written (rather than the source beforehand)
    means the digest describes the snapshot even if the build dir changes
    while we copy.
    """
    manifest: Manifest = {}
    for path, e in _walk(src, skip):
        _check_name(path)
        target = tmp / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if e.is_symlink():
            link = os.readlink(e.path)
            _check_name(link, "symlink target")
            os.symlink(link, target)
            manifest[path] = _link_entry(link)
            continue
        h = hashlib.sha256()
        with open(e.path, "rb") as fin:
            mode = os.fstat(fin.fileno()).st_mode
            with open(target, "wb") as fout:
                while chunk := fin.read(_CHUNK):
                    h.update(chunk)
                    fout.write(chunk)
        manifest[path] = _file_entry(h.hexdigest(), mode)
    return manifest


def _make_read_only(root: Path, manifest: Manifest) -> None:
    # A second line of defence behind the read-only mount: without the mount
    # namespace, file modes are what stops an instance writing its artifact.
    for path, entry in manifest.items():
        if entry["type"] == "file":
            os.chmod(root / path, 0o555 if entry["exec"] else 0o444)
    for dirpath, _, _ in os.walk(root):
        os.chmod(dirpath, 0o555)


def snapshot(build_dir: Path, artifacts_dir: Path, exclude: Path | None = None) -> str:
    """Snapshot ``build_dir`` into ``artifacts_dir/<hex>/``; return ``sha256:<hex>``.

    ``exclude`` (the state directory, if it lies inside the build dir) is left out.
    """
    if not build_dir.is_dir():
        raise PermanentProviderError(f"build directory {build_dir} does not exist or is not a dir")
    src = build_dir.resolve()
    excluded = exclude.resolve() if exclude is not None else None

    def skip(path: str, name: str) -> bool:
        return name in SKIP_DIRS or (excluded is not None and src / path == excluded)

    try:
        artifacts_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".bake-", dir=artifacts_dir))
    except OSError as exc:
        raise translate(exc, "cannot create the artifact store") from exc
    try:
        manifest = _copy(src, tmp, skip)
        digest = manifest_digest(manifest)
        hexd = digest_hex(digest)
        final = artifacts_dir / hexd
        # Manifest first: a dir without a manifest is not an artifact yet, and
        # the manifest is a pure function of the digest, so rewriting it is harmless.
        atomic_write_json(artifacts_dir / f"{hexd}.json", manifest)
        if final.is_dir():
            if intact(artifacts_dir, digest):
                return digest  # same content, same artifact: the temp copy is discarded
            # Tampered with since it was baked: keep it aside (the evidence drift
            # findings point at), and put the fresh copy in its place.
            aside = artifacts_dir / f"{hexd}.tampered-{time.time_ns()}"
            os.rename(final, aside)
        _make_read_only(tmp, manifest)
        try:
            os.rename(tmp, final)
        except OSError:
            if final.is_dir():  # a concurrent bake of the same content won the race
                return digest
            raise
        return digest
    except OSError as exc:
        raise translate(exc, f"cannot snapshot {build_dir}") from exc
    finally:
        # A leftover .bake-* dir wastes space but is never mistaken for an artifact.
        with contextlib.suppress(OSError):
            force_rmtree(tmp)
