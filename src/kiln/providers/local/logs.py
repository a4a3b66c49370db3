"""Instance logs: ``logs/<env>/<service>/<instance id>.log``, tailed and followed.

Read-only: this module never truncates, rotates or deletes a log (logs outlive
their instances so a failed deployment can be diagnosed).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

_BLOCK = 64 * 1024


def _tail(path: Path, n: int) -> tuple[list[bytes], bytes, int]:
    """The last ``n`` complete lines, the unterminated rest, and the end offset."""
    with open(path, "rb") as f:
        end = f.seek(0, os.SEEK_END)
        pos, data = end, b""
        # Read backwards until we have n complete lines (n+1 newlines) or the start.
        while pos > 0 and data.count(b"\n") <= n:
            step = min(_BLOCK, pos)
            pos -= step
            f.seek(pos)
            data = f.read(step) + data
    body, _, partial = data.rpartition(b"\n")
    lines = body.split(b"\n") if body or data.startswith(b"\n") else []
    if pos > 0 and lines:
        lines = lines[1:]  # the first line read may have started before pos
    return (lines[-n:] if n > 0 else []), partial, end


def _by_age(directory: Path) -> list[Path]:
    # Oldest first, so the newest instances' lines come last.
    files = [p for p in directory.glob("*.log") if p.is_file()]
    return sorted(files, key=lambda p: (p.stat().st_mtime, p.name))


def stream(directory: Path, *, tail: int, follow: bool, poll: float = 0.2) -> Iterator[str]:
    """Lines ``"<instance id> | <line>"`` of every log in ``directory``."""
    offsets: dict[Path, int] = {}
    partials: dict[Path, bytes] = {}

    def line(path: Path, raw: bytes) -> str:
        return f"{path.stem} | {raw.decode(errors='replace').rstrip(chr(13))}"

    if directory.is_dir():
        for path in _by_age(directory):
            lines, partial, end = _tail(path, tail)
            if follow:
                # An unterminated last line is still being written: hold it back.
                offsets[path], partials[path] = end, partial
            elif partial:
                lines = [*lines, partial][-tail:] if tail > 0 else []
            for raw in lines:
                yield line(path, raw)
    while follow:
        time.sleep(poll)
        if not directory.is_dir():
            continue
        for path in _by_age(directory):
            # A log that appeared after we started belongs to a new instance: all of it is new.
            start = offsets.get(path, 0)
            with open(path, "rb") as f:
                f.seek(start)
                data = partials.get(path, b"") + f.read()
                offsets[path] = f.tell()
            *complete, partials[path] = data.split(b"\n")
            for raw in complete:
                yield line(path, raw)
