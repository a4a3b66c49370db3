"""Drift findings and the routes kiln last applied (what route drift is measured against)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, insert, select, update

from kiln.errors import NotFound
from kiln.model import Route, from_json, to_json
from kiln.model.drift import DriftRecord, Finding
from kiln.store.db import utcnow
from kiln.store.tables import applied_routes, drift_findings

_F = drift_findings.c
_ROUTES = tuple[Route, ...]


def set_applied(conn: Connection, app: str, env: str, routes: tuple[Route, ...]) -> None:
    data = json.dumps(to_json(routes, _ROUTES), sort_keys=True)
    key = (applied_routes.c.app == app) & (applied_routes.c.env == env)
    changed = conn.execute(
        update(applied_routes).where(key).values(routes=data, applied_at=utcnow())
    ).rowcount
    if not changed:
        conn.execute(
            insert(applied_routes).values(app=app, env=env, routes=data, applied_at=utcnow())
        )


def applied(conn: Connection, app: str, env: str) -> tuple[Route, ...] | None:
    row = conn.execute(
        select(applied_routes.c.routes).where(
            applied_routes.c.app == app, applied_routes.c.env == env
        )
    ).one_or_none()
    return None if row is None else from_json(_ROUTES, json.loads(row.routes))


def record(conn: Connection, app: str, findings: list[Finding]) -> list[DriftRecord]:
    """Store new findings; one already open (same env, kind, subject) is not stored twice.

    Returns every finding of the pass as stored (new or still open).
    """
    out = []
    for finding in findings:
        row = conn.execute(
            select(drift_findings).where(
                _F.app == app,
                _F.env == finding.env,
                _F.kind == finding.kind.value,
                _F.subject == finding.subject,
                _F.resolution == "",
            )
        ).first()
        if row is None:
            new_id = conn.execute(
                insert(drift_findings).values(
                    app=app,
                    env=finding.env,
                    kind=finding.kind.value,
                    subject=finding.subject,
                    finding=json.dumps(to_json(finding), sort_keys=True),
                    found_at=utcnow(),
                    resolution="",
                )
            ).inserted_primary_key
            assert new_id is not None
            row = conn.execute(select(drift_findings).where(_F.id == new_id[0])).one()
        out.append(_record(row))
    return out


def replace_finding(conn: Connection, finding_id: int, finding: Finding) -> None:
    conn.execute(
        update(drift_findings)
        .where(_F.id == finding_id)
        .values(finding=json.dumps(to_json(finding), sort_keys=True))
    )


def resolve(conn: Connection, finding_id: int, resolution: str) -> None:
    conn.execute(
        update(drift_findings)
        .where(_F.id == finding_id, _F.resolution == "")
        .values(resolution=resolution, resolved_at=utcnow())
    )


def quarantine(conn: Connection, finding_id: int, until: datetime | None, resolution: str) -> None:
    """Start (``until``) or end (None) the quarantine of a finding's instance."""
    conn.execute(
        update(drift_findings)
        .where(_F.id == finding_id)
        .values(quarantined_until=until, resolution=resolution, resolved_at=utcnow())
    )


def quarantined(conn: Connection, app: str, env: str) -> list[DriftRecord]:
    query = select(drift_findings).where(
        _F.app == app, _F.env == env, _F.quarantined_until.is_not(None)
    )
    return [_record(r) for r in conn.execute(query.order_by(_F.id))]


def listing(conn: Connection, app: str, env: str | None, open_only: bool) -> list[DriftRecord]:
    query = select(drift_findings).where(_F.app == app)
    if env is not None:
        query = query.where(_F.env == env)
    if open_only:
        query = query.where(_F.resolution == "")
    return [_record(r) for r in conn.execute(query.order_by(_F.id))]


def get(conn: Connection, app: str, finding_id: int) -> DriftRecord:
    row = conn.execute(
        select(drift_findings).where(_F.app == app, _F.id == finding_id)
    ).one_or_none()
    if row is None:
        raise NotFound(f"no drift finding {finding_id} in {app}")
    return _record(row)


def _record(row: Row[Any]) -> DriftRecord:
    return DriftRecord(
        id=row.id,
        app=row.app,
        finding=from_json(Finding, json.loads(row.finding)),
        found_at=row.found_at,
        resolution=row.resolution,
        resolved_at=row.resolved_at,
        quarantined_until=row.quarantined_until,
    )
