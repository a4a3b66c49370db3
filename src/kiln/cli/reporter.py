"""Rich progress for the engine's reporter protocol."""

from __future__ import annotations

from rich.console import Console
from rich.status import Status

from kiln.engine.reporter import describe_step
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
        mark = "[green]✔[/]" if record.status is StepStatus.OK else "[red]✘[/]"
        self.console.print(f"{mark} {describe_step(record)}")

    def progress(self, message: str) -> None:
        if self._status is not None:
            self._status.update(message)

    def _stop(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    def close(self) -> None:
        self._stop()
