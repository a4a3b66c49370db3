"""Deployments and their step log: what a restarted controller resumes from."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln.errors import NotFound, StoreError
from kiln.model import (
    Deployment,
    DeploymentStatus,
    Destroy,
    Launch,
    Retain,
    Retire,
    SetRoutes,
    Step,
    StepStatus,
    WaitHealthy,
)
from kiln.store import Store
from tests.store.factories import raw_sql

FLEETS = {"web": "hello.dev.web.r2", "worker": "hello.dev.worker.r2"}
PREVIOUS: dict[str, str | None] = {"web": "hello.dev.web.r1", "worker": None}

EVERY_KIND: list[Step] = [
    Launch(fleets=("hello.dev.web.r2", "hello.dev.worker.r2")),
    WaitHealthy(fleets=("hello.dev.web.r2",)),
    SetRoutes(weights={"web": {"hello.dev.web.r1": 90, "hello.dev.web.r2": 10}}),
    Retain(fleets=("hello.dev.web.r1",), seconds=600.0),
    Retire(fleets=("hello.dev.web.r1",)),
    Destroy(fleets=("hello.dev.worker.r2",)),
]


def deploy(store: Store, env: str = "dev", release: int = 2) -> Deployment:
    return store.create_deployment(
        "hello", env, release, release - 1, "blue-green", FLEETS, PREVIOUS
    )


def test_create_and_get(store: Store) -> None:
    d = deploy(store)
    assert (d.app, d.env, d.release, d.from_release, d.strategy) == (
        "hello",
        "dev",
        2,
        1,
        "blue-green",
    )
    assert d.status == DeploymentStatus.RUNNING
    assert (d.fleets, d.previous, d.steps, d.reason) == (FLEETS, PREVIOUS, (), "")
    assert d.started_at is not None
    assert d.started_at.tzinfo is not None
    assert d.finished_at is None
    assert store.get_deployment(d.id) == d


def test_first_deployment_has_no_from_release(store: Store) -> None:
    d = store.create_deployment("hello", "dev", 1, None, "rolling", {"web": "f"}, {"web": None})
    assert store.get_deployment(d.id).from_release is None


def test_unknown_deployment_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound, match=r"^deployment 42 not found$"):
        store.get_deployment(42)
    with pytest.raises(NotFound, match="deployment 42 not found"):
        store.begin_step(42, EVERY_KIND[0])
    with pytest.raises(NotFound, match="deployment 42 not found"):
        store.finish_deployment(42, DeploymentStatus.FAILED)


def test_steps_of_every_kind_round_trip_in_order(store: Store) -> None:
    d = deploy(store)
    for i, step in enumerate(EVERY_KIND, start=1):
        started = store.begin_step(d.id, step)
        assert (started.seq, started.step, started.status) == (i, step, StepStatus.STARTED)
        assert started.finished_at is None
        done = store.finish_step(d.id, i, StepStatus.OK, detail=f"step {i} done")
        assert (done.status, done.detail, done.step) == (StepStatus.OK, f"step {i} done", step)
        assert done.started_at is not None
        assert done.finished_at is not None
        assert done.started_at <= done.finished_at
    steps = store.get_deployment(d.id).steps
    assert [s.step for s in steps] == EVERY_KIND
    assert [type(s.step) for s in steps] == [type(s) for s in EVERY_KIND]
    assert [s.seq for s in steps] == list(range(1, len(EVERY_KIND) + 1))


def test_a_started_step_is_durable_before_it_finishes(store: Store, db_path: Path) -> None:
    d = deploy(store)
    store.begin_step(d.id, EVERY_KIND[0])
    # what a controller restarted right now would find
    with Store.open(db_path) as other:
        running = other.running_deployment("hello", "dev")
        assert running is not None
        assert [(s.seq, s.status) for s in running.steps] == [(1, StepStatus.STARTED)]


def test_step_sequences_are_per_deployment(store: Store) -> None:
    a, b = deploy(store), deploy(store, env="prod")
    assert store.begin_step(a.id, EVERY_KIND[0]).seq == 1
    assert store.begin_step(b.id, EVERY_KIND[0]).seq == 1
    assert store.begin_step(a.id, EVERY_KIND[1]).seq == 2


def test_finish_unknown_step_is_not_found(store: Store) -> None:
    d = deploy(store)
    with pytest.raises(NotFound, match=f"^step 3 of deployment {d.id} not found$"):
        store.finish_step(d.id, 3, StepStatus.OK)


def test_finish_step_needs_a_final_status(store: Store) -> None:
    d = deploy(store)
    store.begin_step(d.id, EVERY_KIND[0])
    with pytest.raises(ValueError, match="final status"):
        store.finish_step(d.id, 1, StepStatus.STARTED)


def test_failed_step_keeps_its_detail(store: Store) -> None:
    d = deploy(store)
    store.begin_step(d.id, EVERY_KIND[1])
    store.finish_step(d.id, 1, StepStatus.FAILED, "web-2 never became healthy")
    (step,) = store.get_deployment(d.id).steps
    assert (step.status, step.detail) == (StepStatus.FAILED, "web-2 never became healthy")


def test_running_deployment(store: Store) -> None:
    assert store.running_deployment("hello", "dev") is None
    d = deploy(store)
    other = deploy(store, env="prod")
    running = store.running_deployment("hello", "dev")
    assert running is not None
    assert running.id == d.id
    finished = store.finish_deployment(d.id, DeploymentStatus.SUCCEEDED)
    assert finished.status == DeploymentStatus.SUCCEEDED
    assert finished.finished_at is not None
    assert store.running_deployment("hello", "dev") is None
    prod = store.running_deployment("hello", "prod")
    assert prod is not None
    assert prod.id == other.id


def test_finish_deployment_records_the_reason(store: Store) -> None:
    d = deploy(store)
    failed = store.finish_deployment(d.id, DeploymentStatus.FAILED, "health check failed")
    assert (failed.status, failed.reason) == (DeploymentStatus.FAILED, "health check failed")
    assert store.get_deployment(d.id) == failed


def test_finishing_twice_the_same_way_is_a_no_op(store: Store) -> None:
    d = deploy(store)
    first = store.finish_deployment(d.id, DeploymentStatus.FAILED, "first")
    assert store.finish_deployment(d.id, DeploymentStatus.FAILED, "second") == first


def test_a_finished_deployment_cannot_change_its_outcome(store: Store) -> None:
    d = deploy(store)
    store.finish_deployment(d.id, DeploymentStatus.FAILED)
    with pytest.raises(StoreError, match=r"already finished \(failed\)"):
        store.finish_deployment(d.id, DeploymentStatus.SUCCEEDED)
    with pytest.raises(ValueError, match="final status"):
        store.finish_deployment(d.id, DeploymentStatus.RUNNING)


def test_list_deployments_newest_first_with_limit(store: Store) -> None:
    ids = [deploy(store, release=r).id for r in range(2, 7)]
    deploy(store, env="prod")
    assert [d.id for d in store.list_deployments("hello", "dev")] == ids[::-1]
    assert [d.id for d in store.list_deployments("hello", "dev", limit=2)] == ids[:-3:-1]
    assert store.list_deployments("hello", "qa") == []


def test_steps_are_stored_as_json_with_their_kind(store: Store, db_path: Path) -> None:
    d = deploy(store)
    store.begin_step(d.id, EVERY_KIND[2])
    [(kind, step)] = raw_sql(db_path, "SELECT kind, step FROM deployment_steps")
    assert kind == "set_routes"
    assert '"weights"' in str(step)
