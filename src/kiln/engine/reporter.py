"""How the engine tells its caller what is happening, without knowing how it is shown."""

from __future__ import annotations

from typing import Protocol

from kiln.model import StepRecord


class Reporter(Protocol):
    def info(self, message: str) -> None: ...

    def step_started(self, record: StepRecord) -> None: ...

    def step_finished(self, record: StepRecord) -> None: ...

    def progress(self, message: str) -> None:
        """A transient status line (e.g. health: 2/3 healthy)."""
        ...


class SilentReporter:
    def info(self, message: str) -> None:
        pass

    def step_started(self, record: StepRecord) -> None:
        pass

    def step_finished(self, record: StepRecord) -> None:
        pass

    def progress(self, message: str) -> None:
        pass


def describe_step(record: StepRecord) -> str:
    """One line for a finished step: what it did, to which fleets, and how it went."""
    label = record.step.kind.replace("_", " ")
    counts = getattr(record.step, "counts", None)
    if counts is not None:  # grow / shrink: each fleet's instance count
        fleets = ", ".join(f"{f} to {n}" for f, n in counts.items())
    else:
        fleets = ", ".join(getattr(record.step, "fleets", ()) or ())
    return f"{label} {fleets}".strip() + f": {record.detail}"
