"""``mayfly project webhook-secret``: the key that signs a project's completion webhooks.

Wire it into the ``project`` group with ``register(project_app)``, or use ``app``
(a group holding only this command) on its own.
"""

from __future__ import annotations

from typing import Annotated

import typer

from mayfly.cli.context import open_local
from mayfly.cli.options import JsonOpt, ProjectOpt
from mayfly.cli.output import print_json, say


def webhook_secret(
    rotate: Annotated[
        bool, typer.Option("--rotate", help="Replace the secret; receivers must switch to the new one.")
    ] = False,
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the secret that signs the project's webhooks (X-Mayfly-Signature), created on first use."""
    mf = open_local("project webhook-secret")
    pid = mf.project_id(project)
    secret = mf.webhooks.secret(pid, rotate=rotate)
    if as_json:
        print_json({"project": mf.projects.by_id(pid).name, "secret": secret, "rotated": rotate})
        return
    say(secret)
    if rotate:
        say("rotated: deliveries from now on are signed with this secret", style="dim", err=True)


def register(project_app: typer.Typer) -> None:
    """Add ``webhook-secret`` to the ``mayfly project`` group."""
    project_app.command("webhook-secret")(webhook_secret)


app = typer.Typer(help="Completion webhooks.", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Completion webhooks (a group, so ``webhook-secret`` keeps its name)."""


register(app)
