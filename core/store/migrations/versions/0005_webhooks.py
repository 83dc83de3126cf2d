"""Completion webhooks: URLs on code revisions and tasks, a signing secret per project, the delivery outbox.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

ID = sa.String(24)


def upgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("webhook_secret", sa.String(64)))
    with op.batch_alter_table("code_revisions") as batch:
        batch.add_column(sa.Column("webhook", sa.Text))
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("webhook", sa.Text))
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("delivery_id", ID, nullable=False),
        sa.Column("task_id", ID, sa.ForeignKey("tasks.id"), nullable=False),
        sa.Column("project_id", ID, sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("next_attempt_at", sa.Float, nullable=False),
        sa.Column("attempted_at", sa.Float),
        sa.Column("status_code", sa.Integer),
        sa.Column("error", sa.Text),
        sa.Column("delivered", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_index(
        "ix_webhook_deliveries_due",
        "webhook_deliveries",
        ["next_attempt_at"],
        sqlite_where=sa.text("attempted_at IS NULL"),
        postgresql_where=sa.text("attempted_at IS NULL"),
    )
    op.create_index("ix_webhook_deliveries_task", "webhook_deliveries", ["task_id", "id"])


def downgrade() -> None:
    op.drop_table("webhook_deliveries")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("webhook")
    with op.batch_alter_table("code_revisions") as batch:
        batch.drop_column("webhook")
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("webhook_secret")
