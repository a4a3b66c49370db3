"""Deployments and their step log: what lets a restarted controller resume.

The engine records a step before running it (``begin_step``, status started)
and after (``finish_step``); each record is committed on its own, so a crash
between the two leaves a started step to re-run. Nothing here may delete a
deployment or a step, or reopen a finished deployment.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, Row, func, insert, select, update

from kiln.errors import NotFound, StoreError
from kiln.model.codec import from_json, to_json
from kiln.model.deployment import Deployment, DeploymentStatus, StepRecord, StepStatus
from kiln.model.steps import Step
from kiln.store.db import utcnow
from kiln.store.tables import deployment_steps as steps_table
from kiln.store.tables import deployments as deployments_table

_D = deployments_table.c
_S = steps_table.c


def create(
    conn: Connection,
    *,
    app: str,
    env: str,
    release: int,
    from_release: int | None,
    strategy: str,
    fleets: dict[str, str],
    previous: dict[str, str | None],
) -> int:
    result = conn.execute(
        insert(deployments_table).values(
            app=app,
            env=env,
            release=release,
            from_release=from_release,
            strategy=strategy,
            status=DeploymentStatus.RUNNING.value,
            fleets=json.dumps(fleets, sort_keys=True),
            previous=json.dumps(previous, sort_keys=True),
            reason="",
            started_at=utcnow(),
            finished_at=None,
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    deployment_id: int = key[0]
    return deployment_id


def get(conn: Connection, deployment_id: int) -> Deployment:
    row = conn.execute(select(deployments_table).where(_D.id == deployment_id)).one_or_none()
    if row is None:
        raise NotFound(f"deployment {deployment_id} not found")
    return _deployment(conn, row)


def running(conn: Connection, app: str, env: str) -> Deployment | None:
    row = conn.execute(
        select(deployments_table)
        .where(_D.app == app, _D.env == env, _D.status == DeploymentStatus.RUNNING.value)
        .order_by(_D.id.desc())
        .limit(1)
    ).one_or_none()
    return None if row is None else _deployment(conn, row)


def of_env(conn: Connection, app: str, env: str, limit: int) -> list[Deployment]:
    rows = conn.execute(
        select(deployments_table)
        .where(_D.app == app, _D.env == env)
        .order_by(_D.id.desc())
        .limit(limit)
    )
    return [_deployment(conn, row) for row in rows]


def begin_step(conn: Connection, deployment_id: int, step: Step) -> StepRecord:
    get(conn, deployment_id)  # NotFound before anything is written
    last = conn.execute(
        select(func.max(_S.seq)).where(_S.deployment_id == deployment_id)
    ).scalar_one_or_none()
    seq = (last or 0) + 1
    data = to_json(step, Step)
    conn.execute(
        insert(steps_table).values(
            deployment_id=deployment_id,
            seq=seq,
            kind=data["kind"],
            step=json.dumps(data, sort_keys=True),
            status=StepStatus.STARTED.value,
            detail="",
            started_at=utcnow(),
            finished_at=None,
        )
    )
    return _step_record(conn, deployment_id, seq)


def finish_step(
    conn: Connection, deployment_id: int, seq: int, status: StepStatus, detail: str
) -> StepRecord:
    if status == StepStatus.STARTED:
        raise ValueError("finish_step needs a final status (ok or failed), not started")
    _step_record(conn, deployment_id, seq)  # NotFound
    conn.execute(
        update(steps_table)
        .where(_S.deployment_id == deployment_id, _S.seq == seq)
        .values(status=status.value, detail=detail, finished_at=utcnow())
    )
    return _step_record(conn, deployment_id, seq)


def finish(
    conn: Connection, deployment_id: int, status: DeploymentStatus, reason: str
) -> Deployment:
    if status == DeploymentStatus.RUNNING:
        raise ValueError("finish_deployment needs a final status (succeeded or failed)")
    deployment = get(conn, deployment_id)
    if deployment.status == status:
        return deployment  # finishing twice (a resumed controller) changes nothing
    if deployment.status != DeploymentStatus.RUNNING:
        raise StoreError(
            f"deployment {deployment_id} already finished ({deployment.status}),"
            f" cannot mark it {status}"
        )
    conn.execute(
        update(deployments_table)
        .where(_D.id == deployment_id)
        .values(status=status.value, reason=reason, finished_at=utcnow())
    )
    return get(conn, deployment_id)


def set_progress(conn: Connection, deployment_id: int, progress: dict[str, Any] | None) -> None:
    value = None if progress is None else json.dumps(progress, sort_keys=True)
    conn.execute(update(deployments_table).where(_D.id == deployment_id).values(progress=value))


def _step_record(conn: Connection, deployment_id: int, seq: int) -> StepRecord:
    row = conn.execute(
        select(steps_table).where(_S.deployment_id == deployment_id, _S.seq == seq)
    ).one_or_none()
    if row is None:
        raise NotFound(f"step {seq} of deployment {deployment_id} not found")
    return _record(row)


def _record(row: Row[Any]) -> StepRecord:
    step: Step = from_json(Step, json.loads(row.step))
    return StepRecord(
        seq=row.seq,
        step=step,
        status=StepStatus(row.status),
        detail=row.detail,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


def _deployment(conn: Connection, row: Row[Any]) -> Deployment:
    records = conn.execute(select(steps_table).where(_S.deployment_id == row.id).order_by(_S.seq))
    return Deployment(
        id=row.id,
        app=row.app,
        env=row.env,
        release=row.release,
        from_release=row.from_release,
        strategy=row.strategy,
        status=DeploymentStatus(row.status),
        fleets=json.loads(row.fleets),
        previous=json.loads(row.previous),
        reason=row.reason,
        started_at=row.started_at,
        finished_at=row.finished_at,
        steps=tuple(_record(r) for r in records),
        progress=json.loads(row.progress) if row.progress else None,
    )
