"""Drift detection: pure comparisons of what kiln put there with what is there."""

from kiln.drift.compare import Expected, compare, compare_routes

__all__ = ["Expected", "compare", "compare_routes"]
