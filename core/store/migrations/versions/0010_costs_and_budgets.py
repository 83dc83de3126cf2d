"""Cost per attempt, price overrides per target, budgets per project (issue 18, parts 2 and 3).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "attempts",
        sa.Column("task_id", sa.String(24), primary_key=True),
        sa.Column("attempt", sa.Integer, primary_key=True),
        sa.Column("project_id", sa.String(24), nullable=False),
        sa.Column("code_name", sa.String(255), nullable=False),
        sa.Column("target", sa.String(63), nullable=False),
        sa.Column("provider", sa.String(63), nullable=False),
        sa.Column("region", sa.String(63)),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("started_at", sa.Float),
        sa.Column("stopped_at", sa.Float),
        sa.Column("billed_seconds", sa.Float, nullable=False, server_default=sa.text("0")),
        sa.Column("cpu", sa.Float, nullable=False),
        sa.Column("memory_mb", sa.Integer, nullable=False),
        sa.Column("price", sa.Text, nullable=False, server_default="{}"),
        sa.Column("cost", sa.Float, nullable=False, server_default=sa.text("0")),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_attempts_project_created", "attempts", ["project_id", "created_at"])
    op.create_table(
        "target_prices",
        sa.Column("target", sa.String(63), primary_key=True),
        sa.Column("price", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "budgets",
        sa.Column("project_id", sa.String(24), sa.ForeignKey("projects.id"), primary_key=True),
        sa.Column("daily", sa.Float),
        sa.Column("monthly", sa.Float),
        sa.Column("alert_url", sa.Text),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "budget_alerts",
        sa.Column("project_id", sa.String(24), primary_key=True),
        sa.Column("period", sa.String(32), primary_key=True),
        sa.Column("level", sa.Integer, primary_key=True),
        sa.Column("spent", sa.Float, nullable=False),
        sa.Column("limit", sa.Float, nullable=False),
        sa.Column("delivery_id", sa.String(24)),
        sa.Column("created_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("budget_alerts")
    op.drop_table("budgets")
    op.drop_table("target_prices")
    op.drop_index("ix_attempts_project_created", table_name="attempts")
    op.drop_table("attempts")
