"""The schema as SQLAlchemy Core tables: what the store's queries are written against.

Migrations (``migrations/versions``) create this schema; a test checks the two
never drift apart. Nested model data (a release's services, a step) is JSON
text encoded with ``kiln.model.codec``; no secret value ever has a column.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

metadata = MetaData()


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes in and out, whatever the database keeps.

    SQLite has no time zones: it gets naive UTC. Anything else gets aware UTC.
    A naive datetime from a caller is a bug (whose local time?), so it is refused.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} given to the store; use UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


releases = Table(
    "releases",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("app", String(200), nullable=False),
    Column("env", String(200), nullable=False),
    Column("number", Integer, nullable=False),
    Column("services", Text, nullable=False),  # JSON: service -> ServiceRelease
    Column("config_digest", String(100), nullable=False),
    Column("spec_digest", String(100), nullable=False),
    Column("commit", String(100), nullable=True),
    Column("dirty", Boolean, nullable=False),
    Column("author", String(200), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("reason", Text, nullable=False),
    Column("provider", String(100), nullable=False),
    Column("promotion", Text, nullable=True),  # JSON: kiln.model.Promotion
    # The safety net under atomic numbering: two releases can never share a number.
    UniqueConstraint("app", "env", "number", name="uq_releases_app_env_number"),
)

current_releases = Table(
    "current_releases",
    metadata,
    Column("app", String(200), primary_key=True),
    Column("env", String(200), primary_key=True),
    Column("number", Integer, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

fleets = Table(
    "fleets",
    metadata,
    Column("id", String(400), primary_key=True),
    Column("app", String(200), nullable=False),
    Column("env", String(200), nullable=False),
    Column("service", String(200), nullable=False),
    Column("release", Integer, nullable=False),
    Column("artifact", Text, nullable=False),
    Column("config_digest", String(100), nullable=False),
    Column("replicas", Integer, nullable=False),
    Column("state", String(20), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("retain_until", UTCDateTime, nullable=True),
    Index("ix_fleets_app_env", "app", "env"),
)

deployments = Table(
    "deployments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("app", String(200), nullable=False),
    Column("env", String(200), nullable=False),
    Column("release", Integer, nullable=False),
    Column("from_release", Integer, nullable=True),
    Column("strategy", String(100), nullable=False),
    Column("status", String(20), nullable=False),
    Column("fleets", Text, nullable=False),  # JSON: service -> new fleet id
    Column("previous", Text, nullable=False),  # JSON: service -> replaced fleet id or null
    Column("reason", Text, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=True),
    Column("progress", Text, nullable=True),  # JSON: live numbers of the running step
    Index("ix_deployments_app_env_status", "app", "env", "status"),
)

deployment_steps = Table(
    "deployment_steps",
    metadata,
    Column("deployment_id", Integer, ForeignKey("deployments.id"), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("kind", String(50), nullable=False),  # the step's kind, for humans reading SQL
    Column("step", Text, nullable=False),  # JSON: kiln.model.steps.Step
    Column("status", String(20), nullable=False),
    Column("detail", Text, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=True),
)

locks = Table(
    "locks",
    metadata,
    Column("app", String(200), primary_key=True),
    Column("env", String(200), primary_key=True),
    Column("holder_id", String(100), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("host", String(200), nullable=False),
    Column("user", String(200), nullable=False),
    Column("command", String(200), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)

events = Table(
    "events",
    metadata,
    # Assigned by the store (previous + 1), never by the database: the chain
    # depends on it and a gap must mean a deleted row.
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(200), nullable=False),
    Column("app", String(200), nullable=False),
    Column("env", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    Column("detail", Text, nullable=False),  # canonical JSON
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_events_app_env", "app", "env"),
)

applied_routes = Table(
    "applied_routes",
    metadata,
    Column("app", String(200), primary_key=True),
    Column("env", String(200), primary_key=True),
    Column("routes", Text, nullable=False),  # JSON: the env's routes as kiln last applied them
    Column("applied_at", UTCDateTime, nullable=False),
)

drift_findings = Table(
    "drift_findings",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("app", String(200), nullable=False),
    Column("env", String(200), nullable=False),
    Column("kind", String(50), nullable=False),
    Column("subject", String(400), nullable=False),
    Column("finding", Text, nullable=False),  # JSON: kiln.model.drift.Finding
    Column("found_at", UTCDateTime, nullable=False),
    Column("resolution", Text, nullable=False),  # "" while open
    Column("resolved_at", UTCDateTime, nullable=True),
    # set while the instance is kept out of the route for inspection
    Column("quarantined_until", UTCDateTime, nullable=True),
    Index("ix_drift_findings_app_env", "app", "env"),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("digest", String(100), nullable=False, unique=True),  # sha256 of the token
    Column("created_at", UTCDateTime, nullable=False),
)
