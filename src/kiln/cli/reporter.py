"""Rich progress for the engine's reporter protocol."""

from __future__ import annotations

from rich.console import Console
from rich.status import Status

from kiln.model import StepRecord, StepStatus


class RichReporter:
    def __init__(self, console: Console) -> None:
        self.console = console
        self._status: Status | None = None

    def info(self, message: str) -> None:
        self.console.print(f"[dim]·[/] {message}")

    def step_started(self, record: StepRecord) -> None:
        self._stop()
        label = record.step.kind.replace("_", " ")
        self._status = self.console.status(f"{label} …")
        self._status.start()

    def step_finished(self, record: StepRecord) -> None:
        self._stop()
        label = record.step.kind.replace("_", " ")
        counts = getattr(record.step, "counts", None)
        if counts is not None:  # grow / shrink: each fleet's instance count
            fleets = ", ".join(f"{f} to {n}" for f, n in counts.items())
        else:
            fleets = ", ".join(getattr(record.step, "fleets", ()) or ())
        what = f"{label} {fleets}".strip()
        if record.status is StepStatus.OK:
            self.console.print(f"[green]✔[/] {what}: {record.detail}")
        else:
            self.console.print(f"[red]✘[/] {what}: {record.detail}")

    def progress(self, message: str) -> None:
        if self._status is not None:
            self._status.update(message)

    def _stop(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    def close(self) -> None:
        self._stop()
