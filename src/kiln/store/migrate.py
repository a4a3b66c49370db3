"""Bring a database's schema to the newest migration, safely under concurrency.

Runs Alembic programmatically (no alembic.ini on disk): the script location is
the ``migrations`` directory beside this module. It must never run a
migration outside a write transaction: two kiln processes opening a new
database at once would both try to create the tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text

from kiln.errors import StoreError
from kiln.store.db import Database

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version"  # alembic's default name
# The newest revision. Every kiln command opens the store, and importing alembic
# to find this costs ~0.1 s; a test pins it to alembic's own answer.
HEAD = "0004"


def _config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head() -> str:
    """The newest revision kiln knows, as alembic reads it from the migration scripts."""
    from alembic.script import ScriptDirectory

    revision = ScriptDirectory.from_config(_config()).get_current_head()
    assert revision is not None
    return revision


def current(db: Database) -> str | None:
    """The revision the database is at (None for an empty database)."""
    # Read alembic's table directly rather than through a MigrationContext, which
    # logs at INFO on creation: every `kiln status` would print alembic chatter.
    with db.read("read the schema version") as conn:
        if not inspect(conn).has_table(VERSION_TABLE):
            return None
        versions = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars()
        found = list(versions)
    return found[0] if len(found) == 1 else None


def upgrade(db: Database) -> None:
    """Migrate to head; a no-op (one read, no write lock) when already there."""
    if current(db) == HEAD:
        return
    from alembic import command
    from alembic.util import CommandError

    config = _config()
    try:
        # Inside a write transaction: a second process opening the same new
        # file waits here, then finds the schema at head and changes nothing.
        # SQLite DDL is transactional, so a failed migration leaves no half schema.
        with db.write("migrate the database") as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
    except CommandError as e:
        # e.g. the database was written by a newer kiln than this one.
        raise StoreError(f"cannot migrate the database: {e}") from e
