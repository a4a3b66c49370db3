"""Capturing the evidence of a drifted instance before it is replaced: its changed files,
with diffs against the build context, and what its writable areas hold."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from kiln.drift import capture, source_path
from kiln.engine.context import Context
from kiln.model import FileChange, Instance
from kiln.model.drift import EVIDENCE_BYTES, Evidence, Finding
from kiln.providers.base import IMAGES, WRITABLE_AREAS
from kiln.providers.tree_digest import walk

# Files of a writable area kept as evidence, at most (each up to EVIDENCE_BYTES).
WRITABLE_MOST = 50


def with_evidence(ctx: Context, finding: Finding, instance: Instance) -> Finding:
    """``finding`` with each changed file's content and its diff against the build
    context, and the files of the instance's writable areas (local: its scratch dir):
    not drift by themselves (runtime data), but what a replacement would wipe."""
    provider = ctx.provider(finding.env)
    evidence = _changed_files(ctx, finding, instance) if finding.changes else []
    if WRITABLE_AREAS in provider.capabilities:
        for path, data in provider.writable_files(instance, EVIDENCE_BYTES + 1, WRITABLE_MOST):
            evidence.append(capture(FileChange(path, "added"), None, data, None))
    return replace(finding, evidence=tuple(evidence))


def _changed_files(ctx: Context, finding: Finding, instance: Instance) -> list[Evidence]:
    provider = ctx.provider(finding.env)
    context = _build_context(ctx, instance.service)
    # Names only: the context may be large, and nothing here needs its digests.
    files = {p for p, _ in walk(context, _skip)} if context is not None else set()
    # A local artifact is the build context itself; an image puts it somewhere inside.
    same_paths = IMAGES not in provider.capabilities
    evidence: list[Evidence] = []
    for change in finding.changes:
        if same_paths:
            source: str | None = change.path if context is not None else None
        else:
            source = source_path(change.path, files) if change.kind != "added" else None
        now = None
        if change.kind != "deleted":
            now = provider.read_file(instance, change.path, EVIDENCE_BYTES + 1)
        before = _read(context / source) if context is not None and source else None
        evidence.append(capture(change, source, now, before))
    return evidence


def _skip(path: str, name: str) -> bool:
    return name in (".git", ".kiln", "__pycache__", "node_modules")


def _build_context(ctx: Context, service: str) -> Path | None:
    svc = ctx.spec.services.get(service)
    if svc is None or svc.build is None:
        return None
    path = (ctx.spec_dir / svc.build).resolve()
    return path if path.is_dir() else None


def _read(path: Path) -> bytes | None:
    try:
        with path.open("rb") as f:
            return f.read(EVIDENCE_BYTES + 1)
    except OSError:
        return None
