"""Task progress (IronWorker's ``percent`` and message) and deleted codes.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("percent", sa.Integer))
        batch.add_column(sa.Column("progress_msg", sa.Text))
    with op.batch_alter_table("codes") as batch:
        batch.add_column(sa.Column("deleted_at", sa.Float))


def downgrade() -> None:
    with op.batch_alter_table("codes") as batch:
        batch.drop_column("deleted_at")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("progress_msg")
        batch.drop_column("percent")
