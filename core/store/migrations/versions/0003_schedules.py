"""Schedules and their fires; tasks may wait for another task (overlap policy "replace").

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ID = sa.String(24)


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("id", ID, primary_key=True),
        sa.Column("project_id", ID, sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("code_id", ID, sa.ForeignKey("codes.id"), nullable=False),
        sa.Column("code_name", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("cron", sa.String(255)),
        sa.Column("every", sa.Integer),
        sa.Column("tz", sa.String(64), nullable=False),
        sa.Column("start_at", sa.Float, nullable=False),
        sa.Column("end_at", sa.Float),
        sa.Column("run_times", sa.Integer),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("priority", sa.Integer),
        sa.Column("timeout", sa.Integer),
        sa.Column("target", sa.String(63)),
        sa.Column("label", sa.String(255)),
        sa.Column("missed", sa.String(8), nullable=False),
        sa.Column("overlap", sa.String(8), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("msg", sa.Text),
        sa.Column("next_start", sa.Float),
        sa.Column("last_run_time", sa.Float),
        sa.Column("run_count", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_schedules_due", "schedules", ["status", "next_start"])
    op.create_index("ix_schedules_project", "schedules", ["project_id", "id"])
    op.create_table(
        "schedule_fires",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("schedule_id", ID, sa.ForeignKey("schedules.id"), nullable=False),
        sa.Column("slot_ms", sa.BigInteger, nullable=False),
        sa.Column("fired_at", sa.Float, nullable=False),
        sa.Column("task_id", ID),
        sa.Column("skipped", sa.Boolean, nullable=False),
        sa.Column("reason", sa.Text),
        sa.UniqueConstraint("schedule_id", "slot_ms", name="uq_schedule_fires_slot"),
    )
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("wait_for", ID))
    op.create_index("ix_tasks_schedule", "tasks", ["schedule_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_tasks_schedule", "tasks")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("wait_for")
    op.drop_table("schedule_fires")
    op.drop_table("schedules")
