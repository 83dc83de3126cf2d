"""``mayfly runtime``: build and list the base images tasks run on."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mayfly.cli.context import require_local
from mayfly.cli.options import JsonOpt
from mayfly.cli.output import err_console, plain, print_json, say, table
from mayfly.core.config import Home
from mayfly.core.errors import EngineNotRunning

app = typer.Typer(
    help="Runtimes: base images (python-3.11, shell, ...) that code packages run on.", no_args_is_help=True
)


def _client() -> Any:
    import docker

    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # the SDK raises several unrelated types when no engine answers
        raise EngineNotRunning(
            f"Docker engine is not running ({exc.__class__.__name__}): start it with "
            "'sudo systemctl start docker' or 'sudo dockerd &'"
        ) from None
    return client


@app.command("build")
def build(
    name: Annotated[str, typer.Argument(help="Runtime name, e.g. python-3.11 or shell.")],
    base: Annotated[
        str | None,
        typer.Option("--base", help="Build on this image (it must provide python3) instead of Debian packages."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Build a runtime image on the local engine; works offline (from Debian packages)."""
    require_local("runtime build")
    from mayfly.runtimes import build as build_image
    from mayfly.runtimes import get_runtime

    runtime = get_runtime(name)
    client = _client()
    home = Home.from_env().ensure()
    with err_console.status(f"building {runtime.name}…") as status:
        built = build_image(
            runtime,
            client,
            home.cache_dir,
            base=base,
            progress=lambda msg: status.update(plain(f"{runtime.name}: {msg}")),
        )
    if as_json:
        print_json({"name": runtime.name, "image": built.tag, "id": built.image_id, "size": built.size})
    else:
        say(f"built {built.tag} ({built.size / 1e6:.1f} MB)")


@app.command("list")
def list_runtimes(as_json: JsonOpt = False) -> None:
    """List the runtimes Mayfly knows and whether each is built on the local engine."""
    from mayfly.runtimes import catalog, image_status

    try:
        client = _client()
    except EngineNotRunning:
        client = None
    rows = []
    for rt in catalog():
        built = image_status(rt, client) if client is not None else None
        rows.append(
            {
                "name": rt.name,
                "description": rt.description,
                "image": rt.image,
                "default_command": rt.default_command,
                "built": built is not None,
                "size": built.size if built else None,
                "engine": client is not None,
            }
        )
    if as_json:
        print_json({"runtimes": rows})
        return
    table(
        ("NAME", "IMAGE", "BUILT", "SIZE MB", "DEFAULT COMMAND", "DESCRIPTION"),
        (
            (
                r["name"],
                r["image"],
                "yes" if r["built"] else ("no" if r["engine"] else "? (engine down)"),
                f"{int(r['size']) / 1e6:.1f}" if r["size"] else "",
                r["default_command"] or "",
                r["description"],
            )
            for r in rows
        ),
    )
