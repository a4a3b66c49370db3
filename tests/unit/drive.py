"""Driving a pure strategy to its end, as the engine would, with chosen steps failing."""

from __future__ import annotations

from datetime import UTC, datetime

from kiln.model import StepRecord, StepStatus
from kiln.model.steps import Step
from kiln.strategies import Finish, Plan, decide

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def run(p: Plan, fail: str | None = None, at: tuple[int, ...] = (1,)) -> tuple[list[Step], Finish]:
    """Every step succeeds except those of kind ``fail`` whose count (from 1) is in ``at``."""
    log: list[StepRecord] = []
    seen = 0
    for seq in range(1, 200):
        decision = decide(p, log)
        if isinstance(decision, Finish):
            return [r.step for r in log], decision
        failing = False
        if decision.kind == fail:
            seen += 1
            failing = seen in at
        status = StepStatus.FAILED if failing else StepStatus.OK
        log.append(StepRecord(seq, decision, status, "boom" if failing else "", NOW))
    raise AssertionError("strategy did not finish")
