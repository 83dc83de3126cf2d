"""The root ``mayfly`` command: groups and top-level commands, and the one error exit.

Start-up is kept short (scripts call the CLI in loops): the root names its commands in
:data:`COMMANDS` and imports a command's module only when that command runs (or when
``--help`` lists them all), so ``mayfly --version`` imports Typer and nothing of the
store, the providers or the API. ``tests/cli/test_lazy_imports.py`` guards it.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping
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
    "cost": ("mayfly.cli.costs", "cost"),
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


class LazyCommands(MutableMapping[str, Any]):
    """A group's commands by name, where a command named in ``lazy`` is built on first access.

    Listing names (iteration, ``in``, ``len``) imports nothing; reading a command (``[name]``,
    ``get``, ``items``) imports its module once.
    """

    def __init__(self, loaded: dict[str, Any], lazy: dict[str, tuple[str, str]]) -> None:
        self._loaded = loaded
        self._lazy = {name: where for name, where in lazy.items() if name not in loaded}

    def __getitem__(self, name: str) -> Any:
        if name not in self._loaded and name in self._lazy:
            self._loaded[name] = load_command(name, *self._lazy.pop(name))
        return self._loaded[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self._lazy.pop(name, None)
        self._loaded[name] = command

    def __delitem__(self, name: str) -> None:
        if self._lazy.pop(name, None) is None:
            del self._loaded[name]

    def __contains__(self, name: object) -> bool:
        return name in self._lazy or name in self._loaded

    def __iter__(self) -> Iterator[str]:
        return iter([*self._lazy, *self._loaded])

    def __len__(self) -> int:
        return len(self._lazy) + len(self._loaded)


class MayflyGroup(TyperGroup):
    """The root group: any :class:`MayflyError` a command raises becomes one line and its exit code.

    Commands named in :attr:`lazy` (name -> (module, attribute)) are imported on first use.
    """

    lazy: dict[str, tuple[str, str]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.lazy:
            self.commands = LazyCommands(dict(self.commands), self.lazy)

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except MayflyError as err:
            from mayfly.cli.output import exit_with_error

            exit_with_error(err)

    def list_commands(self, ctx: typer.Context) -> list[str]:  # type: ignore[override]
        """Every command's name, in help order, without loading any."""
        return list(self.commands)


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
