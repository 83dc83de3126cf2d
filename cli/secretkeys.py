"""``mayfly secret-key``: rotate the key that encrypts secret values, re-encrypt, drop old keys.

Local only: the key belongs to the server's home (docs/secrets.md).
"""

from __future__ import annotations

import typer

from mayfly.cli.context import open_local
from mayfly.cli.output import say
from mayfly.core.errors import Conflict, Unsupported
from mayfly.core.secretkeys import launching_with_secrets, reseal
from mayfly.core.secrets import KEY_ENV, add_primary_key, drop_old_keys

app = typer.Typer(help="The key that encrypts secret values: rotate, reseal, prune.", no_args_is_help=True)


def _file_only(command: str) -> None:
    mf = open_local(f"secret-key {command}")
    if mf.secret_box.from_env:
        raise Unsupported(
            f"the key comes from {KEY_ENV}: put the new key first there ('NEW,OLD'), restart Mayfly, "
            "then run 'mayfly secret-key reseal' (docs/secrets.md)"
        )


@app.command("rotate")
def rotate() -> None:
    """Make a new primary key (the old ones still decrypt) and re-encrypt every stored secret with it."""
    _file_only("rotate")
    mf = open_local("secret-key rotate")
    add_primary_key(mf.home.secret_key_file)
    count = reseal(mf.store, mf.secret_box)
    say(
        f"new key in {mf.home.secret_key_file}; {count} secret values re-encrypted. Back the file up, and run "
        "'mayfly secret-key prune' once tasks already launching have started."
    )


@app.command("reseal")
def reseal_command() -> None:
    """Re-encrypt every stored secret with the primary key (after changing MAYFLY_SECRET_KEY by hand)."""
    mf = open_local("secret-key reseal")
    say(f"{reseal(mf.store, mf.secret_box)} secret values re-encrypted with the primary key")


@app.command("prune")
def prune() -> None:
    """Drop every key but the primary from the key file (after a rotation)."""
    _file_only("prune")
    mf = open_local("secret-key prune")
    waiting = launching_with_secrets(mf.store)
    if waiting:
        raise Conflict(f"{waiting} tasks with secrets are being launched with the old key: prune once they started")
    reseal(mf.store, mf.secret_box)
    dropped = drop_old_keys(mf.home.secret_key_file)
    say(f"dropped {dropped} old keys from {mf.home.secret_key_file}")
