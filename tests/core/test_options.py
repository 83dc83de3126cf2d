"""Core's option table (core/options.py) is the one definition: /v1 bodies, the CLI and core's checks follow it.

A row added to the table must be enough for the option to appear, with its bounds and help, in the ``/v1``
body of its kind and as a flag of the commands of its kind; these tests check every row, and add a row to
show that nothing else has to be written.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

import pytest
import typer
from pydantic import BaseModel
from typer.testing import CliRunner

from mayfly.api.v1.models import CodeFields, ScheduleCreate, TaskFields, option_fields, option_schema
from mayfly.cli.app import app
from mayfly.cli.coreoptions import OptionValues, with_options
from mayfly.core import options
from mayfly.core.codes import CodeOptions
from mayfly.core.config import Limits
from mayfly.core.errors import InvalidInput
from mayfly.core.options import CODE, SCHEDULE, TASK, Kind, Option
from mayfly.core.schedules import ScheduleSpec
from mayfly.core.tasks import TaskOptions

CORE: dict[Kind, type] = {CODE: CodeOptions, TASK: TaskOptions, SCHEDULE: ScheduleSpec}
BODY: dict[Kind, type[BaseModel]] = {CODE: CodeFields, TASK: TaskFields, SCHEDULE: ScheduleCreate}
#: The commands that take each kind's options.
COMMANDS: dict[Kind, list[tuple[str, ...]]] = {
    CODE: [("code", "push"), ("code", "register")],
    TASK: [("task", "queue"), ("run",)],
    SCHEDULE: [("schedule", "create")],
}
ROWS = [(kind, opt) for opt in options.OPTIONS for kind in sorted(opt.kinds)]
ROW_IDS = [f"{kind}-{opt.name}" for kind, opt in ROWS]


def _command(path: tuple[str, ...]) -> Any:
    cmd: Any = typer.main.get_command(app)
    for name in path:  # Typer vendors its own click: walk groups by shape, not by class
        cmd = cmd.commands[name]
    return cmd


def _flag(cmd: Any, opt: Option) -> Any:
    first = opt.cli_flags[0].split("/")[0]
    matches = [p for p in cmd.params if first in p.opts]
    assert len(matches) == 1, (cmd.name, first)
    return matches[0]


@pytest.mark.parametrize(("kind", "opt"), ROWS, ids=ROW_IDS)
def test_every_row_is_a_core_field_with_the_same_default(kind: Kind, opt: Option) -> None:
    by_name = {f.name: f for f in fields(CORE[kind])}
    assert opt.name in by_name
    default = by_name[opt.name].default
    assert (None if default is MISSING else default) == opt.default


@pytest.mark.parametrize(("kind", "opt"), ROWS, ids=ROW_IDS)
def test_every_row_is_a_v1_body_field_with_its_bounds_and_help(kind: Kind, opt: Option) -> None:
    field = BODY[kind].model_fields[opt.name]
    assert field.description == opt.help[kind]
    assert field.default == opt.default
    assert field.json_schema_extra == option_schema(opt)
    # and the OpenAPI document says them
    prop = BODY[kind].model_json_schema()["properties"][opt.name]
    limits = Limits()
    assert prop.get("minimum") == opt.minimum
    assert prop.get("maximum") == opt.max_of(limits)
    assert prop.get("enum") == (list(opt.choices) if opt.choices else None)


@pytest.mark.parametrize(("kind", "opt"), ROWS, ids=ROW_IDS)
def test_every_row_is_a_flag_of_its_commands(kind: Kind, opt: Option) -> None:
    for path in COMMANDS[kind]:
        param = _flag(_command(path), opt)
        assert param.help == opt.help[kind]
        assert set(param.opts) | set(param.secondary_opts) == {f for flag in opt.cli_flags for f in flag.split("/")}


@pytest.mark.parametrize(("kind", "opt"), [(k, o) for k, o in ROWS if o.max_of(Limits()) is not None], ids=str)
def test_core_refuses_a_value_over_the_tables_maximum(kind: Kind, opt: Option) -> None:
    top = opt.max_of(Limits())
    assert top is not None
    too_big = opt.type(top * 2 + 1)
    with pytest.raises(InvalidInput, match=f"^{opt.words} must be"):
        options.check(opt.name, too_big, Limits())


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--retries-delay", "604801"], "Error: retries delay must be between 0 and 604800 seconds"),
        (["--memory", "5"], "Error: memory must be between 6 and 262144 MiB"),
        (["--cpu", "65"], "Error: cpu must be between 0.01 and 64 cores"),
        (["--max-concurrency", "-1"], "Error: max concurrency must be 0 (no limit) or more"),
        (["--network", "-x"], "Error: invalid network '-x'"),
        (["--priority", "3"], "Error: priority must be 0, 1 or 2"),
    ],
)
def test_cli_refuses_code_options_out_of_the_tables_bounds(home: Path, args: list[str], line: str) -> None:
    """Through the CLI: the bound and its words come from the table; nothing is stored."""
    result = CliRunner().invoke(app, ["code", "register", "mayfly-test/busybox:latest", "--name", "img", *args])
    assert result.exit_code == 2
    assert result.stderr.strip() == line
    listed = CliRunner().invoke(app, ["code", "list", "--json"])
    assert json.loads(listed.stdout) in ([], {"codes": []})


def test_a_new_row_is_enough_for_the_body_and_the_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    """Add a row: the body gets the field with its bounds, a command gets the flag and receives the value."""
    nice = Option("nice", int, {TASK: "Scheduling niceness of the task."}, minimum=0, maximum=19)
    monkeypatch.setattr(options, "OPTIONS", (*options.OPTIONS, nice))

    body = option_fields(TASK)
    assert "nice" in body
    annotation, field = body["nice"]
    assert annotation == int | None
    assert field.description == "Scheduling niceness of the task."
    assert field.json_schema_extra == {"minimum": 0, "maximum": 19}

    got: list[OptionValues] = []
    cli = typer.Typer()

    @cli.command()
    @with_options(TASK)
    def queue(code: str, *, options: OptionValues) -> None:
        got.append(options)

    result = CliRunner().invoke(cli, ["img", "--nice", "5", "--priority", "2"])
    assert result.exit_code == 0, result.output
    assert (got[0]["nice"], got[0]["priority"], got[0]["delay"]) == (5, 2, 0)
    helped = CliRunner().invoke(cli, ["--help"], env={"COLUMNS": "200"})
    assert "--nice" in helped.stdout
    assert "Scheduling niceness of the task." in helped.stdout


def test_an_option_the_cli_receives_goes_to_core_under_its_core_name(home: Path) -> None:
    """``--memory`` and ``--priority`` of a code arrive as ``memory_mb`` and ``default_priority``."""
    result = CliRunner().invoke(
        app,
        [
            "code",
            "register",
            "mayfly-test/busybox:latest",
            "--name",
            "img",
            "--memory",
            "64",
            "--priority",
            "2",
            "--retries-delay",
            "7",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.stderr
    latest: dict[str, Any] = json.loads(result.stdout)["latest"]
    assert (latest["memory_mb"], latest["default_priority"], latest["retries_delay"]) == (64, 2, 7)
