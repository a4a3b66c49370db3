"""Model factories and raw-SQL access for the store's tests."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from kiln.model import (
    CanaryStep,
    Fleet,
    FleetState,
    HealthCheck,
    LockHolder,
    Release,
    ServiceRelease,
    StrategyConfig,
)

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def raw_sql(db_path: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Run SQL on the file behind kiln's back, as a tamperer (or a curious human) would."""
    conn = sqlite3.connect(db_path)
    try:
        rows = conn.execute(sql, params).fetchall()
        conn.commit()
        return rows
    finally:
        conn.close()


def make_service(name: str = "web", artifact: str = "sha256:" + "a" * 64) -> ServiceRelease:
    return ServiceRelease(
        service=name,
        artifact=artifact,
        command=("python", "-m", "http.server", "${PORT}"),
        port=8000,
        replicas=2,
        env={"MODE": "prod", "EMPTY": ""},
        secrets={"DB_PASSWORD": "sha256:" + "b" * 64},
        health=HealthCheck(path="/ready", interval=0.5, timeout=2.0, healthy_after=3),
        volumes={"data": "/var/lib/app"},
        strategy=StrategyConfig(
            type="canary",
            steps=(CanaryStep(weight=10, pause=30.0), CanaryStep(weight=50, manual=True)),
        ),
        route="web.example",
    )


def make_release(app: str = "hello", env: str = "dev", author: str = "ann@host") -> Release:
    services = {"web": make_service(), "worker": make_service("worker", "sha256:" + "c" * 64)}
    return Release(
        app=app,
        env=env,
        number=0,
        services=services,
        config_digest="sha256:" + "d" * 64,
        spec_digest="sha256:" + "e" * 64,
        commit="0123456789abcdef0123456789abcdef01234567",
        dirty=False,
        author=author,
        created_at=T0,
        reason="deploy",
        provider="local",
    )


def make_fleet(
    service: str = "web",
    release: int = 1,
    *,
    app: str = "hello",
    env: str = "dev",
    state: FleetState = FleetState.LAUNCHING,
    created_at: datetime = T0,
) -> Fleet:
    return Fleet(
        id=Fleet.make_id(app, env, service, release),
        app=app,
        env=env,
        service=service,
        release=release,
        artifact="sha256:" + "a" * 64,
        config_digest="sha256:" + "f" * 64,
        replicas=3,
        state=state,
        created_at=created_at,
    )


def make_holder(holder_id: str = "h1", user: str = "ann", pid: int = 4242) -> LockHolder:
    return LockHolder(id=holder_id, pid=pid, host="box", user=user, command="deploy", started_at=T0)
