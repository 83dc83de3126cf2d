"""Tasks: queue (validated), look up, list, cancel, retry, read logs.

Queueing pins the code's latest revision. Every input is checked before the
write transaction starts, so a rejected task stores nothing.
"""

from __future__ import annotations

import builtins
import contextlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Connection, func, insert, select, update

from mayfly.core import budgets, placement, validate
from mayfly.core.admission import Requirements
from mayfly.core.blobs import BlobStore
from mayfly.core.codes import validate_env
from mayfly.core.config import Limits
from mayfly.core.errors import (
    CodeNotFound,
    InvalidInput,
    InvalidPayload,
    PayloadTooLarge,
    TargetUnsupported,
    TaskAlreadyFinished,
    TaskNotFinished,
    TaskNotFound,
    Unsupported,
)
from mayfly.core.ids import new_id
from mayfly.core.lifecycle import cancel_queued, cancel_queued_of_code, create_retry, load_task
from mayfly.core.logstore import read_log
from mayfly.core.messages import CancelMessage, run_key
from mayfly.core.models import TaskStatus
from mayfly.core.records import Code, EventRecord, Revision, Task
from mayfly.core.secrets import SecretBox, dump_sealed, validate_secrets
from mayfly.core.store import Store, now
from mayfly.core.store import schema as s
from mayfly.core.webhook_urls import validate_url


@dataclass(frozen=True)
class TaskOptions:
    """Per-task settings; ``None`` takes the code revision's default."""

    priority: int | None = None
    delay: int = 0
    timeout: int | None = None
    retries: int | None = None
    #: A target, or an ordered list of them as a comma string (``aws-dev,local``): fallback targets.
    target: str | None = None
    label: str | None = None
    env: Mapping[str, str] | None = None
    #: Completion webhook URL; ``None`` takes the revision's, ``""`` means none for this task.
    webhook: str | None = None
    #: Secret values of this task (name -> value), added to (or replacing by name) the code's.
    secrets: Mapping[str, bytes] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class TaskFilter:
    """Filters of ``task list``; all optional, combined with AND."""

    status: Sequence[str] = ()
    code_name: str | None = None
    label: str | None = None
    #: Return tasks older than this id (the previous page's last id).
    before: str | None = None
    limit: int = 30
    #: Skip this many tasks first (page windows of IronWorker's ``page``/``per_page``).
    offset: int = 0
    #: Only tasks routed to this target.
    target: str | None = None
    #: Only tasks created at or after / at or before these times (epoch seconds).
    created_from: float | None = None
    created_to: float | None = None


@dataclass(frozen=True)
class TaskRequest:
    """One task of a batch that mixes codes and options (:meth:`TaskService.queue_batch`)."""

    code_name: str
    payload: str
    options: TaskOptions = field(default_factory=TaskOptions)


@dataclass(frozen=True)
class TaskCount:
    """How many tasks of a project, target, code and status there are (one row of :meth:`TaskService.census`)."""

    project: str
    target: str
    code: str
    status: str
    count: int


def validate_payload(payload: str, limits: Limits, *, text: bool = False) -> str:
    """The payload must be at most ``max_payload_bytes`` and JSON, unless ``text``.

    ``text``: the payload is any text, kept as given (IronWorker's payloads are
    strings, "usually JSON"); only NUL is refused, which no store column holds.
    """
    size = len(payload.encode())
    if size > limits.max_payload_bytes:
        raise PayloadTooLarge(f"payload is {size} bytes; the limit is {limits.max_payload_bytes} bytes (64 KB)")
    if text:
        if "\x00" in payload:
            raise InvalidPayload("payload must not contain NUL characters")
        return payload
    try:
        json.loads(payload)
    except ValueError as exc:
        raise InvalidPayload(f"payload is not valid JSON: {exc}") from None
    return payload


def task_requirements(rev: Revision, timeout: int) -> Requirements:
    """What a task of revision ``rev`` with this timeout asks of its target's provider."""
    return Requirements(network=rev.network, cpu=rev.cpu, memory_mb=rev.memory_mb, timeout=timeout)


class TaskService:
    """Queue and control tasks of a project."""

    def __init__(
        self,
        store: Store,
        limits: Limits,
        code_of: Callable[[str, str], tuple[Code, Revision]],
        admit: Callable[[str, Requirements], object],
        blobs_for: Callable[[str], BlobStore],
        send_cancel: Callable[[str, CancelMessage], None],
        on_queued: Callable[[], None] = lambda: None,
        secrets: SecretBox | None = None,
        secrets_refusal: Callable[[str], str | None] = lambda target: None,
    ) -> None:
        self.store = store
        #: Why a target cannot take secrets (its provider lacks ``Capability.SECRETS``), or None.
        self.secrets_refusal = secrets_refusal
        #: Seals the secret values of queued tasks.
        self.secrets = secrets
        #: Called after a commit that queued tasks: wakes the control plane (any process) to dispatch them.
        self.on_queued = on_queued
        self.limits = limits
        self.code_of = code_of
        #: Admission (``TargetService.admit``): the target exists and its provider can run the task.
        self.admit = admit
        self.blobs_for = blobs_for
        self.send_cancel = send_cancel

    # ------------------------------------------------------------ queue

    def row(
        self,
        project_id: str,
        code: Code,
        rev: Revision,
        payload: str,
        opts: TaskOptions,
        ts: float,
        *,
        webhook_checked: bool = False,
        text_payload: bool = False,
    ) -> dict[str, object]:
        """The validated column values of a new queued task (no id); raises on any bad input.

        ``webhook_checked``: the caller already ran the SSRF check on ``opts.webhook`` (once per bulk queue).
        ``text_payload``: the payload is any text (IronWorker's /2), stored and delivered byte for byte.
        """
        lim = self.limits
        validate_payload(payload, lim, text=text_payload)
        priority = validate.priority(rev.default_priority if opts.priority is None else opts.priority)
        validate.delay(opts.delay, lim)
        timeout = validate.timeout(rev.timeout if opts.timeout is None else opts.timeout, lim)
        retries = validate.retries(rev.retries if opts.retries is None else opts.retries, lim)
        # The task's own targets, else its revision's (both may be an ordered list: fallback targets).
        names = placement.parse(opts.target) or tuple(rev.targets)
        where = placement.place(names, self.admit, task_requirements(rev, timeout))
        target = where.first
        if opts.label is not None:
            validate.label(opts.label)
        env = validate_env(opts.env or {})
        if opts.webhook and not webhook_checked:
            validate_url(opts.webhook)
        webhook = rev.webhook if opts.webhook is None else opts.webhook
        if opts.secrets or rev.secrets:
            where = self._secret_targets(where)
            target = where.first
        sealed = self._seal(opts.secrets)
        return dict(
            project_id=project_id,
            code_id=code.id,
            code_name=code.name,
            code_rev=rev.rev,
            revision_id=rev.id,
            status=TaskStatus.QUEUED.value,
            payload=payload,
            env=json.dumps(env),
            secrets=sealed,
            priority=priority,
            timeout=timeout,
            delay=opts.delay,
            run_at=ts + opts.delay,
            target=target,
            placement=where.dumps(),
            label=opts.label,
            retries=retries,
            retries_delay=rev.retries_delay,
            webhook=webhook or None,
            created_at=ts,
            updated_at=ts,
        )

    def _secret_targets(self, where: placement.Placement) -> placement.Placement:
        """The targets of ``where`` that can pass secrets; refused (as with one target) when none can."""
        refused = {name: why for name in where.targets if (why := self.secrets_refusal(name))}
        if not refused:
            return where
        if len(refused) == len(where.targets):
            first = where.first
            raise Unsupported(f"target {first!r} cannot pass secrets: {refused[first]}")
        kept = tuple(n for n in where.targets if n not in refused)
        skipped = {**where.skipped, **{n: f"target {n!r} cannot pass secrets: {why}" for n, why in refused.items()}}
        return placement.Placement(kept, skipped)

    def _seal(self, values: Mapping[str, bytes] | None) -> str | None:
        """The ``secrets`` column of a task given ``values`` (validated, then encrypted)."""
        if not values:
            return None
        checked = validate_secrets(values)
        if self.secrets is None:
            raise Unsupported("this Mayfly has no secret key configured")
        return dump_sealed(self.secrets.seal(checked))

    def queue(
        self, project_id: str, code_name: str, payload: str, opts: TaskOptions, *, text_payload: bool = False
    ) -> Task:
        """Queue one task of the code's latest revision (``text_payload``: see :meth:`row`)."""
        return self.queue_many(project_id, code_name, [payload], opts, text_payload=text_payload)[0]

    def queue_many(
        self,
        project_id: str,
        code_name: str,
        payloads: Sequence[str],
        opts: TaskOptions,
        *,
        text_payload: bool = False,
    ) -> builtins.list[Task]:
        """Queue one task per payload in one transaction: all of them or, on any bad input, none."""
        code, rev = self.code_of(project_id, code_name)
        if opts.webhook:
            validate_url(opts.webhook)
        ts = now()
        rows = []
        for i, payload in enumerate(payloads):
            try:
                values = self.row(
                    project_id, code, rev, payload, opts, ts, webhook_checked=True, text_payload=text_payload
                )
            except InvalidInput as exc:
                # Every payload shares the options: a refusal by the target is not about payload i.
                if len(payloads) > 1 and not isinstance(exc, TargetUnsupported):
                    raise type(exc)(f"payload {i + 1}: {exc.message}") from None
                raise
            values["id"] = new_id()
            rows.append(values)
        return self._insert(rows)

    def plan(
        self, project_id: str, code_name: str, payload: str, opts: TaskOptions
    ) -> tuple[Revision, dict[str, object]]:
        """What :meth:`queue` would store, validated (and checked against the budget), storing nothing."""
        code, rev = self.code_of(project_id, code_name)
        values = self.row(project_id, code, rev, payload, opts, now())
        with self.store.read() as conn:
            budgets.check(conn, project_id, [values], now())
        return rev, values

    def queue_batch(
        self,
        project_id: str,
        requests: Sequence[TaskRequest],
        *,
        text_payload: bool = False,
        where: str = "tasks[{i}]",
    ) -> builtins.list[Task]:
        """Queue tasks of any codes and options in one transaction: all of them or, on any bad input or fault, none.

        Each code's latest revision is looked up once. In a batch of more than one, a bad
        input of request ``i`` is reported as ``where.format(i=i) + ": " + message``.
        """
        pinned: dict[str, tuple[Code, Revision]] = {}
        checked: set[str] = set()
        ts = now()
        rows = []
        for i, req in enumerate(requests):
            if req.code_name not in pinned:
                pinned[req.code_name] = self.code_of(project_id, req.code_name)
            code, rev = pinned[req.code_name]
            try:
                hook = req.options.webhook
                if hook and hook not in checked:
                    validate_url(hook)
                    checked.add(hook)
                values = self.row(
                    project_id, code, rev, req.payload, req.options, ts, webhook_checked=True, text_payload=text_payload
                )
            except InvalidInput as exc:
                if len(requests) > 1:
                    raise type(exc)(f"{where.format(i=i)}: {exc.message}") from None
                raise
            values["id"] = new_id()
            rows.append(values)
        return self._insert(rows)

    def _insert(self, rows: builtins.list[dict[str, object]]) -> builtins.list[Task]:
        """Insert prepared task rows in one transaction and ring the router's bell."""
        if rows:
            with self.store.write() as conn:
                # Inside the write transaction: two requests cannot both fit under the budget's last dollar.
                budgets.check(conn, str(rows[0]["project_id"]), rows, now())
                conn.execute(_INSERT, rows)
            self.on_queued()
        return [Task.from_row({**_UNSET, **r}) for r in rows]

    # ------------------------------------------------------------ read

    def get(self, project_id: str, task_id: str) -> Task:
        """One task of the project (another project's task is "not found")."""
        with self.store.read() as conn:
            return self._get(conn, project_id, task_id)

    def _get(self, conn: Connection, project_id: str, task_id: str) -> Task:
        task = load_task(conn, task_id)
        if task is None or task.project_id != project_id:
            raise TaskNotFound(f"unknown task {task_id!r}")
        return task

    def list(self, project_id: str, flt: TaskFilter) -> builtins.list[Task]:
        """Tasks newest first, filtered, one page."""
        for st in flt.status:
            if st not in {x.value for x in TaskStatus}:
                raise InvalidInput(f"unknown status {st!r} (one of: {', '.join(x.value for x in TaskStatus)})")
        if not 1 <= flt.limit <= 1000:
            raise InvalidInput("limit must be between 1 and 1000")
        if flt.offset < 0:
            raise InvalidInput("offset must not be negative")
        q = select(s.tasks).where(s.tasks.c.project_id == project_id)
        if flt.status:
            q = q.where(s.tasks.c.status.in_(list(flt.status)))
        if flt.code_name:
            q = q.where(s.tasks.c.code_name == flt.code_name)
        if flt.label:
            q = q.where(s.tasks.c.label == flt.label)
        if flt.before:
            q = q.where(s.tasks.c.id < flt.before)
        if flt.target:
            q = q.where(s.tasks.c.target == flt.target)
        if flt.created_from is not None:
            q = q.where(s.tasks.c.created_at >= flt.created_from)
        if flt.created_to is not None:
            q = q.where(s.tasks.c.created_at <= flt.created_to)
        q = q.order_by(s.tasks.c.id.desc()).offset(flt.offset).limit(flt.limit)
        with self.store.read() as conn:
            return [Task.from_row(r) for r in conn.execute(q).mappings()]

    def count_by_status(
        self,
        project_id: str,
        *,
        code_id: str | None = None,
        target: str | None = None,
        created_from: float | None = None,
        created_to: float | None = None,
    ) -> dict[str, int]:
        """How many tasks of the project are in each status (statuses with none are left out).

        Optionally only one code's (by id: a deleted code's tasks still count), one
        target's, or those created in ``[created_from, created_to]``.
        """
        q = select(s.tasks.c.status, func.count()).where(s.tasks.c.project_id == project_id)
        if code_id is not None:
            q = q.where(s.tasks.c.code_id == code_id)
        if target is not None:
            q = q.where(s.tasks.c.target == target)
        if created_from is not None:
            q = q.where(s.tasks.c.created_at >= created_from)
        if created_to is not None:
            q = q.where(s.tasks.c.created_at <= created_to)
        with self.store.read() as conn:
            rows = conn.execute(q.group_by(s.tasks.c.status)).all()
        return {str(st): int(n) for st, n in rows}

    def census(self, project_id: str | None = None) -> builtins.list[TaskCount]:
        """Task counts by project, target, code and status: one project's, or every project's (metrics)."""
        q = (
            select(s.projects.c.name, s.tasks.c.target, s.tasks.c.code_name, s.tasks.c.status, func.count())
            .join(s.projects, s.projects.c.id == s.tasks.c.project_id)
            .group_by(s.projects.c.name, s.tasks.c.target, s.tasks.c.code_name, s.tasks.c.status)
        )
        if project_id is not None:
            q = q.where(s.tasks.c.project_id == project_id)
        with self.store.read() as conn:
            rows = conn.execute(q).all()
        return [TaskCount(str(p), str(t), str(c), str(st), int(n)) for p, t, c, st, n in rows]

    def count_by_target(self) -> dict[str, dict[str, int]]:
        """Unfinished tasks of every project per target and status (for capacity views)."""
        with self.store.read() as conn:
            rows = conn.execute(
                select(s.tasks.c.target, s.tasks.c.status, func.count())
                .where(s.tasks.c.status.in_(["queued", "preparing", "running"]))
                .group_by(s.tasks.c.target, s.tasks.c.status)
            ).all()
        out: dict[str, dict[str, int]] = {}
        for target, status, n in rows:
            out.setdefault(str(target), {})[str(status)] = int(n)
        return out

    def events(self, project_id: str, task_id: str) -> builtins.list[EventRecord]:
        """The runner events recorded for a task, oldest first (applied or not)."""
        with self.store.read() as conn:
            self._get(conn, project_id, task_id)
            rows = conn.execute(select(s.events).where(s.events.c.task_id == task_id).order_by(s.events.c.id))
            return [EventRecord.from_row(r) for r in rows.mappings()]

    def log(
        self, project_id: str, task_id: str, attempt: int | None = None, start: int = 0, with_marker: bool = True
    ) -> Iterator[bytes]:
        """The stored log of an attempt (the latest by default) from byte ``start``."""
        task = self.get(project_id, task_id)
        n = attempt or task.attempt
        if n < 1:
            return iter(())
        return read_log(self.blobs_for(task.target), task.id, n, start, with_marker=with_marker)

    # ------------------------------------------------------------ control

    def cancel(self, project_id: str, task_id: str) -> Task:
        """Cancel a task: at once if it holds no container, else ask the runner and wait for its stop."""
        ts = now()
        with self.store.write() as conn:
            task = self._get(conn, project_id, task_id)
            if task.task_status.terminal:
                raise TaskAlreadyFinished(f"task {task_id} already finished ({task.status}); nothing to cancel")
            if task.task_status is TaskStatus.QUEUED:
                cancel_queued(conn, task, ts)
                return self._get(conn, project_id, task_id)
            conn.execute(update(s.tasks).where(s.tasks.c.id == task.id).values(cancel_requested=True, updated_at=ts))
        # The record comes first: a runner that has not launched yet sees it and never launches.
        self.blobs_for(task.target).put(run_key(task.id, task.attempt, "cancel"), b"{}")
        self.send_cancel(task.target, CancelMessage(task.id, task.attempt))
        return self.get(project_id, task_id)

    def set_progress(self, project_id: str, task_id: str, percent: int | None, msg: str | None) -> Task:
        """Record the progress a worker reports (0-100 and a message); a finished task keeps its last."""
        if percent is not None and not 0 <= percent <= 100:
            raise InvalidInput("percent must be between 0 and 100")
        if msg is not None and len(msg.encode()) > self.limits.max_payload_bytes:
            raise InvalidInput(f"progress message is larger than {self.limits.max_payload_bytes} bytes")
        with self.store.write() as conn:
            task = self._get(conn, project_id, task_id)
            if task.task_status.terminal:
                raise TaskAlreadyFinished(f"task {task_id} already ended ({task.status})")
            values: dict[str, object] = {"updated_at": now()}
            if percent is not None:
                values["percent"] = percent
            if msg is not None:
                values["progress_msg"] = msg
            conn.execute(update(s.tasks).where(s.tasks.c.id == task_id).values(**values))
            return self._get(conn, project_id, task_id)

    def cancel_all(self, project_id: str, code_name: str) -> tuple[int, int]:
        """Cancel every queued and running task of a code; returns (cancelled now, being stopped)."""
        code, _ = self.code_of(project_id, code_name)
        ts = now()
        with self.store.write() as conn:
            queued = cancel_queued_of_code(conn, code.id, ts)
            active = (
                conn.execute(
                    select(s.tasks.c.id).where(
                        s.tasks.c.code_id == code.id, s.tasks.c.status.in_(["preparing", "running"])
                    )
                )
                .scalars()
                .all()
            )
        for task_id in active:
            with contextlib.suppress(TaskAlreadyFinished):
                self.cancel(project_id, task_id)
        return int(queued), len(active)

    def retry(self, project_id: str, task_id: str, delay: int = 0) -> Task:
        """Queue a new task that repeats a finished one (same revision, payload and options)."""
        validate.delay(delay, self.limits)
        with self.store.write() as conn:
            task = self._get(conn, project_id, task_id)
            if not task.task_status.terminal:
                raise TaskNotFinished(f"task {task_id} is still {task.status}; cancel it first or wait")
            deleted = conn.execute(select(s.codes.c.deleted_at).where(s.codes.c.id == task.code_id)).scalar()
            if deleted is not None:
                raise CodeNotFound(f"code {task.code_name!r} of task {task_id} was deleted; push it again first")
            again = {"code_name": task.code_name, "target": task.target, "revision_id": task.revision_id}
            budgets.check(conn, project_id, [{**again, "timeout": task.timeout}], now())
            new = create_retry(conn, task, now(), delay=float(delay))
            retried = self._get(conn, project_id, new)
        self.on_queued()
        return retried


_INSERT = insert(s.tasks)

#: Column values of a new task that ``_values`` does not set (the table's defaults).
_UNSET: dict[str, object] = {
    "reason": None,
    "msg": None,
    "retry_of": None,
    "retried_by": None,
    "exit_code": None,
    "result": None,
    "handle": None,
    "schedule_id": None,
    "wait_for": None,
    "dispatched_at": None,
    "start_time": None,
    "end_time": None,
    "retry_count": 0,
    "attempt": 0,
    "infra_failures": 0,
    "log_size": 0,
    "log_truncated": False,
    "cancel_requested": False,
    "dispatch_pending": False,
}
