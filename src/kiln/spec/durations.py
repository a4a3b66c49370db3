"""Durations as people write them in a spec: ``500ms``, ``1s``, ``10m``, ``1h30m``, or seconds."""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
PATTERN = r"^(\d+(\.\d+)?(ms|s|m|h|d))+$"


def parse_duration(value: object) -> float:
    """Seconds for a duration; raises ValueError with a message fit for the user."""
    if isinstance(value, bool):
        raise ValueError("must be a duration like 1s, 500ms or 10m")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and re.fullmatch(PATTERN, value.strip()):
        seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(value.strip()))
    else:
        raise ValueError(f"must be a duration like 1s, 500ms or 10m, not {value!r}")
    if seconds < 0:
        raise ValueError("must not be negative")
    return seconds


def format_duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 120:
        return f"{seconds:g}s"
    if seconds < 7200:
        return f"{seconds / 60:g}m"
    return f"{seconds / 3600:g}h"
