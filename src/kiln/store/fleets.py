"""Fleets: a row per fleet, created once; afterwards only its state moves forward.

A fleet is a set of instances launched from one release, so nothing about it
but its lifecycle state (and how long a retained fleet is kept) ever changes.
Nothing here may edit any other column, or bring a retired or failed fleet back.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, insert, select, update

from kiln.errors import NotFound, StoreError
from kiln.model.fleet import Fleet, FleetState
from kiln.store.tables import fleets as fleets_table

_S = FleetState

# Setting a fleet's current state again is always allowed: the engine re-runs a
# step after a crash. RETAINED -> ACTIVE is an instant rollback. The invariant
# kept is that nothing returns to LAUNCHING and a destroyed fleet stays destroyed;
# between the live states the strategies decide.
TRANSITIONS: dict[FleetState, frozenset[FleetState]] = {
    _S.LAUNCHING: frozenset({_S.ACTIVE, _S.RETAINED, _S.RETIRED, _S.FAILED}),
    _S.ACTIVE: frozenset({_S.RETAINED, _S.RETIRED, _S.FAILED}),
    _S.RETAINED: frozenset({_S.ACTIVE, _S.RETIRED, _S.FAILED}),
    _S.RETIRED: frozenset(),  # destroyed: gone for good
    _S.FAILED: frozenset(),
}


def add(conn: Connection, fleet: Fleet) -> None:
    existing = _row(conn, fleet.id)
    if existing is not None:
        if existing.release != fleet.release:
            raise StoreError(
                f"fleet {fleet.id} already exists with release {existing.release},"
                f" not {fleet.release}"
            )
        return  # a resumed deployment adds the fleet again: nothing to do
    conn.execute(
        insert(fleets_table).values(
            id=fleet.id,
            app=fleet.app,
            env=fleet.env,
            service=fleet.service,
            release=fleet.release,
            artifact=fleet.artifact,
            config_digest=fleet.config_digest,
            replicas=fleet.replicas,
            state=fleet.state.value,
            created_at=fleet.created_at,
            retain_until=fleet.retain_until,
        )
    )


def get(conn: Connection, fleet_id: str) -> Fleet:
    row = _row(conn, fleet_id)
    if row is None:
        raise NotFound(f"fleet {fleet_id} not found")
    return _fleet(row)


def set_state(
    conn: Connection, fleet_id: str, state: FleetState, retain_until: datetime | None
) -> Fleet:
    fleet = get(conn, fleet_id)
    if state != fleet.state and state not in TRANSITIONS[fleet.state]:
        raise StoreError(f"fleet {fleet_id} cannot go from {fleet.state} to {state}")
    conn.execute(
        update(fleets_table)
        .where(fleets_table.c.id == fleet_id)
        .values(state=state.value, retain_until=retain_until)
    )
    return get(conn, fleet_id)


def of_env(
    conn: Connection, app: str, env: str, states: Iterable[FleetState] | None
) -> list[Fleet]:
    query = select(fleets_table).where(fleets_table.c.app == app, fleets_table.c.env == env)
    if states is not None:
        query = query.where(fleets_table.c.state.in_([FleetState(s).value for s in states]))
    rows = conn.execute(query.order_by(fleets_table.c.created_at, fleets_table.c.id))
    return [_fleet(row) for row in rows]


def _row(conn: Connection, fleet_id: str) -> Row[Any] | None:
    return conn.execute(select(fleets_table).where(fleets_table.c.id == fleet_id)).one_or_none()


def _fleet(row: Row[Any]) -> Fleet:
    return Fleet(
        id=row.id,
        app=row.app,
        env=row.env,
        service=row.service,
        release=row.release,
        artifact=row.artifact,
        config_digest=row.config_digest,
        replicas=row.replicas,
        state=FleetState(row.state),
        created_at=row.created_at,
        retain_until=row.retain_until,
    )
