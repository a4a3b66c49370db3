"""Live progress of a running deployment; the evidence a release was promoted on.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28

``deployments.progress``: JSON the driving kiln rewrites while a step runs
(the canary analysis' numbers), so `kiln status` in another terminal shows
them. ``releases.promotion``: JSON evidence of a promoted release (source
release, its deployment, soak time, analysis); null for any other release.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # batch mode: SQLite cannot ALTER TABLE ... ADD COLUMN inside every context.
    with op.batch_alter_table("deployments") as batch:
        batch.add_column(sa.Column("progress", sa.Text(), nullable=True))
    with op.batch_alter_table("releases") as batch:
        batch.add_column(sa.Column("promotion", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("releases") as batch:
        batch.drop_column("promotion")
    with op.batch_alter_table("deployments") as batch:
        batch.drop_column("progress")
