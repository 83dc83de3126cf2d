"""Initial schema: projects, targets, codes, revisions, tasks, events.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.String(24)


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", ID, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "targets",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("provider", sa.String(63), nullable=False),
        sa.Column("settings", sa.Text, nullable=False, server_default="{}"),
        sa.Column("capacity", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "codes",
        sa.Column("id", ID, primary_key=True),
        sa.Column("project_id", ID, sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("latest_rev", sa.Integer, nullable=False),
        sa.Column("paused", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.UniqueConstraint("project_id", "name", name="uq_codes_project_name"),
    )
    op.create_table(
        "code_revisions",
        sa.Column("id", ID, primary_key=True),
        sa.Column("code_id", ID, sa.ForeignKey("codes.id"), nullable=False),
        sa.Column("rev", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("sha256", sa.String(64)),
        sa.Column("size", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("blob_key", sa.String(255)),
        sa.Column("runtime", sa.String(63)),
        sa.Column("image", sa.String(512), nullable=False),
        sa.Column("command", sa.Text, nullable=False),
        sa.Column("env", sa.Text, nullable=False, server_default="{}"),
        sa.Column("config", sa.Text, nullable=False, server_default=""),
        sa.Column("max_concurrency", sa.Integer),
        sa.Column("retries", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("retries_delay", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("timeout", sa.Integer, nullable=False),
        sa.Column("default_priority", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("target", sa.String(63), nullable=False),
        sa.Column("network", sa.String(63), nullable=False),
        sa.Column("cpu", sa.Float, nullable=False),
        sa.Column("memory_mb", sa.Integer, nullable=False),
        sa.Column("ironworker", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.UniqueConstraint("code_id", "rev", name="uq_code_revisions_code_rev"),
    )
    op.create_table(
        "tasks",
        sa.Column("id", ID, primary_key=True),
        sa.Column("project_id", ID, sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("code_id", ID, sa.ForeignKey("codes.id"), nullable=False),
        sa.Column("code_name", sa.String(255), nullable=False),
        sa.Column("code_rev", sa.Integer, nullable=False),
        sa.Column("revision_id", ID, sa.ForeignKey("code_revisions.id"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(32)),
        sa.Column("msg", sa.Text),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("env", sa.Text, nullable=False, server_default="{}"),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("timeout", sa.Integer, nullable=False),
        sa.Column("delay", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("run_at", sa.Float, nullable=False),
        sa.Column("target", sa.String(63), nullable=False),
        sa.Column("label", sa.String(255)),
        sa.Column("retries", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("retries_delay", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("retry_count", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("retry_of", ID),
        sa.Column("retried_by", ID),
        sa.Column("attempt", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("infra_failures", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("exit_code", sa.Integer),
        sa.Column("result", sa.Text),
        sa.Column("log_size", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("log_truncated", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("handle", sa.String(512)),
        sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("dispatch_pending", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("schedule_id", ID),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("dispatched_at", sa.Float),
        sa.Column("start_time", sa.Float),
        sa.Column("end_time", sa.Float),
    )
    queued = sa.text("status = 'queued'")
    active = sa.text("status IN ('preparing', 'running')")
    op.create_index("ix_tasks_queued", "tasks", ["target", "priority", "id"],
                    sqlite_where=queued, postgresql_where=queued)
    op.create_index("ix_tasks_active_code", "tasks", ["code_id"], sqlite_where=active, postgresql_where=active)
    op.create_index("ix_tasks_active_target", "tasks", ["target"], sqlite_where=active, postgresql_where=active)
    op.create_index("ix_tasks_outbox", "tasks", ["id"], sqlite_where=sa.text("dispatch_pending = 1"),
                    postgresql_where=sa.text("dispatch_pending"))
    op.create_index("ix_tasks_project_status", "tasks", ["project_id", "status", "id"])
    op.create_index("ix_tasks_project_code", "tasks", ["project_id", "code_name", "id"])
    op.create_index("ix_tasks_project_label", "tasks", ["project_id", "label", "id"])
    op.create_index("ix_tasks_project_id", "tasks", ["project_id", "id"])
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("task_id", ID, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("data", sa.Text, nullable=False, server_default="{}"),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("applied", sa.Boolean, nullable=False),
        sa.Column("note", sa.Text),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_events_task", "events", ["task_id", "id"])


def downgrade() -> None:
    for table in ("events", "tasks", "code_revisions", "codes", "targets", "projects"):
        op.drop_table(table)
