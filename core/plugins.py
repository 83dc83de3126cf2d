"""The plugin manager: loads provider plugins and keeps the provider registry.

``pm.hook.*`` is only called here, behind typed functions; the rest of Mayfly
asks :func:`get_registry` for a provider class by name.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import pluggy

from mayfly.core import hookspecs
from mayfly.core.clouds import CloudRegistry
from mayfly.core.errors import PluginError, ProviderNotFound
from mayfly.core.provider import Provider, ProviderSettings, settings_parameter

ENTRY_POINT_GROUP = "mayfly.providers"
#: The distribution whose entry points are the built-in providers.
OWN_DISTRIBUTION = "mayfly-tasks"


def _check_settings(name: str, provider: type[Provider[Any]]) -> None:
    """``Settings`` is a settings model, and the type parameter's model or a subclass of it."""
    model = getattr(provider, "Settings", None)
    if not (isinstance(model, type) and issubclass(model, ProviderSettings)):
        raise PluginError(f"provider {name!r}: Settings ({model!r}) is not a ProviderSettings subclass")
    declared = settings_parameter(provider)
    if declared is not None and not issubclass(model, declared):
        raise PluginError(
            f"provider {name!r}: Settings is {model.__name__} but the class is "
            f"Provider[{declared.__name__}]; drop the Settings line or make it a subclass of "
            f"{declared.__name__}"
        )


@dataclass(frozen=True)
class PluginInfo:
    """One loaded plugin, for ``mayfly plugins``."""

    name: str
    module: str
    distribution: str
    version: str
    hooks: tuple[str, ...]
    providers: tuple[str, ...]
    #: Clouds (deploy plug-ins) the plugin registers.
    clouds: tuple[str, ...] = ()


class ProviderRegistry:
    """Provider classes by name, filled by ``mayfly_register_providers``."""

    def __init__(self) -> None:
        self._providers: dict[str, type[Provider[Any]]] = {}
        self._origin: dict[str, str] = {}

    def add(self, provider: type[Provider[Any]]) -> None:
        """Register a provider class; fails loudly on a bad or duplicate class."""
        if not (isinstance(provider, type) and issubclass(provider, Provider)):
            raise PluginError(f"{provider!r} was registered as a provider but is not a Provider class")
        name = getattr(provider, "name", None)
        if not isinstance(name, str) or not name:
            raise PluginError(f"provider class {provider.__qualname__} has no 'name'")
        missing = sorted(getattr(provider, "__abstractmethods__", ()))
        if missing:
            raise PluginError(f"provider {name!r} does not implement: {', '.join(missing)}")
        _check_settings(name, provider)
        if name in self._providers and self._providers[name] is not provider:
            raise PluginError(f"provider {name!r} registered twice (by {self._origin[name]} and {provider.__module__})")
        self._providers[name] = provider
        self._origin[name] = provider.__module__

    def get(self, name: str) -> type[Provider[Any]]:
        """The provider class called ``name``."""
        try:
            return self._providers[name]
        except KeyError:
            known = ", ".join(sorted(self._providers)) or "none"
            raise ProviderNotFound(f"unknown provider {name!r} (registered: {known})") from None

    def names(self) -> list[str]:
        return sorted(self._providers)

    def origin(self, name: str) -> str:
        """The module that defines the provider."""
        return self._origin[name]

    def __iter__(self) -> Iterator[type[Provider[Any]]]:
        return iter(self._providers[n] for n in self.names())


@dataclass
class Plugins:
    """The plugin manager and what it loaded."""

    pm: pluggy.PluginManager
    registry: ProviderRegistry
    infos: list[PluginInfo]
    #: Deploy plug-ins by cloud name (``mayfly_register_clouds``).
    clouds: CloudRegistry = field(default_factory=CloudRegistry)


def _module_of(plugin: object) -> str:
    return getattr(plugin, "__name__", None) or type(plugin).__module__


def _under_test() -> bool:
    return "pytest" in sys.modules and os.environ.get("MAYFLY_LOAD_ALL_PLUGINS") != "1"


def build_plugins(extra: tuple[object, ...] = ()) -> Plugins:
    """Create a plugin manager, load entry-point plugins and fill the provider and cloud registries.

    ``extra`` plugins (objects or modules) are registered after the entry points;
    tests and benchmarks use it to add providers of their own.
    """
    pm = pluggy.PluginManager("mayfly")
    pm.add_hookspecs(hookspecs)
    blocked = {n.strip() for n in os.environ.get("MAYFLY_DISABLE_PLUGINS", "").split(",") if n.strip()}
    for name in blocked:
        pm.set_blocked(name)

    infos: list[tuple[str, str, str, str, object]] = []
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist else "?"
        version = ep.dist.version if ep.dist else "?"
        if pm.is_blocked(ep.name) or pm.has_plugin(ep.name):
            continue
        # Under tests only our own built-ins load, so a stray plugin in the environment cannot change results.
        if _under_test() and dist != OWN_DISTRIBUTION:
            continue
        try:
            plugin = ep.load()
        except Exception as exc:  # any import failure of a plugin is reported with its name
            raise PluginError(f"plugin {ep.name!r} ({ep.value}) failed to load: {exc}") from exc
        pm.register(plugin, name=ep.name)
        infos.append((ep.name, ep.value, dist, version, plugin))
    for plugin in extra:
        name = getattr(plugin, "__name__", type(plugin).__name__)
        pm.register(plugin, name=name)
        infos.append((name, name, "(registered in process)", "", plugin))
    pm.check_pending()

    registry = ProviderRegistry()
    pm.hook.mayfly_register_providers(registry=registry)
    clouds = CloudRegistry()
    pm.hook.mayfly_register_clouds(registry=clouds)
    loaded = [
        PluginInfo(
            name=name,
            module=module,
            distribution=dist,
            version=version,
            hooks=tuple(sorted(h.name for h in pm.get_hookcallers(plugin) or ())),
            providers=tuple(n for n in registry.names() if registry.origin(n).startswith(_module_of(plugin))),
            clouds=tuple(n for n in clouds.names() if clouds.origin(n).startswith(_module_of(plugin))),
        )
        for name, module, dist, version, plugin in infos
    ]
    return Plugins(pm=pm, registry=registry, infos=loaded, clouds=clouds)


@lru_cache(maxsize=1)
def default_plugins() -> Plugins:
    """The process-wide plugin set (entry points only)."""
    return build_plugins()


def get_registry() -> ProviderRegistry:
    """The process-wide provider registry."""
    return default_plugins().registry


def get_clouds() -> CloudRegistry:
    """The process-wide cloud (deploy plug-in) registry."""
    return default_plugins().clouds
