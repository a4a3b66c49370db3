"""Capturing the evidence of an in-instance change before the instance is replaced."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from kiln.drift import capture, source_path
from kiln.engine.context import Context
from kiln.model import Instance
from kiln.model.drift import EVIDENCE_BYTES, Evidence, Finding
from kiln.providers.base import IMAGES
from kiln.providers.tree_digest import walk


def with_evidence(ctx: Context, finding: Finding, instance: Instance) -> Finding:
    """``finding`` with each changed file's content and its diff against the build context."""
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
    return replace(finding, evidence=tuple(evidence))


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
