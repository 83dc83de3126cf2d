"""Options shared by many commands, declared once."""

from __future__ import annotations

from typing import Annotated

import typer

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of text.")]
ProjectOpt = Annotated[
    str | None,
    typer.Option("--project", envvar="MAYFLY_PROJECT", help="Project to work in (default: 'default')."),
]
TargetOpt = Annotated[
    str | None,
    typer.Option(
        "--target",
        help="Where the task runs: a target, or an ordered list of fallback targets ('aws-dev,local'); "
        "default: the code's.",
    ),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print only ids.")]
