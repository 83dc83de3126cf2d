"""Queues and blobs in the store: a Docker target served by runners on several machines (issue 17 part 3).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "queue_messages",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("queue", sa.String(255), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("visible_at", sa.Float, nullable=False),
        sa.Column("receipt", sa.String(64)),
        sa.Column("deliveries", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_queue_messages_visible", "queue_messages", ["queue", "visible_at", "id"])
    op.create_index("ix_queue_messages_receipt", "queue_messages", ["receipt"])
    op.create_table(
        "blobs",
        # Byte order ("C") on PostgreSQL, so a prefix listing is an index range and sorts as keys do elsewhere.
        sa.Column("key", sa.String(1024).with_variant(sa.String(1024, collation="C"), "postgresql"), primary_key=True),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("blobs")
    op.drop_table("queue_messages")
