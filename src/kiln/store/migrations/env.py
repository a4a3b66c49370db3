"""Alembic's entry point for kiln's migrations; run only by ``kiln.store.migrate``.

It is handed an open connection (already inside a write transaction) through
``config.attributes["connection"]``; it must never create its own engine or
read an alembic.ini, and offline (``--sql``) mode is not supported.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from kiln.store.tables import metadata

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("kiln's migrations run through kiln.store.migrate with a connection")

# render_as_batch: SQLite cannot ALTER most things; batch mode rebuilds the table.
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
