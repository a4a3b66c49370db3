"""Drift detection: pure comparisons of what kiln put there with what is there."""

from kiln.drift.compare import Expected, compare, compare_routes
from kiln.drift.evidence import capture, patch, source_path

__all__ = ["Expected", "capture", "compare", "compare_routes", "patch", "source_path"]
