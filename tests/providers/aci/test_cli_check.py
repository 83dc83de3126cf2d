"""``mayfly target check`` on an aci target, through the CLI: all is there, or one line names what is missing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mayfly.cli.app import app
from mayfly.providers.aci.settings import AciSettings

pytestmark = [pytest.mark.docker, pytest.mark.slow]

runner = CliRunner()


def _run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def _add(name: str, settings: AciSettings) -> None:
    payload = json.dumps(settings.model_dump(exclude_none=True))
    code, _, err = _run("target", "add", name, "--provider", "aci", "--settings", payload, "--remote-runner")
    assert code == 0, err


def test_target_check_passes_then_names_what_is_missing(home: Path, aci_target: AciSettings) -> None:
    _add("azure-local", aci_target)
    assert _run("target", "check", "azure-local") == (0, "azure-local: ok\n", "")

    _add("azure-noqueues", aci_target.model_copy(update={"queue_prefix": "mayfly-absent"}))
    code, out, err = _run("target", "check", "azure-noqueues")
    assert code != 0
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert "the tasks queue mayfly-absent-tasks of storage account devstoreaccount1" in err

    _add("azure-nocontainer", aci_target.model_copy(update={"container": "absent"}))
    code, _, err = _run("target", "check", "azure-nocontainer")
    assert code != 0
    assert len(err.strip().splitlines()) == 1, err
    assert "blob container absent of storage account devstoreaccount1" in err
