"""The store's tables (SQLAlchemy Core). Alembic migrations under ``migrations/`` create them.

Times are epoch seconds (float, UTC). JSON columns hold text so SQLite and
PostgreSQL store them alike. A test checks that the migrations produce exactly
this metadata.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)

# Partial-index predicates, written once. SQLite uses a partial index only when the query
# repeats its term: a bound ``IN (?, ?)`` or ``IS 1`` does not match, so queries that want
# these indexes use the same text (``ACTIVE``) or ``== true()``, never ``in_()`` / ``is_(True)``.
QUEUED = "status = 'queued'"
ACTIVE = "status IN ('preparing', 'running')"

#: The same predicates on PostgreSQL, by index name. Naming them in each ``Index`` as
#: ``postgresql_where=`` made SQLAlchemy load its PostgreSQL dialect (about a third of
#: SQLAlchemy's import time) in every process, the CLI on SQLite included; a store on
#: PostgreSQL attaches them when it opens (:func:`use_postgresql`).
POSTGRESQL_WHERE = {
    "ix_tasks_queued": QUEUED,
    "ix_tasks_active_code": ACTIVE,
    "ix_tasks_active_target": ACTIVE,
    "ix_tasks_outbox": "dispatch_pending",
    "ix_webhook_deliveries_due": "attempted_at IS NULL",
}

metadata = MetaData()

ID = String(24)

projects = Table(
    "projects",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
    # Key of the HMAC signature on completion webhooks; created on first use, kept in clear (HMAC needs it).
    Column("webhook_secret", String(64)),
)

targets = Table(
    "targets",
    metadata,
    Column("name", String(63), primary_key=True),
    Column("provider", String(63), nullable=False),
    # The provider's settings, validated by its pydantic Settings model.
    Column("settings", Text, nullable=False, server_default="{}"),
    # How many tasks may be preparing or running on this target at once.
    Column("capacity", Integer, nullable=False),
    # True: `mayfly server` runs this target's runner; False: it runs elsewhere (in its cloud).
    Column("embedded_runner", Boolean, nullable=False, server_default=true()),
    Column("created_at", Float, nullable=False),
)

codes = Table(
    "codes",
    metadata,
    Column("id", ID, primary_key=True),
    Column("project_id", ID, ForeignKey("projects.id"), nullable=False),
    Column("name", String(255), nullable=False),
    Column("latest_rev", Integer, nullable=False),
    # A paused code keeps its queued tasks queued (IronWorker's pause_task_queue).
    Column("paused", Boolean, nullable=False, server_default=false()),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    # A deleted code keeps its row for its tasks' history; its name becomes "~<id>" to free the real one.
    Column("deleted_at", Float),
    UniqueConstraint("project_id", "name", name="uq_codes_project_name"),
)

code_revisions = Table(
    "code_revisions",
    metadata,
    Column("id", ID, primary_key=True),
    Column("code_id", ID, ForeignKey("codes.id"), nullable=False),
    Column("rev", Integer, nullable=False),
    # "zip": a code package on a runtime; "image": a ready image.
    Column("kind", String(8), nullable=False),
    Column("sha256", String(64)),
    Column("size", Integer, nullable=False, server_default=text("0")),
    Column("blob_key", String(255)),
    Column("runtime", String(63)),
    Column("image", String(512), nullable=False),
    Column("command", Text, nullable=False),
    Column("env", Text, nullable=False, server_default="{}"),
    Column("config", Text, nullable=False, server_default=""),
    Column("max_concurrency", Integer),
    Column("retries", Integer, nullable=False, server_default=text("0")),
    Column("retries_delay", Integer, nullable=False, server_default=text("0")),
    Column("timeout", Integer, nullable=False),
    Column("default_priority", Integer, nullable=False, server_default=text("0")),
    Column("target", String(63), nullable=False),
    Column("network", String(63), nullable=False),
    Column("cpu", Float, nullable=False),
    Column("memory_mb", Integer, nullable=False),
    # Pass IronWorker's -payload/-config/-id/-d arguments and env.
    Column("ironworker", Boolean, nullable=False, server_default=false()),
    # Completion webhook URL: the default of its tasks.
    Column("webhook", Text),
    Column("created_at", Float, nullable=False),
    # Secret values: JSON name -> Fernet token (core/secrets.py); NULL when none.
    Column("secrets", Text),
    # Fallback targets (core/placement.py): {"targets": [...], "skipped": {name: reason}}; NULL: ``target`` alone.
    Column("placement", Text),
    UniqueConstraint("code_id", "rev", name="uq_code_revisions_code_rev"),
)

tasks = Table(
    "tasks",
    metadata,
    Column("id", ID, primary_key=True),
    Column("project_id", ID, ForeignKey("projects.id"), nullable=False),
    Column("code_id", ID, ForeignKey("codes.id"), nullable=False),
    Column("code_name", String(255), nullable=False),
    Column("code_rev", Integer, nullable=False),
    Column("revision_id", ID, ForeignKey("code_revisions.id"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", String(32)),
    Column("msg", Text),
    Column("payload", Text, nullable=False),
    Column("env", Text, nullable=False, server_default="{}"),
    Column("priority", Integer, nullable=False),
    Column("timeout", Integer, nullable=False),
    Column("delay", Integer, nullable=False, server_default=text("0")),
    # When the task becomes due (created_at + delay, or the next retry time).
    Column("run_at", Float, nullable=False),
    Column("target", String(63), nullable=False),
    Column("label", String(255)),
    # User retries: max for this task, delay, and how many came before this one.
    Column("retries", Integer, nullable=False, server_default=text("0")),
    Column("retries_delay", Integer, nullable=False, server_default=text("0")),
    Column("retry_count", Integer, nullable=False, server_default=text("0")),
    Column("retry_of", ID),
    Column("retried_by", ID),
    # Container attempts of this task: infrastructure failures relaunch on their own budget.
    Column("attempt", Integer, nullable=False, server_default=text("0")),
    Column("infra_failures", Integer, nullable=False, server_default=text("0")),
    Column("exit_code", Integer),
    Column("result", Text),
    Column("log_size", Integer, nullable=False, server_default=text("0")),
    Column("log_truncated", Boolean, nullable=False, server_default=false()),
    Column("handle", String(512)),
    Column("cancel_requested", Boolean, nullable=False, server_default=false()),
    # Outbox flag: the task message for the current attempt still has to be sent.
    Column("dispatch_pending", Boolean, nullable=False, server_default=false()),
    Column("schedule_id", ID),
    # Not dispatched before this task has ended (a schedule's "replace" overlap policy).
    Column("wait_for", ID),
    # Completion webhook URL (the task's own, else its revision's); None: no webhook.
    Column("webhook", Text),
    # Progress a worker reports (IronWorker's POST .../progress): 0-100 and a message.
    Column("percent", Integer),
    Column("progress_msg", Text),
    # The task's own secret values: JSON name -> Fernet token (core/secrets.py); NULL when none.
    Column("secrets", Text),
    # Fallback targets (core/placement.py): {"targets": [...], "skipped": {name: reason}}; NULL: ``target`` alone.
    # ``target`` is where the current (or next) attempt runs; a move rewrites it.
    Column("placement", Text),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("dispatched_at", Float),
    Column("start_time", Float),
    Column("end_time", Float),
    # The router's scan: due queued tasks of a target in priority, then FIFO, order.
    Index(
        "ix_tasks_queued",
        "target",
        "priority",
        "id",
        sqlite_where=text(QUEUED),
    ),
    # Slot counting per code and per target.
    Index(
        "ix_tasks_active_code",
        "code_id",
        sqlite_where=text(ACTIVE),
    ),
    Index(
        "ix_tasks_active_target",
        "target",
        sqlite_where=text(ACTIVE),
    ),
    Index(
        "ix_tasks_outbox",
        "id",
        sqlite_where=text("dispatch_pending = 1"),
    ),
    Index("ix_tasks_project_status", "project_id", "status", "id"),
    Index("ix_tasks_project_code", "project_id", "code_name", "id"),
    Index("ix_tasks_project_label", "project_id", "label", "id"),
    Index("ix_tasks_project_id", "project_id", "id"),
    Index("ix_tasks_schedule", "schedule_id", "id"),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("task_id", ID, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("data", Text, nullable=False, server_default="{}"),
    Column("at", Float, nullable=False),
    # False when the event arrived late (terminal task, stale attempt) and changed nothing.
    Column("applied", Boolean, nullable=False),
    Column("note", Text),
    Column("created_at", Float, nullable=False),
    Index("ix_events_task", "task_id", "id"),
)

schedules = Table(
    "schedules",
    metadata,
    Column("id", ID, primary_key=True),
    Column("project_id", ID, ForeignKey("projects.id"), nullable=False),
    Column("code_id", ID, ForeignKey("codes.id"), nullable=False),
    Column("code_name", String(255), nullable=False),
    # "cron", "every" (seconds) or "at" (once).
    Column("kind", String(8), nullable=False),
    Column("cron", String(255)),
    Column("every", Integer),
    # IANA zone cron is evaluated in.
    Column("tz", String(64), nullable=False),
    Column("start_at", Float, nullable=False),
    Column("end_at", Float),
    Column("run_times", Integer),
    Column("payload", Text, nullable=False),
    Column("priority", Integer),
    Column("timeout", Integer),
    Column("target", String(63)),
    Column("label", String(255)),
    # Slots missed while no control plane ran: "skip", "once" or "all".
    Column("missed", String(8), nullable=False),
    # A slot while the previous run is unfinished: "allow", "forbid" or "replace".
    Column("overlap", String(8), nullable=False),
    # "scheduled", "paused", "complete" or "cancelled".
    Column("status", String(16), nullable=False),
    Column("msg", Text),
    # The next slot (UTC epoch seconds), None once finished.
    Column("next_start", Float),
    Column("last_run_time", Float),
    Column("run_count", Integer, nullable=False, server_default=text("0")),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Index("ix_schedules_due", "status", "next_start"),
    Index("ix_schedules_project", "project_id", "id"),
)

schedule_fires = Table(
    "schedule_fires",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("schedule_id", ID, ForeignKey("schedules.id"), nullable=False),
    # The slot's instant in UTC milliseconds: with the schedule, the identity of a fire.
    Column("slot_ms", BigInteger, nullable=False),
    Column("fired_at", Float, nullable=False),
    Column("task_id", ID),
    Column("skipped", Boolean, nullable=False),
    Column("reason", Text),
    UniqueConstraint("schedule_id", "slot_ms", name="uq_schedule_fires_slot"),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", ID, primary_key=True),
    Column("project_id", ID, ForeignKey("projects.id"), nullable=False),
    Column("name", String(100)),
    # SHA-256 of the secret: the secret itself is shown once and never stored.
    Column("hash", String(64), nullable=False, unique=True),
    # The first characters of the secret, to recognise a token in lists.
    Column("prefix", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float),
    Column("revoked_at", Float),
    Column("last_used_at", Float),
    Index("ix_tokens_project", "project_id", "id"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    # One row per attempt; the row of a pending attempt has no attempted_at yet (the outbox).
    Column("id", Integer, primary_key=True, autoincrement=True),
    # Shared by every attempt of one delivery (task, status reached): receivers dedupe on it.
    Column("delivery_id", ID, nullable=False),
    Column("task_id", ID, ForeignKey("tasks.id"), nullable=False),
    Column("project_id", ID, ForeignKey("projects.id"), nullable=False),
    # The terminal status the task reached.
    Column("status", String(16), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("url", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    # When the attempt is due; a deliverer pushes it forward while it holds the attempt (a lease).
    Column("next_attempt_at", Float, nullable=False),
    Column("attempted_at", Float),
    Column("status_code", Integer),
    Column("error", Text),
    Column("delivered", Boolean, nullable=False, server_default=false()),
    Index(
        "ix_webhook_deliveries_due",
        "next_attempt_at",
        sqlite_where=text("attempted_at IS NULL"),
    ),
    Index("ix_webhook_deliveries_task", "task_id", "id"),
)

queue_messages = Table(
    "queue_messages",
    metadata,
    # The queues of targets whose runners share the store (core/queues/store.py): PostgreSQL only in use.
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    # "<target>.<kind>", and "<target>.<kind>-dlq" for its dead letters.
    Column("queue", String(255), nullable=False),
    Column("body", Text, nullable=False),
    # Epoch seconds (the database's clock) when the message may be received (again).
    Column("visible_at", Float, nullable=False),
    # The current delivery's token ("<random>-<id>"): ack and extend need it.
    Column("receipt", String(64)),
    Column("deliveries", Integer, nullable=False, server_default=text("0")),
    Column("created_at", Float, nullable=False),
    Index("ix_queue_messages_visible", "queue", "visible_at", "id"),
    Index("ix_queue_messages_receipt", "receipt"),
)

blobs = Table(
    "blobs",
    metadata,
    # The blob store of targets whose runners share the store (core/blobs/store.py): PostgreSQL only in use.
    # Byte order ("C") on PostgreSQL, so a prefix listing is an index range and sorts as keys do elsewhere.
    Column("key", String(1024).with_variant(String(1024, collation="C"), "postgresql"), primary_key=True),
    Column("data", LargeBinary, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("created_at", Float, nullable=False),
)

# A target's circuit breaker (core/breaker.py): movable launch failures in a row; open until ``open_until``.
target_breakers = Table(
    "target_breakers",
    metadata,
    Column("target", String(63), primary_key=True),
    Column("failures", Integer, nullable=False, server_default=text("0")),
    # When it opened (NULL: closed); it stays half-open after ``open_until`` until a launch works or fails.
    Column("opened_at", Float),
    Column("open_until", Float),
    Column("last_kind", String(32)),
    Column("last_message", Text),
    Column("updated_at", Float, nullable=False),
)

attempts = Table(
    "attempts",
    metadata,
    # One row per (task, attempt) that reached its end: where it ran, for how long it was billed, what it cost.
    Column("task_id", ID, primary_key=True),
    Column("attempt", Integer, primary_key=True),
    Column("project_id", ID, nullable=False),
    Column("code_name", String(255), nullable=False),
    Column("target", String(63), nullable=False),
    Column("provider", String(63), nullable=False),
    Column("region", String(63)),
    # The event that ended the attempt: exited, lost, launch_failed.
    Column("outcome", String(32), nullable=False),
    # The provider's own clock (epoch seconds): the billed interval, when the provider reported one.
    Column("started_at", Float),
    Column("stopped_at", Float),
    Column("billed_seconds", Float, nullable=False, server_default=text("0")),
    Column("cpu", Float, nullable=False),
    Column("memory_mb", Integer, nullable=False),
    # The price used (JSON: rates per second, currency, source, date), so a later price change rewrites nothing.
    Column("price", Text, nullable=False, server_default="{}"),
    Column("cost", Float, nullable=False, server_default=text("0")),
    Column("created_at", Float, nullable=False),
    Index("ix_attempts_project_created", "project_id", "created_at"),
)

target_prices = Table(
    "target_prices",
    metadata,
    # A target's own price (`mayfly target price NAME --set ...`), over the shipped table.
    Column("target", String(63), primary_key=True),
    Column("price", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
)

budgets = Table(
    "budgets",
    metadata,
    # A project's spending limits in USD (`mayfly project budget`); None: no limit for that period.
    Column("project_id", ID, ForeignKey("projects.id"), primary_key=True),
    Column("daily", Float),
    Column("monthly", Float),
    # Where the 80 % and 100 % alerts are posted (signed like completion webhooks).
    Column("alert_url", Text),
    Column("updated_at", Float, nullable=False),
)

budget_alerts = Table(
    "budget_alerts",
    metadata,
    # One row per alert sent: a project's period ("daily:2026-12-07") crossed a level (80, 100) once.
    Column("project_id", ID, primary_key=True),
    Column("period", String(32), primary_key=True),
    Column("level", Integer, primary_key=True),
    Column("spent", Float, nullable=False),
    Column("limit", Float, nullable=False),
    Column("delivery_id", ID),
    Column("created_at", Float, nullable=False),
)


control_planes = Table(
    "control_planes",
    metadata,
    # One row per live control plane on the store (core/peers.py): each paces its passes by their number.
    Column("id", String(64), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("seen_at", Float, nullable=False),
)


def use_postgresql() -> None:
    """Give the partial indexes their PostgreSQL predicates (:data:`POSTGRESQL_WHERE`); idempotent."""
    for table in metadata.tables.values():
        for index in table.indexes:
            where = POSTGRESQL_WHERE.get(str(index.name))
            if where is not None and index.dialect_options["postgresql"]["where"] is None:
                index.dialect_options["postgresql"]["where"] = text(where)
