"""Releases and which one an environment serves: rows written once, never updated.

Numbers per (app, env) start at 1 with no gaps; ``create`` must be called in a
write transaction so the read of the highest number and the insert of the next
one are atomic. Nothing here may update or delete a release row.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, Row, func, insert, select, update

from kiln.errors import NotFound
from kiln.model.codec import from_json, to_json
from kiln.model.release import Promotion, Release, ServiceRelease
from kiln.store.db import utcnow
from kiln.store.tables import current_releases, releases

_SERVICES = dict[str, ServiceRelease]


def create(conn: Connection, release: Release) -> Release:
    latest = conn.execute(
        select(func.max(releases.c.number)).where(
            releases.c.app == release.app, releases.c.env == release.env
        )
    ).scalar_one_or_none()
    number = (latest or 0) + 1
    conn.execute(
        insert(releases).values(
            app=release.app,
            env=release.env,
            number=number,
            services=json.dumps(to_json(release.services, _SERVICES), sort_keys=True),
            config_digest=release.config_digest,
            spec_digest=release.spec_digest,
            commit=release.commit,
            dirty=release.dirty,
            author=release.author,
            created_at=release.created_at,
            reason=release.reason,
            provider=release.provider,
            promotion=(
                json.dumps(to_json(release.promotion), sort_keys=True)
                if release.promotion
                else None
            ),
        )
    )
    return get(conn, release.app, release.env, number)


def get(conn: Connection, app: str, env: str, number: int) -> Release:
    row = conn.execute(
        select(releases).where(
            releases.c.app == app, releases.c.env == env, releases.c.number == number
        )
    ).one_or_none()
    if row is None:
        found = latest(conn, app, env)
        known = f"latest is {found.number}" if found else "it has no releases"
        raise NotFound(f"release {number} of {app}/{env} not found ({known})")
    return _release(row)


def latest(conn: Connection, app: str, env: str) -> Release | None:
    row = conn.execute(
        select(releases)
        .where(releases.c.app == app, releases.c.env == env)
        .order_by(releases.c.number.desc())
        .limit(1)
    ).one_or_none()
    return None if row is None else _release(row)


def all_of(conn: Connection, app: str, env: str) -> list[Release]:
    rows = conn.execute(
        select(releases)
        .where(releases.c.app == app, releases.c.env == env)
        .order_by(releases.c.number)
    )
    return [_release(row) for row in rows]


def set_current(conn: Connection, app: str, env: str, number: int) -> None:
    get(conn, app, env, number)  # refuse to point an environment at nothing
    values = {"number": number, "updated_at": utcnow()}
    changed = conn.execute(
        update(current_releases)
        .where(current_releases.c.app == app, current_releases.c.env == env)
        .values(**values)
    ).rowcount
    if not changed:
        conn.execute(insert(current_releases).values(app=app, env=env, **values))


def current(conn: Connection, app: str, env: str) -> int | None:
    number: int | None = conn.execute(
        select(current_releases.c.number).where(
            current_releases.c.app == app, current_releases.c.env == env
        )
    ).scalar_one_or_none()
    return number


def _release(row: Row[Any]) -> Release:
    return Release(
        app=row.app,
        env=row.env,
        number=row.number,
        services=from_json(_SERVICES, json.loads(row.services)),
        config_digest=row.config_digest,
        spec_digest=row.spec_digest,
        commit=row.commit,
        dirty=row.dirty,
        author=row.author,
        created_at=row.created_at,
        reason=row.reason,
        provider=row.provider,
        promotion=from_json(Promotion, json.loads(row.promotion)) if row.promotion else None,
    )
