"""Hook specifications: how plugins extend Mayfly.

Mayfly uses `pluggy <https://pluggy.readthedocs.io>`_ with the project name
``"mayfly"``. A plugin is a module or object with functions marked by
:data:`mayfly.core.hookimpl`::

    from mayfly.core import hookimpl
    from mayfly.core.provider import Provider, ProviderSettings

    class MySettings(ProviderSettings):
        region: str

    class MyProvider(Provider[MySettings]):  # self.settings is a MySettings
        name = "my-cloud"
        ...

    @hookimpl
    def mayfly_register_providers(registry):
        registry.add(MyProvider)

and is found through the ``mayfly.providers`` entry-point group of its
distribution::

    [project.entry-points."mayfly.providers"]
    my-cloud = "my_package.mayfly_plugin"

The built-in providers are registered through the very same group, and so are
clouds (deploy plug-ins, ``mayfly_register_clouds``): one plug-in module may
implement either hook or both. Set
``MAYFLY_DISABLE_PLUGINS=name1,name2`` to block entry points by name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from mayfly.core.clouds import CloudRegistry
    from mayfly.core.plugins import ProviderRegistry

__all__ = ["mayfly_register_clouds", "mayfly_register_providers"]

_spec = pluggy.HookspecMarker("mayfly")


# -------------------------------------------------------------------- providers


@_spec
def mayfly_register_providers(registry: ProviderRegistry) -> None:
    """Register provider classes.

    Called once when the plugin manager is built. Each implementation calls
    ``registry.add(ProviderClass)`` for every provider it offers; a second
    provider with the same ``name`` is an error.

    :param registry: the registry to add :class:`~mayfly.core.provider.Provider` subclasses to.
    """


# -------------------------------------------------------------------- clouds (deploy)


@_spec
def mayfly_register_clouds(registry: CloudRegistry) -> None:
    """Register deploy plug-ins: what ``mayfly deploy`` needs to build a target on one cloud.

    Called once when the plugin manager is built. Each implementation calls
    ``registry.add(CloudClass)`` with a subclass of :class:`mayfly.infra.cloud.Cloud`
    (its stack-file model, Pulumi program, image registry and outputs-to-settings
    step; see docs/clouds.md). The plug-in module must not import Pulumi at import
    time: every ``mayfly`` command loads it, with or without the ``deploy`` extra.

    :param registry: the registry to add deploy plug-in classes to.
    """
