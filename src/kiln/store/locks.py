"""The per-environment deploy lock: one row per (app, env), held under a lease.

Every function here must run in a write transaction: acquiring reads the
current holder and then replaces it, which must not interleave with another
process doing the same. A lease that has expired belongs to nobody, so a
crashed deploy never wedges an environment. Nothing here may take a lock that
is validly held by someone else unless the caller names that holder
(``steal_from``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, delete, insert, select, update

from kiln.errors import LockHeld
from kiln.model.lock import LockHolder
from kiln.store.db import utcnow
from kiln.store.tables import locks

_L = locks.c


def acquire(
    conn: Connection,
    app: str,
    env: str,
    holder: LockHolder,
    lease_seconds: float,
    steal_from: str | None,
) -> None:
    now = utcnow()
    row = _row(conn, app, env)
    if row is not None:
        ours = row.holder_id == holder.id  # re-acquiring is a renewal
        expired = row.expires_at <= now
        stolen = steal_from is not None and row.holder_id == steal_from
        if not (ours or expired or stolen):
            raise LockHeld(env, _holder(row).describe())
        conn.execute(delete(locks).where(_L.app == app, _L.env == env))
    conn.execute(
        insert(locks).values(
            app=app,
            env=env,
            holder_id=holder.id,
            pid=holder.pid,
            host=holder.host,
            user=holder.user,
            command=holder.command,
            started_at=holder.started_at,
            expires_at=now + timedelta(seconds=lease_seconds),
        )
    )


def renew(conn: Connection, app: str, env: str, holder_id: str, lease_seconds: float) -> bool:
    # Still ours even if the lease ran out, as long as nobody took it meanwhile.
    changed = conn.execute(
        update(locks)
        .where(_L.app == app, _L.env == env, _L.holder_id == holder_id)
        .values(expires_at=utcnow() + timedelta(seconds=lease_seconds))
    ).rowcount
    return bool(changed)


def release(conn: Connection, app: str, env: str, holder_id: str) -> None:
    conn.execute(delete(locks).where(_L.app == app, _L.env == env, _L.holder_id == holder_id))


def holder(conn: Connection, app: str, env: str) -> tuple[LockHolder, datetime] | None:
    row = _row(conn, app, env)
    return None if row is None else (_holder(row), row.expires_at)


def _row(conn: Connection, app: str, env: str) -> Row[Any] | None:
    return conn.execute(select(locks).where(_L.app == app, _L.env == env)).one_or_none()


def _holder(row: Row[Any]) -> LockHolder:
    return LockHolder(
        id=row.holder_id,
        pid=row.pid,
        host=row.host,
        user=row.user,
        command=row.command,
        started_at=row.started_at,
    )
