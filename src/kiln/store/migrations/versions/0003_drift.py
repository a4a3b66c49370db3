"""Drift: the routes kiln last applied per environment, and drift findings.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def _dt(name: str, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "applied_routes",
        sa.Column("app", sa.String(200), primary_key=True),
        sa.Column("env", sa.String(200), primary_key=True),
        sa.Column("routes", sa.Text, nullable=False),
        _dt("applied_at"),
    )
    op.create_table(
        "drift_findings",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("app", sa.String(200), nullable=False),
        sa.Column("env", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(50), nullable=False),
        sa.Column("subject", sa.String(400), nullable=False),
        sa.Column("finding", sa.Text, nullable=False),
        _dt("found_at"),
        sa.Column("resolution", sa.Text, nullable=False),
        _dt("resolved_at", nullable=True),
        _dt("quarantined_until", nullable=True),
    )
    op.create_index("ix_drift_findings_app_env", "drift_findings", ["app", "env"])


def downgrade() -> None:
    op.drop_index("ix_drift_findings_app_env", "drift_findings")
    op.drop_table("drift_findings")
    op.drop_table("applied_routes")
