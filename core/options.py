"""The one definition of code, task and schedule options: type, default, bounds, flags and help.

Each :class:`Option` row is read by core's validation (:func:`check` and :mod:`mayfly.core.validate`),
by the ``/v1`` API to build its request bodies (same bounds, enums and descriptions in OpenAPI) and by
the CLI to build the Typer options of ``code push``/``register``, ``task queue`` and ``schedule create``.
A new scalar option is a row here plus a field of the core dataclass it belongs to
(:class:`~mayfly.core.codes.CodeOptions`, :class:`~mayfly.core.tasks.TaskOptions` or
:class:`~mayfly.core.schedules.ScheduleSpec`); tests check the three agree.

Options whose command-line shape differs from their API shape (``env`` as repeated ``KEY=VALUE``,
``config`` read from a file, secrets, the payload, a schedule's times) are not rows: the CLI parses them
by hand and the API declares them next to the generated fields.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from mayfly.core.config import Limits
from mayfly.core.errors import InvalidInput
from mayfly.core.webhook_urls import MAX_URL_LENGTH

Kind = Literal["code", "task", "schedule"]
CODE: Kind = "code"
TASK: Kind = "task"
SCHEDULE: Kind = "schedule"

#: Python types an option may take.
Scalar = int | float | str | bool


@dataclass(frozen=True)
class Option:
    """One option: its name in core and in ``/v1`` bodies, and everything checked or shown about it."""

    #: Field name of the core dataclass and of the ``/v1`` body.
    name: str
    type: type[int] | type[float] | type[str] | type[bool]
    #: Help per kind it applies to (the CLI's ``--help`` and the OpenAPI description); the keys are its kinds.
    help: Mapping[Kind, str]
    #: Command-line flags, e.g. ``(flags=("--command", "-c"))`` or ``("--ironworker/--no-ironworker",)``; default
    #: ``--name-with-dashes``.
    flags: tuple[str, ...] = ()
    #: How errors name it ("retries delay").
    what: str = ""
    #: Value when not given (``None``: unset, the code's or the server's default applies).
    default: Scalar | None = None
    minimum: float | None = None
    maximum: float | None = None
    #: A :class:`~mayfly.core.config.Limits` field that gives the maximum (it can be configured).
    limit: str | None = None
    choices: tuple[str, ...] | None = None
    pattern: str | None = None
    min_length: int | None = None
    max_length: int | None = None
    #: Unit said after a range in errors (" seconds").
    unit: str = ""
    #: What an error says the value must be, when the range alone does not say it well.
    rule: str | None = None
    #: The Python parameter name of the CLI flag when it is not ``name`` (``--memory`` → ``memory``).
    param: str = ""
    #: A string option that ``/v1`` also takes as a JSON list of strings (joined with commas for core).
    listable: bool = False

    @property
    def cli_flags(self) -> tuple[str, ...]:
        """The flags of the CLI option."""
        return self.flags or ("--" + self.name.replace("_", "-"),)

    @property
    def kinds(self) -> frozenset[Kind]:
        """Which of code, task and schedule take this option."""
        return frozenset(self.help)

    @property
    def words(self) -> str:
        """The option as errors name it."""
        return self.what or self.name

    @property
    def cli_name(self) -> str:
        """The keyword the CLI's command function receives it as."""
        return self.param or self.name

    def max_of(self, limits: Limits) -> float | None:
        """The largest value allowed under ``limits``."""
        if self.limit is None:
            return self.maximum
        value: float = getattr(limits, self.limit)
        return value


#: The options, in the order the CLI's ``--help`` lists them.
OPTIONS: tuple[Option, ...] = (
    Option("command", str, {CODE: "Command run in /mayfly/task, e.g. 'python3 main.py'."}, flags=("--command", "-c")),
    Option(
        "max_concurrency",
        int,
        {CODE: "Most tasks of this code running at once (0 = no limit)."},
        what="max concurrency",
        minimum=0,
        rule="0 (no limit) or more",
    ),
    Option(
        "priority",
        int,
        {TASK: "0 (default), 1 or 2 (highest).", SCHEDULE: "0 (default), 1 or 2 (highest)."},
        minimum=0,
        maximum=2,
        rule="0, 1 or 2",
    ),
    Option(
        "delay",
        int,
        {TASK: "Seconds to wait before the task may start."},
        default=0,
        minimum=0,
        limit="max_delay",
        unit=" seconds",
    ),
    Option(
        "retries",
        int,
        {CODE: "Automatic retries of a failed task (0-10).", TASK: "Automatic retries if it fails (0-10)."},
        minimum=0,
        limit="max_retries",
    ),
    Option(
        "retries_delay",
        int,
        {CODE: "Seconds before each retry."},
        what="retries delay",
        minimum=0,
        limit="max_delay",
        unit=" seconds",
    ),
    Option(
        "timeout",
        int,
        {
            CODE: "Default task timeout in seconds.",
            TASK: "Seconds before the task is stopped.",
            SCHEDULE: "Seconds before the task is stopped.",
        },
        minimum=1,
        limit="max_timeout",
        unit=" seconds",
    ),
    Option(
        "default_priority",
        int,
        {CODE: "Default priority of its tasks: 0, 1 or 2."},
        flags=("--priority",),
        what="priority",
        minimum=0,
        maximum=2,
        rule="0, 1 or 2",
        param="priority",
    ),
    Option(
        "label",
        str,
        {TASK: "Free-text tag to filter tasks by.", SCHEDULE: "Free-text tag to filter tasks by."},
        min_length=1,
        max_length=255,
    ),
    Option(
        "target",
        str,
        {
            CODE: "Default target of its tasks, or an ordered list of fallback targets ('aws-dev,local').",
            TASK: "Where the task runs: a target, or an ordered list of fallback targets ('aws-dev,local'); "
            "default: the code's.",
            SCHEDULE: "Where the task runs: a target, or an ordered list of fallback targets ('aws-dev,local'); "
            "default: the code's.",
        },
        listable=True,
    ),
    Option(
        "network",
        str,
        {CODE: "Container network: 'bridge' (egress), 'none', or a network name."},
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
    ),
    Option("cpu", float, {CODE: "CPU limit in cores."}, minimum=0.01, maximum=64, unit=" cores"),
    Option(
        "memory_mb",
        int,
        {CODE: "Memory limit in MiB."},
        flags=("--memory",),
        what="memory",
        minimum=6,
        maximum=262144,
        unit=" MiB",
        param="memory",
    ),
    Option(
        "ironworker",
        bool,
        {CODE: "Pass IronWorker's -payload/-config/-id/-d arguments and env."},
        flags=("--ironworker/--no-ironworker",),
    ),
    Option(
        "webhook",
        str,
        {
            CODE: "URL POSTed when a task of this code ends (signed; '' removes it).",
            TASK: "URL POSTed when the task ends (default: the code's; '' for none).",
        },
        max_length=MAX_URL_LENGTH,
    ),
    Option("run_times", int, {SCHEDULE: "Stop after this many runs."}, minimum=1, rule="at least 1"),
    Option(
        "missed",
        str,
        {SCHEDULE: "Slots missed while no control plane ran: skip, once or all."},
        default="skip",
        choices=("skip", "once", "all"),
    ),
    Option(
        "overlap",
        str,
        {SCHEDULE: "A slot while the last run is unfinished: allow, forbid or replace."},
        default="allow",
        choices=("allow", "forbid", "replace"),
    ),
)

#: Options by name.
BY_NAME: dict[str, Option] = {o.name: o for o in OPTIONS}


def of(kind: Kind) -> tuple[Option, ...]:
    """The options ``kind`` takes, in table order."""
    return tuple(o for o in OPTIONS if kind in o.kinds)


def check(name: str, value: Scalar, limits: Limits | None = None) -> Scalar:
    """``value`` if option ``name`` allows it under ``limits``; InvalidInput in one line otherwise."""
    opt = BY_NAME[name]
    lim = limits or _DEFAULT_LIMITS
    if opt.choices is not None and value not in opt.choices:
        raise InvalidInput(f"{opt.words} must be one of {', '.join(opt.choices)}")
    if opt.pattern is not None and not re.match(opt.pattern, str(value)):
        raise InvalidInput(f"invalid {opt.words} {value!r}")
    if isinstance(value, str) and (opt.min_length is not None or opt.max_length is not None):
        low, high = opt.min_length or 0, opt.max_length
        if len(value) < low or (high is not None and len(value) > high):
            raise InvalidInput(f"{opt.words} must be {low} to {high} characters")
    if isinstance(value, int | float) and not isinstance(value, bool):
        low_n, high_n = opt.minimum, opt.max_of(lim)
        if (low_n is not None and value < low_n) or (high_n is not None and value > high_n):
            if opt.rule:
                raise InvalidInput(f"{opt.words} must be {opt.rule}")
            raise InvalidInput(f"{opt.words} must be between {_num(low_n)} and {_num(high_n)}{opt.unit}")
    return value


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


_DEFAULT_LIMITS = Limits()

#: Values of a schedule's ``missed`` and ``overlap``.
MISSED: tuple[str, ...] = BY_NAME["missed"].choices or ()
OVERLAP: tuple[str, ...] = BY_NAME["overlap"].choices or ()
