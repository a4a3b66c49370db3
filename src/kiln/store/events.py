"""The audit log: append-only events, each hash-chained to the one before.

``hash = sha256(prev_hash + canonical JSON of seq, at, actor, action, app, env,
reason, detail)``; the first event's ``prev_hash`` is 64 zeros. Appending and
verifying run in a write transaction, so sequence numbers have no gaps and the
anchor file (see ``anchor``) matches the table. Nothing here may update or
delete an event, and a secret value must never reach ``detail``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Row, String, insert, select, type_coerce

from kiln.errors import AuditError
from kiln.model.codec import to_json
from kiln.model.digest import canonical_json, sha256_hex
from kiln.model.event import Event
from kiln.model.secret import Secret
from kiln.store import anchor
from kiln.store.db import utcnow
from kiln.store.tables import events as events_table

GENESIS = "0" * 64
_E = events_table.c


def compute_hash(
    *,
    prev_hash: str,
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    app: str,
    env: str,
    reason: str,
    detail: dict[str, Any],
) -> str:
    content = {
        "seq": seq,
        "at": at.astimezone(UTC).isoformat(),
        "actor": actor,
        "action": action,
        "app": app,
        "env": env,
        "reason": reason,
        "detail": detail,
    }
    return sha256_hex(prev_hash.encode() + canonical_json(content))


def append(
    conn: Connection,
    head_file: Path | None,
    *,
    actor: str,
    action: str,
    app: str,
    env: str,
    reason: str,
    detail: dict[str, Any] | None,
) -> Event:
    """Insert the next event; also rewrite the anchor (the caller commits right after)."""
    # Normalise through JSON first, so the hash covers exactly what a reader gets back.
    data: dict[str, Any] = json.loads(canonical_json(to_json(_redact(detail or {}))))
    last = conn.execute(select(_E.seq, _E.hash).order_by(_E.seq.desc()).limit(1)).one_or_none()
    seq, prev_hash = (1, GENESIS) if last is None else (last.seq + 1, last.hash)
    # Whole microseconds survive every database, so the hash stays reproducible.
    at = utcnow()
    fields = {"actor": actor, "action": action, "app": app, "env": env, "reason": reason}
    digest = compute_hash(prev_hash=prev_hash, seq=seq, at=at, detail=data, **fields)
    conn.execute(
        insert(events_table).values(
            seq=seq,
            at=at,
            detail=canonical_json(data).decode(),
            prev_hash=prev_hash,
            hash=digest,
            **fields,
        )
    )
    if head_file is not None:
        anchor.write(head_file, anchor.Head(seq, digest))
    return Event(seq=seq, at=at, detail=data, prev_hash=prev_hash, hash=digest, **fields)


def listing(
    conn: Connection,
    app: str | None,
    env: str | None,
    limit: int | None,
    action: str | None = None,
) -> list[Event]:
    """Events in ascending seq; with ``limit``, the newest ``limit`` of them."""
    query = select(events_table)
    if action is not None:
        query = query.where(_E.action == action)
    if app is not None:
        query = query.where(_E.app == app)
    if env is not None:
        query = query.where(_E.env == env)
    if limit is None:
        return [_event(r) for r in conn.execute(query.order_by(_E.seq))]
    newest = conn.execute(query.order_by(_E.seq.desc()).limit(limit))
    return [_event(r) for r in reversed(list(newest))]


def verify(conn: Connection, head_file: Path | None) -> int:
    """Recompute the whole chain; the number of events, or AuditError naming the first bad one."""
    head = anchor.read(head_file) if head_file is not None else None
    prev_seq, prev_hash, after_head = 0, GENESIS, ""
    for row in _rows(conn):
        label = f"event {row.seq} ({row.action})"
        if row.seq != prev_seq + 1:
            raise AuditError(
                f"event {prev_seq + 1} is missing: the log jumps from event {prev_seq}"
                f" to event {row.seq}"
            )
        if row.prev_hash != prev_hash:
            raise AuditError(
                f"{label} does not follow event {prev_seq}: prev_hash mismatch"
                " (an event was removed, reordered or altered)"
            )
        if _recompute(row) != row.hash:
            raise AuditError(f"{label} was altered: hash mismatch")
        if head is not None and row.seq == head.seq and row.hash != head.hash:
            raise AuditError(f"{label} was altered: its hash differs from the audit anchor")
        if head is not None and row.seq == head.seq + 1:
            after_head = label
        prev_seq, prev_hash = row.seq, row.hash
    if head_file is None:
        return prev_seq  # no anchor for a server database: the tail cannot be checked
    if head is None:
        if prev_seq:
            raise AuditError(
                f"the audit anchor {head_file} is missing, so the log's end (event"
                f" {prev_seq}) cannot be proven complete; restore it with the database"
            )
        return 0
    if prev_seq < head.seq:
        raise AuditError(
            f"event {prev_seq + 1} is missing: the log ends at event {prev_seq} but the"
            f" audit anchor records event {head.seq}"
        )
    if prev_seq > head.seq:
        raise AuditError(
            f"{after_head} was not appended by kiln: the audit anchor ends at event {head.seq}"
        )
    return prev_seq


def _rows(conn: Connection) -> Iterator[Row[Any]]:
    # ``at`` comes back raw: a hand-edited, unparseable timestamp must show up as
    # an altered event, not as a crash halfway through the check.
    columns = [type_coerce(c, String).label(c.name) if c is _E.at else c for c in _E]
    yield from conn.execute(select(*columns).order_by(_E.seq))


def _recompute(row: Row[Any]) -> str:
    try:
        detail = json.loads(row.detail)
        at = row.at if isinstance(row.at, datetime) else datetime.fromisoformat(row.at)
    except (TypeError, ValueError):
        return ""  # unparseable: certainly not what was hashed
    if at.tzinfo is None:  # SQLite keeps naive UTC (see tables.UTCDateTime)
        at = at.replace(tzinfo=UTC)
    return compute_hash(
        prev_hash=row.prev_hash,
        seq=row.seq,
        at=at,
        actor=row.actor,
        action=row.action,
        app=row.app,
        env=row.env,
        reason=row.reason,
        detail=detail,
    )


def _event(row: Row[Any]) -> Event:
    return Event(
        seq=row.seq,
        at=row.at,
        actor=row.actor,
        action=row.action,
        app=row.app,
        env=row.env,
        reason=row.reason,
        detail=json.loads(row.detail),
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


def _redact(value: Any) -> Any:
    """``value`` with every ``Secret`` replaced by its name: the log outlives any rotation."""
    if isinstance(value, Secret):
        return str(value)
    if isinstance(value, dict):
        return {k: _redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _redact(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value
