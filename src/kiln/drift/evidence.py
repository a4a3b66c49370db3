"""Evidence of an in-instance change, and the patch that turns it into code. Pure."""

from __future__ import annotations

import difflib
from collections.abc import Collection, Sequence

from kiln.model import FileChange
from kiln.model.drift import EVIDENCE_BYTES, Evidence


def source_path(path: str, context: Collection[str]) -> str | None:
    """The build-context file ``path`` maps to: the longest tail of it that is one.

    ``/app/templates/index.html`` maps to ``templates/index.html`` when the build
    context holds it (``COPY . /app``); a local artifact's paths are the
    context's own.
    """
    parts = [p for p in path.split("/") if p]
    for i in range(len(parts)):
        tail = "/".join(parts[i:])
        if tail in context:
            return tail
    return None


def _text(data: bytes | None) -> str | None:
    if data is None or b"\0" in data:
        return None
    try:
        return data.decode()
    except UnicodeDecodeError:
        return None


def capture(
    change: FileChange, source: str | None, now: bytes | None, before: bytes | None
) -> Evidence:
    """``now``: the file in the instance (None: deleted or unreadable), read with one
    byte past EVIDENCE_BYTES; ``before``: the build context's file, if any."""
    truncated = now is not None and len(now) > EVIDENCE_BYTES
    kept = now[:EVIDENCE_BYTES] if now is not None else None
    text = _text(kept)
    binary = kept is not None and text is None
    diff = ""
    old_text = _text(before)
    if (
        source is not None
        and not binary
        and not truncated
        and (before is None or old_text is not None)
    ):
        a = (old_text or "").splitlines(keepends=True)
        b = (text or "").splitlines(keepends=True)
        lines = difflib.unified_diff(
            a,
            b,
            fromfile=f"a/{source}" if before is not None else "/dev/null",
            tofile=f"b/{source}" if change.kind != "deleted" else "/dev/null",
        )
        # A last line without a newline must say so, or patch adds one.
        diff = "".join(
            ln if ln.endswith("\n") else ln + "\n\\ No newline at end of file\n" for ln in lines
        )
    return Evidence(
        path=change.path,
        kind=change.kind,
        source=source,
        content=text,
        size=len(now) if now is not None else 0,
        binary=binary,
        truncated=truncated,
        diff=diff,
    )


def patch(evidence: Sequence[Evidence]) -> str:
    """One patch for the build context (``patch -p1`` or ``git apply`` in it)."""
    return "".join(e.diff for e in evidence if e.diff)
