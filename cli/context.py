"""Builds what a command works on, from the environment: a local home, or a remote server.

``MAYFLY_URL`` (with ``MAYFLY_TOKEN``) switches the CLI to remote mode: commands
that manage codes, tasks, schedules and read targets go to that server's API
(:class:`~mayfly.cli.remote.RemoteMayfly`). Commands that act on the machine or
on the server's home itself (``server``, ``runner``, ``runtime``, target changes,
deploys, projects and tokens) call :func:`open_local`, which refuses in remote
mode with one line instead of quietly using a local home.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from mayfly.core.config import Home
from mayfly.core.errors import Unsupported

if TYPE_CHECKING:
    from mayfly.cli.remote import RemoteMayfly
    from mayfly.core.app import Mayfly
    from mayfly.core.codes import RuntimeInfo


class LocalOnly(Unsupported):
    """A command that needs the home on this machine was run in remote mode."""

    code = "local_only"


def resolve_runtime(name: str) -> RuntimeInfo:
    """Look a runtime up in the catalog shipped with Mayfly."""
    from mayfly.core.codes import RuntimeInfo
    from mayfly.runtimes import get_runtime

    rt = get_runtime(name)
    return RuntimeInfo(name=rt.name, image=rt.image, default_command=rt.default_command)


def remote_url() -> str | None:
    """``MAYFLY_URL`` when remote mode is on."""
    return os.environ.get("MAYFLY_URL", "").strip() or None


def open_app() -> Mayfly | RemoteMayfly:
    """The server at ``$MAYFLY_URL`` if set, else the Mayfly of ``$MAYFLY_HOME`` (``~/.mayfly`` by default)."""
    url = remote_url()
    if url is None:
        from mayfly.core.app import Mayfly

        return Mayfly(Home.from_env(), resolve_runtime)
    token = os.environ.get("MAYFLY_TOKEN", "").strip()
    if not token:
        from mayfly.core.tokens import Unauthorized

        raise Unauthorized(
            "MAYFLY_URL is set but MAYFLY_TOKEN is not: create a token on the server with "
            "'mayfly token create --project NAME'"
        )
    from mayfly.cli.remote import RemoteMayfly

    return RemoteMayfly(url, token)


def require_local(command: str) -> None:
    """Refuse a command that only works on a local home while ``MAYFLY_URL`` is set."""
    if remote_url() is not None:
        raise LocalOnly(
            f"'mayfly {command}' works on a local home only and MAYFLY_URL is set: "
            "run it on the server, or unset MAYFLY_URL"
        )


def open_local(command: str) -> Mayfly:
    """The Mayfly of ``$MAYFLY_HOME`` for a command that cannot run remotely (see :func:`require_local`)."""
    require_local(command)
    from mayfly.core.app import Mayfly

    return Mayfly(Home.from_env(), resolve_runtime)
