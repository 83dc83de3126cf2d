"""``mayfly task``: queue, show, list, log, cancel, retry."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from mayfly.cli.codes import secret_options
from mayfly.cli.context import open_app
from mayfly.cli.coreoptions import OptionValues, extra, with_options
from mayfly.cli.costs import show_attempts
from mayfly.cli.follow import follow, summary
from mayfly.cli.options import JsonOpt, ProjectOpt, QuietOpt
from mayfly.cli.output import fields, print_json, say, table
from mayfly.cli.terminal import LogSink
from mayfly.core.codes import parse_env_pairs
from mayfly.core.errors import InvalidInput
from mayfly.core.options import BY_NAME, TASK
from mayfly.core.pricing import usd
from mayfly.core.records import Task, iso, placement_of
from mayfly.core.secrets import names_of
from mayfly.core.tasks import TaskFilter, TaskOptions

app = typer.Typer(help="Tasks: one run of a code with a JSON payload.", no_args_is_help=True)

Payload = Annotated[str | None, typer.Option("--payload", "-p", help="JSON payload (default: {}).")]
PayloadFile = Annotated[
    Path | None, typer.Option("--payload-file", "-f", help="Read the JSON payload from a file ('-' for stdin).")
]
Env = Annotated[list[str] | None, typer.Option("--env", "-e", help="Extra environment KEY=VALUE (repeatable).")]
Secret = Annotated[
    list[str] | None,
    typer.Option("--secret", help="Secret NAME=VALUE for this task, over the code's (repeatable; never shown)."),
]
SecretFile = Annotated[
    list[str] | None, typer.Option("--secret-file", help="Secret NAME=PATH: the file's bytes (repeatable).")
]
#: ``task list --label`` and ``task retry --delay`` say what core's table says of a task's label and delay.
Label = Annotated[str | None, typer.Option("--label", help=BY_NAME["label"].help[TASK])]
Delay = Annotated[int, typer.Option("--delay", help=BY_NAME["delay"].help[TASK])]

#: The options of ``task queue`` and ``run`` besides core's table (their command-line shape is the CLI's own).
TASK_EXTRAS = (extra("env", Env), extra("secret", Secret), extra("secret_file", SecretFile))


def read_payloads(payload: str | None, payload_file: Path | None, jsonl: bool) -> list[str]:
    """One payload, or one per non-empty line of a ``.jsonl`` file (bulk queue)."""
    text = read_payload(payload, payload_file)
    bulk = jsonl or (payload_file is not None and payload_file.suffix == ".jsonl")
    if not bulk:
        return [text]
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise InvalidInput("the payload file has no lines")
    return lines


def read_payload(payload: str | None, payload_file: Path | None) -> str:
    """The payload text from --payload or --payload-file (not both)."""
    if payload is not None and payload_file is not None:
        raise InvalidInput("give --payload or --payload-file, not both")
    if payload_file is not None:
        if str(payload_file) == "-":
            return sys.stdin.read()
        try:
            return payload_file.read_text()
        except OSError as exc:
            raise InvalidInput(f"cannot read payload file {payload_file}: {exc.strerror}") from None
    return "{}" if payload is None else payload


def task_options(values: OptionValues) -> TaskOptions:
    """A task's options from what ``task queue``/``run`` were given (core's table rows pass through as they are)."""
    values = dict(values)
    env, secret, secret_file = values.pop("env"), values.pop("secret"), values.pop("secret_file")
    return TaskOptions(secrets=secret_options(secret, secret_file), env=parse_env_pairs(env) if env else None, **values)


def show_task(task: Task) -> None:
    fields(
        [
            ("id", task.id),
            ("code", f"{task.code_name} rev {task.code_rev}"),
            ("status", task.status),
            ("reason", task.reason),
            ("msg", task.msg),
            ("exit code", task.exit_code),
            ("attempt", task.attempt),
            ("target", task.target),
            ("targets", ", ".join(task.targets) if len(task.targets) > 1 else None),
            *((f"skipped {name}", why) for name, why in placement_of(task.placement, task.target)[1].items()),
            ("priority", task.priority),
            ("label", task.label),
            ("timeout", task.timeout),
            ("created", iso(task.created_at)),
            ("started", iso(task.start_time)),
            ("ended", iso(task.end_time)),
            ("duration ms", task.duration_ms),
            ("retry of", task.retry_of),
            ("retried by", task.retried_by),
            ("log bytes", task.log_size or None),
            ("log truncated", task.log_truncated or None),
            ("secrets", ", ".join(f"{n} (set)" for n in names_of(task.secrets)) or None),
            ("result", task.to_json()["result"]),
        ]
    )


@app.command("queue")
@with_options(TASK, TASK_EXTRAS)
def queue(
    code: Annotated[str, typer.Argument(help="Code name.")],
    payload: Payload = None,
    payload_file: PayloadFile = None,
    *,
    options: OptionValues,
    jsonl: Annotated[
        bool, typer.Option("--jsonl", help="The payload file holds one payload per line (implied by .jsonl).")
    ] = False,
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Queue a task of CODE (or one per line of a .jsonl payload file, all or none); prints the ids."""
    mf = open_app()
    payloads = read_payloads(payload, payload_file, jsonl)
    opts = task_options(options)
    tasks = mf.tasks.queue_many(mf.project_id(project), code, payloads, opts)
    if as_json:
        print_json(tasks[0].to_json() if len(payloads) == 1 and not jsonl else {"tasks": [t.to_json() for t in tasks]})
    else:
        for t in tasks:
            say(t.id)


@app.command("show")
def show(
    task_id: Annotated[str, typer.Argument(help="Task id.")],
    project: ProjectOpt = None,
    events: Annotated[bool, typer.Option("--events", help="Also list the runner events.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Show a task: status, reason, exit code, times, result."""
    mf = open_app()
    pid = mf.project_id(project)
    task = mf.tasks.get(pid, task_id)
    deliveries = mf.webhooks.deliveries(pid, task_id) if task.webhook else []
    attempts = mf.costs.attempts(task.id)
    if as_json:
        doc = task.to_json()
        doc["cost"] = round(sum(a.cost for a in attempts), 12)
        doc["attempts"] = [a.to_json() for a in attempts]
        doc["webhook"] = (
            {"url": task.webhook, "deliveries": [d.to_json() for d in deliveries]} if task.webhook else None
        )
        if events:
            doc["events"] = [e.to_json() for e in mf.tasks.events(pid, task_id)]
        print_json(doc)
        return
    show_task(task)
    show_attempts(attempts)
    if task.webhook:
        fields([("webhook", task.webhook)])
        table(
            ("ATTEMPT", "EVENT", "AT", "STATUS CODE", "ERROR", "DELIVERED"),
            (
                (
                    d.attempt,
                    d.event,
                    iso(d.attempted_at) or f"due {iso(d.next_attempt_at)}",
                    d.status_code,
                    d.error,
                    d.delivered,
                )
                for d in deliveries
            ),
        )
    if events:
        table(
            ("AT", "ATTEMPT", "KIND", "APPLIED", "NOTE"),
            ((e.to_json()["at"], e.attempt, e.kind, e.applied, e.note or "") for e in mf.tasks.events(pid, task_id)),
        )


@app.command("list")
def list_tasks(
    status: Annotated[list[str] | None, typer.Option("--status", "-s", help="Filter by status (repeatable).")] = None,
    code: Annotated[str | None, typer.Option("--code", help="Filter by code name.")] = None,
    label: Label = None,
    limit: Annotated[int, typer.Option("--limit", help="Page size (1-1000).")] = 30,
    before: Annotated[str | None, typer.Option("--before", help="Page: tasks older than this id.")] = None,
    project: ProjectOpt = None,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """List tasks, newest first."""
    mf = open_app()
    tasks = mf.tasks.list(
        mf.project_id(project), TaskFilter(status=status or (), code_name=code, label=label, before=before, limit=limit)
    )
    costs = mf.costs.cost_of([t.id for t in tasks])
    if as_json:
        print_json(
            {
                "tasks": [{**t.to_json(with_payload=False), "cost": round(costs.get(t.id, 0.0), 12)} for t in tasks],
                "next": tasks[-1].id if len(tasks) == limit else None,
            }
        )
        return
    if quiet:
        for t in tasks:
            say(t.id)
        return
    table(
        ("ID", "CODE", "STATUS", "REASON", "EXIT", "ATTEMPT", "CREATED", "DURATION MS", "COST", "LABEL"),
        (
            (
                t.id,
                f"{t.code_name}:{t.code_rev}",
                t.status,
                t.reason,
                t.exit_code,
                t.attempt,
                iso(t.created_at),
                t.duration_ms,
                usd(costs[t.id]) if t.id in costs else None,
                t.label,
            )
            for t in tasks
        ),
    )


@app.command("log")
def log(
    task_id: Annotated[str, typer.Argument(help="Task id.")],
    follow_: Annotated[bool, typer.Option("--follow", "-F", help="Keep printing until the task ends.")] = False,
    attempt: Annotated[int | None, typer.Option("--attempt", help="Attempt number (default: latest).")] = None,
    project: ProjectOpt = None,
) -> None:
    """Print a task's log (stdout and stderr of its container).

    To a pipe or a file the log is written as stored; to a terminal, control characters other
    than newline, tab and carriage return are shown escaped (e.g. \\x1b), never sent raw.
    """
    mf = open_app()
    pid = mf.project_id(project)
    if follow_:
        task = follow(mf, pid, task_id)
        say(summary(task), err=True)
        return
    out = LogSink(sys.stdout.buffer)
    for chunk in mf.tasks.log(pid, task_id, attempt):
        out.write(chunk)
    out.close()


@app.command("cancel")
def cancel(
    task_id: Annotated[str | None, typer.Argument(help="Task id.")] = None,
    code: Annotated[str | None, typer.Option("--code", help="With --all: every unfinished task of this code.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Cancel every queued and running task of --code.")] = False,
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Cancel a task: queued tasks end at once; running ones once their container has stopped."""
    mf = open_app()
    if all_ or code is not None:
        if not (all_ and code) or task_id is not None:
            raise InvalidInput("use either TASK_ID or --code NAME --all")
        now_, stopping = mf.tasks.cancel_all(mf.project_id(project), code)
        if as_json:
            print_json({"code": code, "cancelled": now_, "stopping": stopping})
        else:
            say(f"cancelled {now_} queued tasks of {code}; stopping {stopping} running")
        return
    if task_id is None:
        raise InvalidInput("give a TASK_ID, or --code NAME --all")
    task = mf.tasks.cancel(mf.project_id(project), task_id)
    if as_json:
        print_json(task.to_json(with_payload=False))
    elif task.status == "cancelled":
        say(f"cancelled {task.id}")
    else:
        say(f"cancelling {task.id} (its container is being stopped)")


@app.command("retry")
def retry(
    task_id: Annotated[str, typer.Argument(help="Task id of a finished task.")],
    delay: Delay = 0,
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Queue a new task that repeats a finished one; prints the new id."""
    mf = open_app()
    task = mf.tasks.retry(mf.project_id(project), task_id, delay)
    if as_json:
        print_json(task.to_json())
    else:
        say(task.id)
