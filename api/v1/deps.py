"""The dependencies ``/v1`` handlers take: this server's Mayfly and the authenticated caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from mayfly.api.deps import get_mayfly
from mayfly.api.v1.auth import CallerDep
from mayfly.core.app import Mayfly

MayflyDep = Annotated[Mayfly, Depends(get_mayfly)]

__all__ = ["CallerDep", "MayflyDep"]
