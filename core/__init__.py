"""Mayfly's core: store, queues, blobs, router, runner and the plugin system.

Nothing here imports a cloud SDK; providers plug in through :mod:`.hookspecs`.
"""

from __future__ import annotations

import pluggy

__all__ = ["__version__", "hookimpl"]

__version__ = "0.1.0"

#: Marker for hook implementations in plugins (see :mod:`mayfly.core.hookspecs`).
hookimpl = pluggy.HookimplMarker("mayfly")
