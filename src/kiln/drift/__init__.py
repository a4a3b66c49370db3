"""Drift detection: pure comparisons of what kiln put there with what is there."""

from kiln.drift.compare import (
    Expected,
    compare,
    compare_listeners,
    compare_routes,
    listener_of,
    runtime_drift,
    stray_backends,
)
from kiln.drift.evidence import capture, patch, source_path

__all__ = [
    "Expected",
    "capture",
    "compare",
    "compare_listeners",
    "compare_routes",
    "listener_of",
    "patch",
    "runtime_drift",
    "source_path",
    "stray_backends",
]
