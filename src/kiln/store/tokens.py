"""API tokens: a name and the token's digest. The token itself is shown once, at creation."""

from __future__ import annotations

from sqlalchemy import Connection, delete, insert, select

from kiln.errors import KilnError, NotFound
from kiln.store.db import utcnow
from kiln.store.tables import api_tokens

_T = api_tokens.c


def create(conn: Connection, name: str, digest: str) -> None:
    if conn.execute(select(_T.name).where(_T.name == name)).first() is not None:
        raise KilnError(f"a token named {name!r} exists already; revoke it first")
    conn.execute(insert(api_tokens).values(name=name, digest=digest, created_at=utcnow()))


def name_of(conn: Connection, digest: str) -> str | None:
    row = conn.execute(select(_T.name).where(_T.digest == digest)).first()
    return None if row is None else str(row.name)


def names(conn: Connection) -> list[str]:
    return [str(r.name) for r in conn.execute(select(_T.name).order_by(_T.name))]


def revoke(conn: Connection, name: str) -> None:
    if not conn.execute(delete(api_tokens).where(_T.name == name)).rowcount:
        raise NotFound(f"no token named {name!r}")
