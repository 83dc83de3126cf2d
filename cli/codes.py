"""``mayfly code``: push, register, list, show, revisions, download, pause, resume."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer

from mayfly.cli.context import open_app
from mayfly.cli.coreoptions import OptionValues, extra, with_options
from mayfly.cli.options import JsonOpt, ProjectOpt
from mayfly.cli.output import fields, print_json, say, table
from mayfly.core.codes import CodeOptions, parse_env_pairs
from mayfly.core.errors import InvalidInput
from mayfly.core.options import CODE
from mayfly.core.records import Code, Revision, iso
from mayfly.core.secrets import parse_secret_files, parse_secret_pairs

app = typer.Typer(help="Code packages: upload once, then queue tasks by name.", no_args_is_help=True)

Env = Annotated[list[str] | None, typer.Option("--env", "-e", help="Environment variable KEY=VALUE (repeatable).")]
Config = Annotated[
    Path | None, typer.Option("--config-file", help="File whose content tasks read at /mayfly/config.json.")
]
Secret = Annotated[
    list[str] | None,
    typer.Option(
        "--secret",
        help="Secret NAME=VALUE (repeatable): encrypted, never shown; the task reads /mayfly/secrets/NAME.",
    ),
]
SecretFile = Annotated[
    list[str] | None,
    typer.Option("--secret-file", help="Secret NAME=PATH: the file's bytes (repeatable)."),
]
NoSecrets = Annotated[
    bool,
    typer.Option("--no-secrets", help="Drop the previous revision's secrets (keep only those given now)."),
]

#: The options of ``push`` and ``register`` besides core's table (their command-line shape is the CLI's own).
CODE_EXTRAS = (
    extra("env", Env),
    extra("config_file", Config),
    extra("secret", Secret),
    extra("secret_file", SecretFile),
    extra("no_secrets", NoSecrets, False),
)


def _options(values: OptionValues) -> CodeOptions:
    """A code's options from what ``push``/``register`` were given (core's table rows pass through as they are)."""
    values = dict(values)
    env, config_file = values.pop("env"), values.pop("config_file")
    secret, secret_file, no_secrets = values.pop("secret"), values.pop("secret_file"), values.pop("no_secrets")
    return CodeOptions(
        secrets=secret_options(secret, secret_file),
        replace_secrets=no_secrets or None,
        env=parse_env_pairs(env) if env else None,
        config=config_file.read_text() if config_file else None,
        **values,
    )


def secret_options(secret: list[str] | None, secret_file: list[str] | None) -> dict[str, bytes] | None:
    """``--secret NAME=VALUE`` and ``--secret-file NAME=PATH`` as one mapping (None when neither is given)."""
    if not secret and not secret_file:
        return None
    values = {**parse_secret_pairs(secret or []), **parse_secret_files(secret_file or [])}
    if len(values) < len(secret or []) + len(secret_file or []):
        raise InvalidInput("a secret name is given twice")
    return values


def _show(code: Code, rev: Revision, as_json: bool) -> None:
    if as_json:
        print_json(code.to_json(rev))
        return
    fields(
        [
            ("name", code.name),
            ("rev", rev.rev),
            ("kind", rev.kind),
            ("runtime", rev.runtime),
            ("image", rev.image),
            ("command", rev.command),
            ("sha256", rev.sha256),
            ("size", rev.size if rev.kind == "zip" else None),
            ("max concurrency", rev.max_concurrency if rev.max_concurrency is not None else "no limit"),
            ("retries", rev.retries),
            ("retries delay", rev.retries_delay),
            ("timeout", rev.timeout),
            ("priority", rev.default_priority),
            ("target", ", ".join(rev.targets)),
            ("network", rev.network),
            ("cpu", rev.cpu),
            ("memory MiB", rev.memory_mb),
            ("env", rev.env_dict),
            ("secrets", ", ".join(f"{n} (set)" for n in rev.secret_names) or None),
            ("ironworker", rev.ironworker or None),
            ("webhook", rev.webhook),
            ("paused", code.paused or None),
            ("updated", iso(code.updated_at)),
        ]
    )


@app.command("push")
@with_options(CODE, CODE_EXTRAS)
def push(
    path: Annotated[Path, typer.Argument(help="A directory (zipped for you) or a .zip file.")],
    name: Annotated[str, typer.Option("--name", "-n", help="Code name tasks are queued by.")],
    runtime: Annotated[str, typer.Option("--runtime", "-r", help="Base image, e.g. python-3.11 or shell.")],
    options: OptionValues,
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Upload a code package: a new revision of NAME. Unset options keep the previous revision's values."""
    mf = open_app()
    opts = _options(options)
    code, rev = mf.codes.push(mf.project_id(project), name, path, runtime=runtime, options=opts)
    if as_json:
        print_json(code.to_json(rev))
    else:
        say(f"pushed {code.name} rev {rev.rev} ({rev.size} bytes, sha256 {rev.sha256 or ''})")


@app.command("register")
@with_options(CODE, CODE_EXTRAS)
def register(
    image: Annotated[str, typer.Argument(help="A ready image, e.g. myorg/worker:1.2.")],
    name: Annotated[str, typer.Option("--name", "-n", help="Code name tasks are queued by.")],
    options: OptionValues,
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Register a ready image as a code (no zip): tasks run the image's command unless --command is given."""
    mf = open_app()
    opts = _options(options)
    code, rev = mf.codes.register(mf.project_id(project), name, image, opts)
    if as_json:
        print_json(code.to_json(rev))
    else:
        say(f"registered {code.name} rev {rev.rev} → {rev.image}")


@app.command("list")
def list_codes(project: ProjectOpt = None, as_json: JsonOpt = False) -> None:
    """List codes with their latest revision."""
    mf = open_app()
    items = mf.codes.list(mf.project_id(project))
    if as_json:
        print_json({"codes": [code.to_json(rev) for code, rev in items]})
        return
    table(
        ("NAME", "REV", "KIND", "RUNTIME/IMAGE", "COMMAND", "MAX CONC", "UPDATED"),
        (
            (c.name, r.rev, r.kind, r.runtime or r.image, r.command, r.max_concurrency or "-", iso(c.updated_at))
            for c, r in items
        ),
    )


@app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="Code name.")], project: ProjectOpt = None, as_json: JsonOpt = False
) -> None:
    """Show a code and its latest revision."""
    mf = open_app()
    code, rev = mf.codes.get(mf.project_id(project), name)
    _show(code, rev, as_json)


@app.command("revisions")
def revisions(
    name: Annotated[str, typer.Argument(help="Code name.")], project: ProjectOpt = None, as_json: JsonOpt = False
) -> None:
    """List every revision of a code, newest first."""
    mf = open_app()
    revs = mf.codes.revisions(mf.project_id(project), name)
    if as_json:
        print_json({"name": name, "revisions": [r.to_json() for r in revs]})
        return
    table(
        ("REV", "KIND", "RUNTIME/IMAGE", "SHA256", "SIZE", "COMMAND", "CREATED"),
        ((r.rev, r.kind, r.runtime or r.image, r.sha256, r.size, r.command, iso(r.created_at)) for r in revs),
    )


@app.command("download")
def download(
    name: Annotated[str, typer.Argument(help="Code name.")],
    revision: Annotated[int | None, typer.Option("--revision", help="Revision number (default: latest).")] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: NAME_REV.zip).")
    ] = None,
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Download the zip of a revision. Use '-o -' to write it to stdout."""
    mf = open_app()
    rev, stream = mf.codes.download(mf.project_id(project), name, revision)
    with stream:
        if output is not None and str(output) == "-":
            shutil.copyfileobj(stream, sys.stdout.buffer)
            return
        dest = output or Path(f"{name.replace('/', '_')}_{rev.rev}.zip")
        with dest.open("wb") as out:
            shutil.copyfileobj(stream, out)
    if as_json:
        print_json({"name": name, "rev": rev.rev, "path": str(dest), "size": rev.size, "sha256": rev.sha256})
    else:
        say(f"wrote {dest} ({rev.size} bytes)")


@app.command("pause")
def pause(
    name: Annotated[str, typer.Argument(help="Code name.")], project: ProjectOpt = None, as_json: JsonOpt = False
) -> None:
    """Hold the code's queued tasks (running ones carry on)."""
    mf = open_app()
    code = mf.codes.set_paused(mf.project_id(project), name, True)
    print_json(code.to_json()) if as_json else say(f"paused {code.name}")


@app.command("delete")
def delete(
    name: Annotated[str, typer.Argument(help="Code name.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete a code: cancel its queued tasks and end its schedules. Finished tasks keep their history."""
    mf = open_app()
    pid = mf.project_id(project)
    if not yes and not typer.confirm(f"Delete code {name!r}, cancel its queued tasks and end its schedules?"):
        raise typer.Exit(1)
    cancelled = mf.codes.delete(pid, name)
    if as_json:
        print_json({"name": name, "deleted": True, "cancelled_tasks": cancelled})
    else:
        say(f"deleted {name} ({cancelled} queued task{'s' if cancelled != 1 else ''} cancelled)")


@app.command("resume")
def resume(
    name: Annotated[str, typer.Argument(help="Code name.")], project: ProjectOpt = None, as_json: JsonOpt = False
) -> None:
    """Release the code's queued tasks."""
    mf = open_app()
    code = mf.codes.set_paused(mf.project_id(project), name, False)
    print_json(code.to_json()) if as_json else say(f"resumed {code.name}")
