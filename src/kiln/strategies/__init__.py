"""Deployment strategies: pure functions from a deployment's progress to its next step.

A strategy never does I/O. It reads the step log (what ran, and how it ended)
and returns the next ``Step`` or a ``Finish``. Because the log is persisted
before and after every step, the same function resumes a deployment that a
killed controller left half-way.
"""

from kiln.strategies.base import Finish, Plan, decide

__all__ = ["Finish", "Plan", "decide"]
