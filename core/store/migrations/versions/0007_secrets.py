"""Secret values of code revisions and tasks, encrypted (name -> Fernet token; see core/secrets.py).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("code_revisions") as batch:
        batch.add_column(sa.Column("secrets", sa.Text))
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("secrets", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("secrets")
    with op.batch_alter_table("code_revisions") as batch:
        batch.drop_column("secrets")
