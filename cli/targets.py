"""``mayfly target``: the places tasks run — list, show, check, add, remove."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from mayfly.cli import costs
from mayfly.cli.context import open_app, open_local
from mayfly.cli.options import JsonOpt
from mayfly.cli.output import err_console, fields, plain, print_json, say, table
from mayfly.core.errors import InvalidInput
from mayfly.core.records import iso

app = typer.Typer(help="Targets: where tasks run (local Docker, or a deployed cloud stack).", no_args_is_help=True)

Name = Annotated[str, typer.Argument(help="Target name.")]


def _settings(settings: str | None, settings_file: Path | None) -> dict[str, Any]:
    if settings is not None and settings_file is not None:
        raise InvalidInput("give --settings or --settings-file, not both")
    text = settings_file.read_text() if settings_file is not None else settings or "{}"
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"settings are not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidInput("settings must be a JSON object")
    return value


@app.command("list")
def list_targets(as_json: JsonOpt = False) -> None:
    """List targets with their provider, capacity and queued/running tasks."""
    mf = open_app()
    targets = mf.targets.list()
    counts = mf.tasks.count_by_target()
    breakers = mf.targets.breakers()
    if as_json:
        print_json(
            {
                "targets": [
                    {**t.to_json(), **counts.get(t.name, {}), "breaker": breakers.get(t.name, _CLOSED)} for t in targets
                ]
            }
        )
        return
    table(
        ("NAME", "PROVIDER", "CAPACITY", "QUEUED", "RUNNING", "RUNNER", "BREAKER"),
        (
            (
                t.name,
                t.provider,
                t.capacity,
                counts.get(t.name, {}).get("queued", 0),
                counts.get(t.name, {}).get("running", 0) + counts.get(t.name, {}).get("preparing", 0),
                "in this server" if t.embedded_runner else "remote",
                _breaker_text(breakers.get(t.name, _CLOSED)),
            )
            for t in targets
        ),
    )


_CLOSED: dict[str, Any] = {"state": "closed", "failures": 0}


def _breaker_text(b: dict[str, Any]) -> str:
    """``closed``, ``open until 2026-...Z (capacity)`` or ``half-open``."""
    if b.get("state") == "open":
        return f"open until {b.get('open_until')} ({b.get('last_kind')})"
    return str(b.get("state", "closed"))


@app.command("show")
def show(name: Name, as_json: JsonOpt = False) -> None:
    """Show a target's provider, capacity and settings."""
    mf = open_app()
    target = mf.targets.get(name)
    if as_json:
        print_json(target.to_json())
        return
    fields(
        [
            ("name", target.name),
            ("provider", target.provider),
            ("capacity", target.capacity),
            ("runner", "in this server" if target.embedded_runner else "remote"),
            ("created", iso(target.created_at)),
        ]
    )
    for key, value in target.settings_dict.items():
        say(f"  {key}: {json.dumps(value) if not isinstance(value, str) else value}")


@app.command("check")
def check(name: Name, as_json: JsonOpt = False) -> None:
    """Check credentials, permissions and resources of a target before anything runs on it."""
    mf = open_local("target check")
    mf.targets.get(name)
    with err_console.status(plain(f"checking {name}…")):
        provider = mf.provider_for(name)
        try:
            provider.check()
        finally:
            provider.close()
    if as_json:
        print_json({"target": name, "ok": True})
    else:
        say(f"{name}: ok")


@app.command("add")
def add(
    name: Name,
    provider: Annotated[str, typer.Option("--provider", help="Provider name (see `mayfly plugins`).")],
    settings: Annotated[str | None, typer.Option("--settings", help="Provider settings as a JSON object.")] = None,
    settings_file: Annotated[
        Path | None, typer.Option("--settings-file", help="Read the settings from a file.")
    ] = None,
    capacity: Annotated[int, typer.Option("--capacity", help="Most tasks preparing or running at once.")] = 10,
    remote_runner: Annotated[
        bool, typer.Option("--remote-runner", help="The target's runner runs elsewhere (not in `mayfly server`).")
    ] = False,
    replace: Annotated[bool, typer.Option("--replace", help="Update the target if it exists.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Add a target by hand (a deploy adds its target itself)."""
    mf = open_local("target add")
    target = mf.targets.add(
        name,
        provider,
        _settings(settings, settings_file),
        capacity=capacity,
        embedded_runner=not remote_runner,
        replace=replace,
    )
    if as_json:
        print_json(target.to_json())
    else:
        say(f"added target {target.name} ({target.provider}); check it with `mayfly target check {name}`")


@app.command("remove")
def remove(name: Name) -> None:
    """Remove a target that has no unfinished tasks."""
    mf = open_local("target remove")
    mf.targets.remove(name)
    say(f"removed target {name}")


costs.register_price(app)
