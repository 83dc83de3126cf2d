"""``mayfly project`` and ``mayfly token`` on a local home: secret shown once, only its hash kept, revoke, expiry."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mayfly.cli.app import app
from mayfly.cli.context import resolve_runtime
from mayfly.cli.tokens import parse_duration
from mayfly.core.app import Mayfly
from mayfly.core.config import Home
from mayfly.core.errors import ExitCode, InvalidInput
from mayfly.core.tokens import Unauthorized, well_formed

runner = CliRunner()


def _ok(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.stderr
    return result.stdout


def test_project_create_and_list(home: Path) -> None:
    assert "created project acme" in _ok("project", "create", "acme")
    made = json.loads(_ok("project", "create", "zeta", "--json"))
    assert made["name"] == "zeta"
    listed = json.loads(_ok("project", "list", "--json"))["projects"]
    assert [p["name"] for p in listed] == ["acme", "zeta"]
    assert "acme" in _ok("project", "list")
    again = runner.invoke(app, ["project", "create", "acme"])
    assert (again.exit_code, again.stderr.strip()) == (ExitCode.CONFLICT, "Error: project 'acme' already exists")
    bad = runner.invoke(app, ["project", "create", "no spaces"])
    assert bad.exit_code == ExitCode.USAGE


def test_token_secret_is_printed_once_and_only_its_hash_is_stored(home: Path) -> None:
    _ok("project", "create", "acme")
    result = runner.invoke(app, ["token", "create", "--project", "acme", "--name", "ci"])
    assert result.exit_code == 0, result.stderr
    secret = result.stdout.strip()
    assert well_formed(secret)  # stdout is the secret alone: export MAYFLY_TOKEN=$(mayfly token create ...)
    assert "shown only now" in result.stderr
    assert secret not in result.stderr

    listed = _ok("token", "list", "--json")
    assert secret not in listed
    [token] = json.loads(listed)["tokens"]
    assert (token["project"], token["name"], token["state"]) == ("acme", "ci", "active")
    assert secret.startswith(token["prefix"])
    assert secret not in _ok("token", "list")

    with sqlite3.connect(next(home.rglob("*.db"))) as db:
        dump = "\n".join(db.iterdump())
    assert secret not in dump
    assert secret[len(token["prefix"]) :] not in dump

    mf = Mayfly(Home(home), resolve_runtime)
    try:
        assert mf.tokens.authenticate(secret).id == token["id"]
    finally:
        mf.close()


def test_token_revoke(home: Path) -> None:
    _ok("project", "create", "acme")
    made = json.loads(_ok("token", "create", "--project", "acme", "--json"))
    assert "revoked token" in _ok("token", "revoke", made["id"])
    [token] = json.loads(_ok("token", "list", "--project", "acme", "--json"))["tokens"]
    assert token["state"] == "revoked"
    again = json.loads(_ok("token", "revoke", made["id"], "--json"))
    assert again["revoked_at"] == token["revoked_at"]  # revoking twice keeps the first time
    mf = Mayfly(Home(home), resolve_runtime)
    try:
        with pytest.raises(Unauthorized, match="revoked"):
            mf.tokens.authenticate(made["secret"])
    finally:
        mf.close()
    unknown = runner.invoke(app, ["token", "revoke", "nope"])
    assert (unknown.exit_code, unknown.stderr.strip()) == (ExitCode.NOT_FOUND, "Error: unknown token 'nope'")


def test_token_expiry(home: Path) -> None:
    _ok("project", "create", "acme")
    made = json.loads(_ok("token", "create", "--project", "acme", "--expires", "30d", "--json"))
    assert made["expires_at"] is not None
    assert made["expires_at"] > made["created_at"]
    never = json.loads(_ok("token", "create", "--project", "acme", "--json"))
    assert never["expires_at"] is None
    bad = runner.invoke(app, ["token", "create", "--project", "acme", "--expires", "soon"])
    assert bad.exit_code == ExitCode.USAGE
    assert "invalid --expires" in bad.stderr


def test_token_for_an_unknown_project_is_refused(home: Path) -> None:
    result = runner.invoke(app, ["token", "create", "--project", "ghost"])
    assert (result.exit_code, result.stderr.strip()) == (ExitCode.NOT_FOUND, "Error: unknown project 'ghost'")
    assert runner.invoke(app, ["token", "list", "--project", "ghost"]).exit_code == ExitCode.NOT_FOUND


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("45", 45), ("45s", 45), ("90m", 5400), ("12h", 43200), ("30d", 2592000), ("1w", 604800), ("1d12h", 129600)],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "0s", "1y", "-5", "5 d", "d"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(InvalidInput, match="invalid --expires"):
        parse_duration(text)
