"""``mayfly schedule``: recurring and one-off runs of a code."""

from __future__ import annotations

import re
from typing import Annotated

import typer

from mayfly.cli.context import open_app
from mayfly.cli.coreoptions import OptionValues, with_options
from mayfly.cli.options import JsonOpt, ProjectOpt
from mayfly.cli.output import fields, print_json, say, table
from mayfly.cli.tasks import Payload, PayloadFile, read_payload
from mayfly.core.errors import InvalidInput
from mayfly.core.options import SCHEDULE
from mayfly.core.records import iso
from mayfly.core.schedules import Schedule, ScheduleSpec

app = typer.Typer(help="Schedules: cron, intervals or one-off times that queue tasks.", no_args_is_help=True)

Id = Annotated[str, typer.Argument(help="Schedule id.")]

#: Field names of a schedule as core's (and the APIs') errors say them, and the flags of this command.
_FLAGS = [
    (re.compile(r"\bone of cron, every or at\b"), "one of --cron, --every or --at"),
    (re.compile(r"^(at|missed|overlap) "), r"--\1 "),
    (re.compile(r"\bstart_at\b"), "--start-at"),
    (re.compile(r"\bend_at\b"), "--end-at"),
    (re.compile(r"\brun_times\b"), "--run-times"),
]


def in_flags(message: str) -> str:
    """A schedule error in the words of this command: ``end_at`` becomes ``--end-at``."""
    for pattern, flag in _FLAGS:
        message = pattern.sub(flag, message)
    return message


def _when(s: Schedule) -> str:
    if s.kind == "cron":
        return f"cron {s.cron} ({s.tz})"
    if s.kind == "every":
        return f"every {s.every}s"
    return f"at {iso(s.start_at)}"


@app.command("create")
@with_options(SCHEDULE)
def create(
    code: Annotated[str, typer.Argument(help="Code name.")],
    every: Annotated[str | None, typer.Option("--every", help="Interval: 90, 30s, 5m, 1h30m, 1d (≥ 1 s).")] = None,
    cron: Annotated[str | None, typer.Option("--cron", help="Cron expression: minute hour day month weekday.")] = None,
    at: Annotated[str | None, typer.Option("--at", help="Run once at this ISO 8601 time.")] = None,
    tz: Annotated[str, typer.Option("--tz", help="IANA time zone of --cron and of naive times.")] = "UTC",
    start_at: Annotated[str | None, typer.Option("--start-at", help="First possible run (ISO 8601).")] = None,
    end_at: Annotated[str | None, typer.Option("--end-at", help="No runs after this time (ISO 8601).")] = None,
    payload: Payload = None,
    payload_file: PayloadFile = None,
    *,
    options: OptionValues,
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a schedule for CODE; prints its id."""
    mf = open_app()
    spec = ScheduleSpec(
        cron=cron,
        every=every,
        at=at,
        tz=tz,
        start_at=start_at,
        end_at=end_at,
        payload=read_payload(payload, payload_file),
        **options,
    )
    try:
        sched = mf.schedules.create(mf.project_id(project), code, spec)
    except InvalidInput as exc:
        exc.message = in_flags(exc.message)
        raise
    if as_json:
        print_json(sched.to_json())
    else:
        say(sched.id)


@app.command("list")
def list_schedules(
    status: Annotated[str | None, typer.Option("--status", help="scheduled, paused, complete or cancelled.")] = None,
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List schedules, newest first."""
    mf = open_app()
    items = mf.schedules.list(mf.project_id(project), status)
    if as_json:
        print_json({"schedules": [x.to_json() for x in items]})
        return
    table(
        ("ID", "CODE", "WHEN", "STATUS", "NEXT", "RUNS"),
        ((x.id, x.code_name, _when(x), x.status, iso(x.next_start) or "-", x.run_count) for x in items),
    )


@app.command("show")
def show(schedule_id: Id, project: ProjectOpt = None, as_json: JsonOpt = False) -> None:
    """Show a schedule: next run, runs so far, errors, the tasks it fired and the runs it skipped."""
    mf = open_app()
    doc = mf.schedules.details(mf.project_id(project), schedule_id)
    if as_json:
        print_json(doc)
        return
    keys = (
        "id",
        "code_name",
        "kind",
        "cron",
        "run_every",
        "tz",
        "status",
        "msg",
        "next_start",
        "last_run_time",
        "run_count",
        "error_count",
        "start_at",
        "end_at",
        "run_times",
        "missed",
        "overlap",
        "label",
        "target",
    )
    fields([(k, doc[k]) for k in keys])
    if doc["tasks"]:
        table(("SLOT", "TASK", "STATUS"), ((t["slot"], t["task_id"], t["status"]) for t in doc["tasks"]), title="fired")
    if doc["skipped"]:
        table(("SLOT", "WHY"), ((t["slot"], t["reason"]) for t in doc["skipped"]), title="skipped")


def _status_command(verb: str, doc: str) -> None:
    def command(schedule_id: Id, project: ProjectOpt = None, as_json: JsonOpt = False) -> None:
        mf = open_app()
        sched = getattr(mf.schedules, verb)(mf.project_id(project), schedule_id)
        if as_json:
            print_json(sched.to_json())
        else:
            say(f"{sched.id} {sched.status}")

    command.__doc__ = doc
    app.command(verb)(command)


_status_command("pause", "Stop firing until resumed.")
_status_command("resume", "Fire again from the next slot (slots passed while paused are not caught up).")
_status_command("cancel", "End the schedule for good; tasks it already queued stay.")
