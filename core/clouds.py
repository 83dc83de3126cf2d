"""The cloud registry: deploy plug-ins by the name stack files give them (``cloud: aws``).

A deploy plug-in is what ``mayfly deploy`` needs to build a target on one cloud:
its stack-file model, its Pulumi program, how it pushes runtime images and how
stack outputs become target settings. Its contract is
:class:`mayfly.infra.cloud.Cloud`, which lives with the deploy engine (``infra``,
above core): core only keeps the classes that plug-ins register through
``mayfly_register_clouds`` and checks what it can without importing them (a
class, a ``name``, a ``provider``, nothing abstract left).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from mayfly.core.errors import PluginError

#: What ``cloud:`` may say in a stack file (also the key of the cloud's own section).
CLOUD_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


class CloudRegistry:
    """Deploy plug-in classes by cloud name, filled by ``mayfly_register_clouds``."""

    def __init__(self) -> None:
        self._clouds: dict[str, type[Any]] = {}
        self._origin: dict[str, str] = {}

    def add(self, cloud: type[Any]) -> None:
        """Register a deploy plug-in class; fails loudly on a malformed or duplicate one."""
        if not isinstance(cloud, type):
            raise PluginError(f"{cloud!r} was registered as a cloud but is not a class")
        name = getattr(cloud, "name", None)
        if not isinstance(name, str) or not CLOUD_NAME.match(name):
            raise PluginError(
                f"cloud class {cloud.__qualname__} has no valid 'name' (lowercase letters, digits, '_'; got {name!r})"
            )
        provider = getattr(cloud, "provider", None)
        if not isinstance(provider, str) or not provider:
            raise PluginError(f"cloud {name!r} names no 'provider' (the provider its targets use)")
        missing = sorted(getattr(cloud, "__abstractmethods__", ()))
        if missing:
            raise PluginError(f"cloud {name!r} does not implement: {', '.join(missing)}")
        if name in self._clouds and self._clouds[name] is not cloud:
            raise PluginError(f"cloud {name!r} registered twice (by {self._origin[name]} and {cloud.__module__})")
        self._clouds[name] = cloud
        self._origin[name] = cloud.__module__

    def find(self, name: str) -> type[Any] | None:
        """The plug-in class of cloud ``name``, or None when no plug-in registered it."""
        return self._clouds.get(name)

    def names(self) -> list[str]:
        """Every registered cloud, sorted."""
        return sorted(self._clouds)

    def origin(self, name: str) -> str:
        """The module that defines the cloud's plug-in class."""
        return self._origin[name]

    def __iter__(self) -> Iterator[type[Any]]:
        return iter(self._clouds[n] for n in self.names())
