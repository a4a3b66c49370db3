"""Deploys, rollbacks and promotions the controller runs for a caller, and their progress.

A job records what the engine reported (the same calls a terminal's reporter
gets), so a CLI following it over the API shows exactly what it would have
shown running the deploy itself. Jobs live in the controller's memory: the
deployment's own record and the audit log are what outlive it.
"""

from __future__ import annotations

import itertools
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from kiln.engine.reporter import Reporter
from kiln.errors import KilnError
from kiln.model import StepRecord, StepStatus, from_json, to_json
from kiln.model.steps import Step

# A runaway job must not grow the controller without bound; progress is
# transient, so only reports that print a line are kept.
MAX_REPORTS = 10_000
# Finished jobs kept for a late follower; the deployments' records outlive them all.
KEEP_FINISHED = 100


class JobState(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass
class Job:
    id: int
    kind: str  # deploy | rollback | promote
    env: str
    actor: str
    state: JobState = JobState.RUNNING
    message: str = ""
    progress: str = ""
    reports: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def view(self, since: int) -> dict[str, Any]:
        with self.lock:
            return {
                "id": self.id,
                "kind": self.kind,
                "env": self.env,
                "actor": self.actor,
                "state": self.state.value,
                "message": self.message,
                "progress": self.progress,
                "reports": self.reports[since:],
                "next": len(self.reports),
            }

    def report(self, entry: dict[str, Any]) -> None:
        with self.lock:
            if len(self.reports) < MAX_REPORTS:
                self.reports.append(entry)

    def end(self, state: JobState, message: str) -> None:
        with self.lock:
            self.state, self.message, self.progress = state, message, ""


class JobReporter:
    """The engine's reporter protocol, recorded into a job."""

    def __init__(self, job: Job) -> None:
        self.job = job

    def info(self, message: str) -> None:
        self.job.report({"info": message})

    def step_started(self, record: StepRecord) -> None:
        self.job.report({"started": _record_json(record)})

    def step_finished(self, record: StepRecord) -> None:
        self.job.report({"finished": _record_json(record)})

    def progress(self, message: str) -> None:
        with self.job.lock:
            self.job.progress = message


def replay(entry: dict[str, Any], reporter: Reporter) -> None:
    """Hand one recorded report to a reporter, as the engine did in the controller."""
    if "info" in entry:
        reporter.info(str(entry["info"]))
    elif "started" in entry:
        reporter.step_started(_record(entry["started"]))
    elif "finished" in entry:
        reporter.step_finished(_record(entry["finished"]))


def _record_json(record: StepRecord) -> dict[str, Any]:
    return {
        "seq": record.seq,
        "step": to_json(record.step, Step),
        "status": record.status.value,
        "detail": record.detail,
    }


def _record(data: dict[str, Any]) -> StepRecord:
    step: Step = from_json(Step, data["step"])
    return StepRecord(int(data["seq"]), step, StepStatus(data["status"]), str(data["detail"]))


class Jobs:
    """The controller's jobs; one running deploy, rollback or promotion per environment."""

    def __init__(self) -> None:
        self._jobs: dict[int, Job] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def get(self, job_id: int) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def start(self, kind: str, env: str, actor: str, work: Callable[[Reporter], str]) -> Job:
        """Run ``work`` in a thread of its own, reporting into the job. What it returns
        is the job's message; a ``KilnError`` it raises is the job's failure.
        Raises ``Busy`` if ``env`` has a job running."""
        with self._lock:
            for other in self._jobs.values():
                if other.env == env and other.state is JobState.RUNNING:
                    raise Busy(f"a {other.kind} of {env} is running here already (job {other.id})")
            job = Job(next(self._ids), kind, env, actor)
            self._jobs[job.id] = job
            finished = [j for j in self._jobs.values() if j.state is not JobState.RUNNING]
            for old in finished[:-KEEP_FINISHED]:  # dicts keep insertion order: oldest first
                del self._jobs[old.id]

        def run() -> None:
            try:
                job.end(JobState.SUCCEEDED, work(JobReporter(job)))
            except KilnError as e:
                job.end(JobState.FAILED, str(e))
            except Exception:  # a bug: say so to the caller, keep the controller up
                job.end(JobState.FAILED, f"kiln hit a bug:\n{traceback.format_exc()}")

        threading.Thread(target=run, name=f"kiln-job-{job.id}", daemon=True).start()
        return job


class Busy(Exception):
    pass
