"""The root ``mayfly`` command: groups and top-level commands, and the one error exit.

Start-up is kept short (scripts call the CLI in loops): the root names its commands in
:data:`COMMANDS` and imports a command's module only when that command runs (or when
``--help`` lists them all), so ``mayfly --version`` imports Typer and nothing of the
store, the providers or the API. ``tests/cli/test_lazy_imports.py`` guards it.
"""

from __future__ import annotations

import importlib
from typing import Any

import typer
from typer.core import TyperGroup

from mayfly.core import __version__
from mayfly.core.errors import MayflyError

#: Every root command, in help order: name -> (module, attribute). The attribute is a
#: ``typer.Typer`` (a group of commands) or a function (one command).
COMMANDS: dict[str, tuple[str, str]] = {
    "code": ("mayfly.cli.codes", "app"),
    "task": ("mayfly.cli.tasks", "app"),
    "runtime": ("mayfly.cli.runtimes", "app"),
    "target": ("mayfly.cli.targets", "app"),
    "schedule": ("mayfly.cli.schedules", "app"),
    "emulator": ("mayfly.cli.emulator", "app"),
    "project": ("mayfly.cli.projects", "app"),
    "token": ("mayfly.cli.tokens", "app"),
    "secret-key": ("mayfly.cli.secretkeys", "app"),
    "db": ("mayfly.cli.db", "app"),
    "run": ("mayfly.cli.serve", "run"),
    "server": ("mayfly.cli.serve", "server"),
    "runner": ("mayfly.cli.serve", "runner"),
    "plugins": ("mayfly.cli.plugins", "plugins"),
    # mayfly.cli.deploy.register(app) adds the same four to an application eagerly.
    "deploy": ("mayfly.cli.deploy", "deploy"),
    "preview": ("mayfly.cli.deploy", "preview"),
    "destroy": ("mayfly.cli.deploy", "destroy"),
    "outputs": ("mayfly.cli.deploy", "outputs"),
}


def load_command(name: str, module: str, attribute: str) -> Any:
    """Import ``module`` and build the (Typer-vendored) click command of its Typer group or command function."""
    target = getattr(importlib.import_module(module), attribute)
    if isinstance(target, typer.Typer):
        group = typer.main.get_group(target)
        group.name = name
        return group
    holder = typer.Typer()
    holder.command(name)(target)
    return typer.main.get_command(holder)


class MayflyGroup(TyperGroup):
    """The root group: any :class:`MayflyError` a command raises becomes one line and its exit code.

    Commands named in :attr:`lazy` (name -> (module, attribute)) are imported on first use.
    """

    lazy: dict[str, tuple[str, str]] = {}

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except MayflyError as err:
            from mayfly.cli.output import exit_with_error

            exit_with_error(err)

    def list_commands(self, ctx: typer.Context) -> list[str]:  # type: ignore[override]
        eager = super().list_commands(ctx)
        return [*(n for n in self.lazy if n not in self.commands), *eager]

    def get_command(self, ctx: typer.Context, cmd_name: str) -> Any:  # type: ignore[override]
        if cmd_name not in self.commands and cmd_name in self.lazy:
            self.add_command(load_command(cmd_name, *self.lazy[cmd_name]), cmd_name)
        return super().get_command(ctx, cmd_name)


class RootGroup(MayflyGroup):
    """``mayfly`` itself: every command of :data:`COMMANDS`, loaded lazily."""

    lazy = COMMANDS


app = typer.Typer(
    name="mayfly",
    cls=RootGroup,
    help="Run background tasks in ephemeral containers: local Docker, ECS Fargate, Cloud Run Jobs, ACI.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


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
