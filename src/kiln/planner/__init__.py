"""The planner: what a deploy would change, computed from data only (no I/O)."""

from kiln.planner.diff import ServiceDiff, diff_service
from kiln.planner.release_plan import ReleasePlan, ServiceChange, plan_release

__all__ = ["ReleasePlan", "ServiceChange", "ServiceDiff", "diff_service", "plan_release"]
