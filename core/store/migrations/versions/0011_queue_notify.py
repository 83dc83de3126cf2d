"""PostgreSQL: a send to a queue in the store notifies its receivers on every machine (LISTEN/NOTIFY).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07

A statement-level trigger on ``queue_messages`` calls ``pg_notify('mayfly_queues', queue)``
once per queue an INSERT wrote to; PostgreSQL delivers it at commit, and folds repeats
within a transaction into one. Receivers relay it to their home's wake-ups
(:mod:`mayfly.core.queues.notify`). SQLite has no such thing and needs none: its queues
live in one home, whose wake-ups reach every process that can read them.
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

CHANNEL = "mayfly_queues"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "CREATE FUNCTION mayfly_queue_notify() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN PERFORM pg_notify('{CHANNEL}', q) FROM (SELECT DISTINCT queue AS q FROM inserted) AS d; "
        "RETURN NULL; END $$"
    )
    op.execute(
        "CREATE TRIGGER queue_messages_notify AFTER INSERT ON queue_messages "
        "REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION mayfly_queue_notify()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS queue_messages_notify ON queue_messages")
    op.execute("DROP FUNCTION IF EXISTS mayfly_queue_notify()")
