"""Fallback targets and circuit breakers (issue 18 parts 1 and 4).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("placement", sa.Text))
    with op.batch_alter_table("code_revisions") as batch:
        batch.add_column(sa.Column("placement", sa.Text))
    op.create_table(
        "target_breakers",
        sa.Column("target", sa.String(63), primary_key=True),
        sa.Column("failures", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("opened_at", sa.Float),
        sa.Column("open_until", sa.Float),
        sa.Column("last_kind", sa.String(32)),
        sa.Column("last_message", sa.Text),
        sa.Column("updated_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("target_breakers")
    with op.batch_alter_table("code_revisions") as batch:
        batch.drop_column("placement")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("placement")
