"""``mayfly db upgrade`` and ``mayfly db status``: the store's schema (Alembic migrations).

A SQLite home is migrated whenever it is opened; a PostgreSQL database shared by many
processes is migrated only here, once, before the servers start (or after an upgrade
of Mayfly). Both commands work on ``MAYFLY_DATABASE_URL``, else the home's SQLite file.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated

import typer

from mayfly.cli.context import require_local
from mayfly.cli.output import print_json, say
from mayfly.core.config import Home
from mayfly.core.dbfaults import storage_faults
from mayfly.core.errors import SchemaAhead
from mayfly.core.peers import Peer, live
from mayfly.core.store import HEAD, Store, display_url

app = typer.Typer(help="The store's schema: upgrade it, show where it is.", no_args_is_help=True)


def _open() -> Store:
    home = Home.from_env()
    url = home.db_url
    if url.startswith("sqlite"):
        home.ensure()
    return Store(url, migrate=False)


def _state(version: str | None) -> str:
    if version == HEAD:
        return "up to date"
    if version is None:
        return "empty"
    if not version.isdigit() or int(version) > int(HEAD):
        return "ahead"
    return "behind"


@app.command("status")
def status(json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Show the store's URL, its schema revision and this Mayfly's, and on PostgreSQL the live control planes.

    Exits 5 unless the revisions match.
    """
    require_local("db status")
    store = _open()
    peers: list[Peer] = []
    try:
        with storage_faults():
            version = store.schema_version()
            state = _state(version)
            if state == "up to date" and store.is_postgres:
                peers = live(store)
    finally:
        store.close()
    doc: dict[str, object] = {
        "url": display_url(store.url),
        "dialect": store.engine.dialect.name,
        "revision": version,
        "head": HEAD,
        "state": state,
    }
    if store.is_postgres:
        doc["control_planes"] = [dataclasses.asdict(p) for p in peers]
    if json_out:
        print_json(doc)
    else:
        say(f"{doc['url']} ({doc['dialect']}): revision {version or '-'}, this Mayfly's {HEAD}: {state}")
        if store.is_postgres and state == "up to date":
            names = ", ".join(f"{p.host} (pid {p.pid})" for p in peers)
            say(f"control planes live: {len(peers)}" + (f": {names}" if names else ""))
    if state == "behind" or state == "empty":
        say("run mayfly db upgrade", err=True)
        raise typer.Exit(5)
    if state == "ahead":
        raise typer.Exit(int(SchemaAhead.exit_code))


@app.command("upgrade")
def upgrade() -> None:
    """Bring the store's schema to this Mayfly's revision; does nothing when it already is (idempotent).

    Several upgrades at once are safe: they take turns (an advisory lock on PostgreSQL, a file lock on SQLite).
    """
    require_local("db upgrade")
    store = _open()
    try:
        with storage_faults():
            before = store.schema_version()
        changed = store.migrate()
    finally:
        store.close()
    where = display_url(store.url)
    if changed:
        say(f"{where}: upgraded from revision {before or '-'} to {HEAD}")
    else:
        say(f"{where}: already at revision {HEAD}")
