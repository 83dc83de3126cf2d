"""``mayfly deploy | preview | destroy | outputs``: help, and the one-line errors users hit first.

The commands are mounted here on a root group like ``mayfly``'s own (MayflyGroup
turns a MayflyError into one ``Error:`` line and its exit code), through
:func:`mayfly.cli.deploy.register`, the function the root application uses.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from mayfly.cli import deploy as deploy_cli
from mayfly.cli.app import MayflyGroup

runner = CliRunner()


def make_app() -> typer.Typer:
    app = typer.Typer(cls=MayflyGroup, no_args_is_help=True, pretty_exceptions_enable=False)
    deploy_cli.register(app)
    return app


APP = make_app()
COMMANDS = ("deploy", "preview", "destroy", "outputs")


@pytest.fixture
def no_pulumi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


@pytest.mark.parametrize("command", COMMANDS)
def test_help(command: str) -> None:
    result = runner.invoke(APP, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    assert "--json" in result.output
    assert len(result.output.splitlines()) > 3


def test_deploy_of_a_bad_stack_file_is_one_line_and_exit_2(home: Path, tmp_path: Path, no_pulumi: None) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("cloud: aws\nname: aws-dev\nregion: eu-west-1\ncapacity: lots\n")
    result = runner.invoke(APP, ["deploy", str(bad)])
    assert result.exit_code == 2
    assert result.stderr == f'Error: {bad}: capacity: must be a valid integer, got "lots"\n'
    assert result.stdout == ""
    assert not home.exists() or not (home / "deploy").exists()


def test_deploy_without_the_pulumi_cli_says_how_to_install_it(home: Path, tmp_path: Path, no_pulumi: None) -> None:
    good = tmp_path / "aws-dev.yaml"
    good.write_text("cloud: aws\nname: aws-dev\nregion: eu-west-1\n")
    result = runner.invoke(APP, ["deploy", str(good)])
    assert result.exit_code == 6
    assert result.stderr == (
        "Error: `mayfly deploy` needs the Pulumi CLI, which is not on PATH: install it "
        "(see https://www.pulumi.com/docs/install/, e.g. `curl -fsSL https://get.pulumi.com | sh`) "
        "and open a new shell\n"
    )
    assert not (home / "deploy").exists()


def test_preview_of_an_unknown_stack_is_not_found(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_pulumi: None
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(APP, ["preview", "ghost"])
    assert result.exit_code == 3
    assert result.stderr == (
        f"Error: no stack 'ghost' deployed from this Mayfly home ({home}) and no stacks/ghost.yaml here: "
        "deploy it first with `mayfly deploy stacks/ghost.yaml`\n"
    )


def test_outputs_of_a_saved_stack_needs_the_cli(home: Path, tmp_path: Path, no_pulumi: None) -> None:
    from mayfly.core.config import Home
    from mayfly.infra.deploy import DeployEngine
    from mayfly.infra.stackfile import parse_stack

    DeployEngine(Home.from_env().ensure()).save(
        parse_stack({"cloud": "aws", "name": "aws-dev", "region": "eu-west-1"}, "s")
    )
    result = runner.invoke(APP, ["outputs", "aws-dev", "--json"])
    assert result.exit_code == 6
    assert result.stderr.startswith("Error: `mayfly outputs` needs the Pulumi CLI")
