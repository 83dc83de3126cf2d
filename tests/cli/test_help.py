"""Every command has --help, and every command that prints objects offers --json."""

from __future__ import annotations

from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from mayfly.cli.app import app

runner = CliRunner()


def _commands() -> list[tuple[str, ...]]:
    root = typer.main.get_command(app)
    out: list[tuple[str, ...]] = []

    def walk(cmd: Any, path: tuple[str, ...]) -> None:
        out.append(path)
        # Typer vendors its own click, so test for a group by shape rather than by class.
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, (*path, name))

    walk(root, ())
    return out


@pytest.mark.parametrize("path", _commands(), ids=lambda p: " ".join(p) or "mayfly")
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    # A docstring summary, not an empty help text.
    assert len(result.output.splitlines()) > 3


LISTING = [
    "code list",
    "code show",
    "code revisions",
    "task show",
    "task list",
    "task queue",
    "runtime list",
    "plugins",
]


@pytest.mark.parametrize("path", LISTING)
def test_commands_that_print_objects_have_json(path: str) -> None:
    result = runner.invoke(app, [*path.split(), "--help"])
    assert "--json" in result.output
