"""``mayfly token``: API tokens bound to one project — create (the secret is shown once), list, revoke.

Local only: tokens are made on the server's home by its operator (no API route
mints tokens; see ``docs/api.md``). The secret is printed once, on stdout alone,
so ``export MAYFLY_TOKEN=$(mayfly token create --project acme)`` works; the
store keeps only its SHA-256.
"""

from __future__ import annotations

import re
from typing import Annotated

import typer

from mayfly.cli.context import open_local
from mayfly.cli.options import JsonOpt
from mayfly.cli.output import print_json, say, table
from mayfly.core.app import Mayfly
from mayfly.core.config import DEFAULT_PROJECT
from mayfly.core.errors import InvalidInput, NotFound
from mayfly.core.records import Project, iso
from mayfly.core.store import now
from mayfly.core.tokens import Token

app = typer.Typer(help="API tokens: each is bound to one project; the secret is shown once.", no_args_is_help=True)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^(?:\d+[smhdw])+$")


def parse_duration(text: str) -> float:
    """``45s``, ``90m``, ``12h``, ``30d``, ``1w``, ``1d12h`` (or plain seconds) → seconds, at least 1."""
    value = text.strip().lower()
    if value.isdigit():
        seconds = int(value)
    elif _DURATION.match(value):
        seconds = sum(int(n) * _UNITS[u] for n, u in re.findall(r"(\d+)([smhdw])", value))
    else:
        raise InvalidInput(f"invalid --expires {text!r}: use seconds or units like 30d, 12h, 90m")
    if seconds < 1:
        raise InvalidInput(f"invalid --expires {text!r}: it must be at least 1 second")
    return float(seconds)


def _project(mf: Mayfly, name: str) -> Project:
    # The default project springs into being on first local use; any other name must exist (no typo projects).
    return mf.projects.ensure(name) if name == DEFAULT_PROJECT else mf.projects.get(name)


def _state(token: Token) -> str:
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at is not None and token.expires_at <= now():
        return "expired"
    return "active"


@app.command("create")
def create(
    project: Annotated[str, typer.Option("--project", help="The project the token acts for.")],
    expires: Annotated[
        str | None, typer.Option("--expires", help="Lifetime, e.g. 30d, 12h, 90m (default: no expiry).")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="A label to recognise the token by.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a token for a project and print its secret (shown this once; only a hash is stored)."""
    mf = open_local("token create")
    expires_in = parse_duration(expires) if expires is not None else None
    if name is not None and not 0 < len(name) <= 100:
        raise InvalidInput("--name must be 1 to 100 characters")
    found = _project(mf, project)
    token, secret = mf.tokens.create(found.id, name=name, expires_in=expires_in)
    if as_json:
        print_json({**token.to_json(), "project": found.name, "secret": secret})
        return
    until = f"expires {iso(token.expires_at)}" if token.expires_at else "no expiry"
    say(f"token {token.id} for project {found.name} ({until}); the secret is shown only now:", err=True)
    say(secret)


@app.command("list")
def list_tokens(
    project: Annotated[str | None, typer.Option("--project", help="Only this project's tokens.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List tokens (never their secrets): project, prefix, expiry, revocation and last use."""
    mf = open_local("token list")
    projects = [_project(mf, project)] if project is not None else mf.projects.list()
    rows = [(p, t) for p in projects for t in mf.tokens.list(p.id)]
    if as_json:
        print_json({"tokens": [{**t.to_json(), "project": p.name, "state": _state(t)} for p, t in rows]})
        return
    table(
        ("ID", "PROJECT", "NAME", "PREFIX", "STATE", "CREATED", "EXPIRES", "LAST USED"),
        (
            (t.id, p.name, t.name, t.prefix, _state(t), iso(t.created_at), iso(t.expires_at), iso(t.last_used_at))
            for p, t in rows
        ),
    )


@app.command("revoke")
def revoke(
    token_id: Annotated[str, typer.Argument(help="Token id (from 'mayfly token list').")],
    as_json: JsonOpt = False,
) -> None:
    """Revoke a token: its next request is refused with 401."""
    mf = open_local("token revoke")
    for project in mf.projects.list():
        if any(t.id == token_id for t in mf.tokens.list(project.id)):
            token = mf.tokens.revoke(project.id, token_id)
            if as_json:
                print_json({**token.to_json(), "project": project.name})
            else:
                say(f"revoked token {token.id} of project {project.name}")
            return
    raise NotFound(f"unknown token {token_id!r}")
