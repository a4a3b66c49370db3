"""Controller jobs: one per environment, their end states, and reports that replay exactly."""

from __future__ import annotations

import threading

import pytest

from kiln.api.jobs import KEEP_FINISHED, Busy, JobReporter, Jobs, JobState, replay
from kiln.engine.reporter import Reporter
from kiln.errors import KilnError
from kiln.model import StepRecord, StepStatus
from kiln.model.steps import Grow, Launch, SetRoutes


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def info(self, message: str) -> None:
        self.calls.append(("info", message))

    def step_started(self, record: StepRecord) -> None:
        self.calls.append(("started", record))

    def step_finished(self, record: StepRecord) -> None:
        self.calls.append(("finished", record))

    def progress(self, message: str) -> None:
        self.calls.append(("progress", message))


def wait(jobs: Jobs, job_id: int) -> dict[str, object]:
    for _ in range(500):
        found = jobs.get(job_id)
        assert found is not None
        if found.state is not JobState.RUNNING:
            return found.view(0)
        threading.Event().wait(0.01)
    raise AssertionError("job never ended")


def test_reports_replay_into_another_reporter_unchanged() -> None:
    records = [
        StepRecord(0, Launch(("web-2",)), StepStatus.OK, "3 launched"),
        StepRecord(1, SetRoutes({"web": {"web-1": 80, "web-2": 20}}), StepStatus.FAILED, "no"),
        StepRecord(2, Grow({"web-1": 3}), StepStatus.OK, "grown"),
    ]
    release = threading.Event()

    def work(reporter: Reporter) -> str:
        reporter.info("baking web")
        reporter.progress("health: 1/3")
        for r in records:
            reporter.step_started(r)
            reporter.step_finished(r)
        release.wait(5)
        return "done"

    jobs = Jobs()
    job = jobs.start("deploy", "dev", "alice", work)
    view = job.view(0)
    first = Recorder()
    release.set()
    final = wait(jobs, job.id)
    assert final["state"] == "succeeded"
    assert final["message"] == "done"
    for entry in final["reports"]:  # type: ignore[attr-defined]
        replay(entry, first)
    assert first.calls[0] == ("info", "baking web")
    finished = [c[1] for c in first.calls if c[0] == "finished"]
    assert finished == records  # steps, fleets, weights, status and detail survive
    assert final["next"] == 1 + 2 * len(records)
    assert job.view(final["next"])["reports"] == []
    assert view["state"] == "running"


def test_one_running_job_per_environment() -> None:
    release = threading.Event()
    jobs = Jobs()
    running = jobs.start("deploy", "dev", "a", lambda r: str(release.wait(5)))
    with pytest.raises(Busy, match="a deploy of dev is running here already"):
        jobs.start("rollback", "dev", "b", lambda r: "")
    other = jobs.start("deploy", "prod", "a", lambda r: "prod done")  # another environment
    assert wait(jobs, other.id)["message"] == "prod done"
    release.set()
    wait(jobs, running.id)
    again = jobs.start("rollback", "dev", "b", lambda r: "rolled back")  # free again
    assert wait(jobs, again.id)["state"] == "succeeded"


def test_errors_and_bugs_end_a_job_as_failed() -> None:
    jobs = Jobs()

    def refused(reporter: Reporter) -> str:
        raise KilnError("release 99 not found")

    def bug(reporter: Reporter) -> str:
        raise ZeroDivisionError("oops")

    view = wait(jobs, jobs.start("rollback", "dev", "a", refused).id)
    assert (view["state"], view["message"]) == ("failed", "release 99 not found")
    view = wait(jobs, jobs.start("deploy", "dev", "a", bug).id)
    assert view["state"] == "failed"
    assert "kiln hit a bug" in str(view["message"])
    assert "ZeroDivisionError" in str(view["message"])


def test_reports_are_capped() -> None:
    jobs = Jobs()
    job = jobs.start("deploy", "dev", "a", lambda r: "")
    reporter = JobReporter(job)
    for i in range(10_005):
        reporter.info(str(i))
    assert len(job.view(0)["reports"]) == 10_000


def test_only_the_latest_finished_jobs_are_kept() -> None:
    jobs = Jobs()
    ids = []
    for _ in range(KEEP_FINISHED + 5):
        job = jobs.start("deploy", "dev", "a", lambda r: "done")
        wait(jobs, job.id)
        ids.append(job.id)
    latest = jobs.start("deploy", "dev", "a", lambda r: "done")
    assert jobs.get(latest.id) is latest
    assert [i for i in ids if jobs.get(i) is not None] == ids[-KEEP_FINISHED:]
