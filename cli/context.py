"""Builds the :class:`~mayfly.core.app.Mayfly` object a command works on, from the environment."""

from __future__ import annotations

from mayfly.core.app import Mayfly
from mayfly.core.codes import RuntimeInfo
from mayfly.core.config import Home


def resolve_runtime(name: str) -> RuntimeInfo:
    """Look a runtime up in the catalog shipped with Mayfly."""
    from mayfly.runtimes import get_runtime

    rt = get_runtime(name)
    return RuntimeInfo(name=rt.name, image=rt.image, default_command=rt.default_command)


def open_app() -> Mayfly:
    """The Mayfly of ``$MAYFLY_HOME`` (``~/.mayfly`` by default)."""
    return Mayfly(Home.from_env(), resolve_runtime)
