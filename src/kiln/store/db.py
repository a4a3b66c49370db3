"""The database connection: engine creation, SQLite pragmas, read and write transactions.

Everything dialect-specific lives here, so the rest of ``kiln.store`` writes
portable SQLAlchemy Core and PostgreSQL can be added by changing this module
only. It must never let a sqlalchemy exception escape: ``read()`` and
``write()`` translate them into ``kiln.errors.StoreError``, raised ``from`` the
original.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, make_url, pool
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from kiln.errors import StoreError

# Several kiln processes share one SQLite file (a deploy, a `kiln status`, a
# reconcile loop); a writer waits this long for another writer before failing.
BUSY_TIMEOUT_SECONDS = 30.0

# Execution option that marks a connection whose transaction must take the
# database's write lock up front (see ``_begin``).
_WRITE = "kiln_write"


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_url(target: str | Path) -> URL:
    """A SQLAlchemy URL for a path to a database file or for a URL string."""
    if isinstance(target, str) and "://" in target:
        try:
            return make_url(target)
        except ArgumentError as e:
            raise StoreError(f"invalid database URL {target!r}: {e}") from e
    return URL.create("sqlite", database=str(Path(target).expanduser().absolute()))


def sqlite_file(url: URL) -> Path | None:
    """The database file of a SQLite URL, or None (another database, or in memory)."""
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database or ""
    if database in ("", ":memory:") or url.query.get("mode") == "memory":
        return None
    if database.startswith("file:"):  # a sqlite URI filename: not a plain path
        return None
    return Path(database)


@dataclass
class Database:
    """An engine plus the transactions kiln uses; one per ``Store``."""

    engine: Engine
    url: URL
    # The file of a file-backed SQLite database, None otherwise.
    file: Path | None

    @contextmanager
    def read(self, what: str) -> Iterator[Connection]:
        """A transaction for reading: a consistent snapshot, no write lock taken."""
        with self._translate(what), self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def write(self, what: str) -> Iterator[Connection]:
        """A transaction that may read then write; serialised against every other writer.

        On SQLite this is ``BEGIN IMMEDIATE``: the write lock is taken before the
        first read, so "read the highest number, insert the next one" cannot
        interleave with another process doing the same. A deferred transaction
        would instead fail with SQLITE_BUSY at its first write under WAL.
        Other databases get a plain transaction for now; PostgreSQL support
        belongs here (SERIALIZABLE with a retry, or an advisory lock), so that
        callers do not change.
        """
        with self._translate(what), self.engine.connect() as conn:
            conn.execution_options(**{_WRITE: True})
            with conn.begin():
                yield conn

    @contextmanager
    def _translate(self, what: str) -> Iterator[None]:
        try:
            yield
        except SQLAlchemyError as e:
            orig = getattr(e, "orig", None) or e
            raise StoreError(f"{what}: database error: {orig}") from e

    def close(self) -> None:
        self.engine.dispose()


def connect(target: str | Path) -> Database:
    """Create the engine for ``target``; for SQLite files, create the file's directory."""
    url = to_url(target)
    file = sqlite_file(url)
    try:
        if url.get_backend_name() == "sqlite":
            engine = _sqlite_engine(url, file)
        else:
            engine = create_engine(url, pool_pre_ping=True)
    except (SQLAlchemyError, ImportError) as e:
        raise StoreError(f"cannot open database {url.render_as_string()}: {e}") from e
    return Database(engine=engine, url=url, file=file)


def _sqlite_engine(url: URL, file: Path | None) -> Engine:
    if file is not None:
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create the directory of {file}: {e}") from e
        engine = create_engine(
            url,
            connect_args={"timeout": BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
        )
    else:
        # One shared connection, or every connection would see its own empty database.
        engine = create_engine(
            url, connect_args={"check_same_thread": False}, poolclass=pool.StaticPool
        )
    event.listen(engine, "connect", _on_connect)
    event.listen(engine, "begin", _begin)
    return engine


def _on_connect(dbapi_connection: Any, _record: Any) -> None:
    # sqlite3 would otherwise emit its own deferred BEGIN before the first write;
    # we emit BEGIN ourselves in _begin so a write transaction can be IMMEDIATE.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        # WAL: readers (kiln status) never block the writer (a deploy) and vice versa.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_SECONDS * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _begin(conn: Connection) -> None:
    if conn.get_execution_options().get(_WRITE):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")
