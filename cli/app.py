"""The root ``mayfly`` command: groups and top-level commands, and the one error exit."""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from mayfly.cli import (
    codes,
    costs,
    db,
    deploy,
    emulator,
    projects,
    runtimes,
    schedules,
    secretkeys,
    serve,
    targets,
    tasks,
    tokens,
)
from mayfly.cli.output import exit_with_error
from mayfly.cli.plugins import plugins
from mayfly.core import __version__
from mayfly.core.errors import MayflyError


class MayflyGroup(TyperGroup):
    """The root group: any :class:`MayflyError` a command raises becomes one line and its exit code."""

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except MayflyError as err:
            exit_with_error(err)


app = typer.Typer(
    name="mayfly",
    cls=MayflyGroup,
    help="Run background tasks in ephemeral containers: local Docker, ECS Fargate, Cloud Run Jobs, ACI.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(codes.app, name="code")
app.add_typer(tasks.app, name="task")
app.add_typer(runtimes.app, name="runtime")
app.add_typer(targets.app, name="target")
app.add_typer(schedules.app, name="schedule")
app.add_typer(emulator.app, name="emulator")
app.add_typer(projects.app, name="project")
app.add_typer(tokens.app, name="token")
app.add_typer(secretkeys.app, name="secret-key")
app.add_typer(db.app, name="db")
app.command("run")(serve.run)
app.command("cost")(costs.cost)
app.command("server")(serve.server)
app.command("runner")(serve.runner)
app.command("plugins")(plugins)
deploy.register(app)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mayfly {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    """Mayfly: upload code once, queue tasks, each runs in a fresh container."""


def run() -> None:
    """Entry point of the ``mayfly`` command."""
    app()
