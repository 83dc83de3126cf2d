"""The dependencies ``/v1`` handlers take: this server's Mayfly and the authenticated caller."""

from __future__ import annotations

from mayfly.api.deps import MayflyDep
from mayfly.api.v1.auth import CallerDep

__all__ = ["CallerDep", "MayflyDep"]
