"""Opening a database: the schema from nothing, idempotent reopen, pragmas, errors."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

from kiln.errors import StoreError
from kiln.store import Store, migrate
from kiln.store.tables import metadata
from tests.store.factories import make_release, raw_sql

TABLES = {
    "alembic_version",
    "releases",
    "current_releases",
    "fleets",
    "deployments",
    "deployment_steps",
    "locks",
    "events",
    "applied_routes",
    "drift_findings",
    "api_tokens",
}


def test_open_creates_the_file_its_directory_and_the_schema(db_path: Path) -> None:
    assert not db_path.parent.exists()
    Store.open(db_path).close()
    names = {r[0] for r in raw_sql(db_path, "SELECT name FROM sqlite_master WHERE type='table'")}
    assert names == TABLES
    assert raw_sql(db_path, "SELECT version_num FROM alembic_version") == [(migrate.head(),)]


def test_migrated_schema_matches_the_tables_the_queries_use(db_path: Path) -> None:
    Store.open(db_path).close()
    engine = create_engine(f"sqlite:///{db_path}")
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert diff == []


def test_second_open_runs_no_migration_and_keeps_data(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Store.open(db_path) as s:
        s.create_release(make_release())

    def boom(*_: object, **__: object) -> None:
        raise AssertionError("a migration ran on an up-to-date database")

    monkeypatch.setattr("alembic.command.upgrade", boom)
    with Store.open(db_path) as s:
        assert [r.number for r in s.list_releases("hello", "dev")] == [1]


def test_sqlite_runs_in_wal_mode(store: Store, db_path: Path) -> None:
    assert raw_sql(db_path, "PRAGMA journal_mode") == [("wal",)]


def test_open_accepts_a_sqlalchemy_url(db_path: Path) -> None:
    with Store.open(db_path) as s:
        s.create_release(make_release())
    with Store.open(f"sqlite:///{db_path}") as s:
        assert s.latest_release("hello", "dev") is not None


def test_in_memory_url_works() -> None:
    with Store.open("sqlite://") as s:
        s.create_release(make_release())
        s.append_event(actor="a", action="x", app="hello", env="dev")
        assert s.verify_events() == 1
        assert s.latest_release("hello", "dev") is not None


def test_database_from_a_newer_kiln_is_a_store_error(db_path: Path) -> None:
    Store.open(db_path).close()
    raw_sql(db_path, "UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(StoreError, match="cannot migrate the database"):
        Store.open(db_path)


def test_a_file_that_is_not_a_database_is_a_store_error(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    db_path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="database"):
        Store.open(db_path)


def test_a_bad_url_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="invalid database URL"):
        Store.open("not a url://x")


def test_sqlalchemy_errors_become_store_errors_from_the_original(store: Store) -> None:
    # A naive datetime is refused by the column type; the caller sees a StoreError.
    naive = dataclasses.replace(make_release(), created_at=datetime(2025, 1, 1, 12))
    with pytest.raises(StoreError, match="naive datetime") as info:
        store.create_release(naive)
    assert info.value.__cause__ is not None
    assert type(info.value.__cause__).__module__.startswith("sqlalchemy")


def test_head_constant_matches_the_migration_scripts() -> None:
    assert migrate.head() == migrate.HEAD
