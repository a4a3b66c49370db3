"""The initial schema: releases, fleets, deployments and steps, locks, events.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

A migration is a frozen snapshot: it spells out its columns instead of
importing ``kiln.store.tables``, which will keep changing.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def _dt(name: str, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "releases",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("app", sa.String(200), nullable=False),
        sa.Column("env", sa.String(200), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("services", sa.Text, nullable=False),
        sa.Column("config_digest", sa.String(100), nullable=False),
        sa.Column("spec_digest", sa.String(100), nullable=False),
        sa.Column("commit", sa.String(100), nullable=True),
        sa.Column("dirty", sa.Boolean, nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        _dt("created_at"),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("provider", sa.String(100), nullable=False),
        sa.UniqueConstraint("app", "env", "number", name="uq_releases_app_env_number"),
    )
    op.create_table(
        "current_releases",
        sa.Column("app", sa.String(200), primary_key=True),
        sa.Column("env", sa.String(200), primary_key=True),
        sa.Column("number", sa.Integer, nullable=False),
        _dt("updated_at"),
    )
    op.create_table(
        "fleets",
        sa.Column("id", sa.String(400), primary_key=True),
        sa.Column("app", sa.String(200), nullable=False),
        sa.Column("env", sa.String(200), nullable=False),
        sa.Column("service", sa.String(200), nullable=False),
        sa.Column("release", sa.Integer, nullable=False),
        sa.Column("artifact", sa.Text, nullable=False),
        sa.Column("config_digest", sa.String(100), nullable=False),
        sa.Column("replicas", sa.Integer, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        _dt("created_at"),
        _dt("retain_until", nullable=True),
    )
    op.create_index("ix_fleets_app_env", "fleets", ["app", "env"])
    op.create_table(
        "deployments",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("app", sa.String(200), nullable=False),
        sa.Column("env", sa.String(200), nullable=False),
        sa.Column("release", sa.Integer, nullable=False),
        sa.Column("from_release", sa.Integer, nullable=True),
        sa.Column("strategy", sa.String(100), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("fleets", sa.Text, nullable=False),
        sa.Column("previous", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        _dt("started_at"),
        _dt("finished_at", nullable=True),
    )
    op.create_index("ix_deployments_app_env_status", "deployments", ["app", "env", "status"])
    op.create_table(
        "deployment_steps",
        sa.Column("deployment_id", sa.Integer, sa.ForeignKey("deployments.id"), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(50), nullable=False),
        sa.Column("step", sa.Text, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        _dt("started_at"),
        _dt("finished_at", nullable=True),
    )
    op.create_table(
        "locks",
        sa.Column("app", sa.String(200), primary_key=True),
        sa.Column("env", sa.String(200), primary_key=True),
        sa.Column("holder_id", sa.String(100), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("host", sa.String(200), nullable=False),
        sa.Column("user", sa.String(200), nullable=False),
        sa.Column("command", sa.String(200), nullable=False),
        _dt("started_at"),
        _dt("expires_at"),
    )
    op.create_table(
        "events",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        _dt("at"),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(200), nullable=False),
        sa.Column("app", sa.String(200), nullable=False),
        sa.Column("env", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_events_app_env", "events", ["app", "env"])


def downgrade() -> None:
    for index, table in (
        ("ix_events_app_env", "events"),
        ("ix_deployments_app_env_status", "deployments"),
        ("ix_fleets_app_env", "fleets"),
    ):
        op.drop_index(index, table_name=table)
    for table in (
        "events",
        "locks",
        "deployment_steps",
        "deployments",
        "fleets",
        "current_releases",
        "releases",
    ):
        op.drop_table(table)
