"""The deploy plug-in contract: what one cloud gives ``mayfly deploy | preview | destroy | outputs``.

A cloud registers a :class:`Cloud` subclass through the ``mayfly_register_clouds``
hook (entry-point group ``mayfly.providers``, like providers)::

    from mayfly.core import hookimpl

    @hookimpl
    def mayfly_register_clouds(registry):
        registry.add(GcpCloud)

The engine (:mod:`mayfly.infra.deploy`), the stack-file reader
(:mod:`mayfly.infra.stackfile`) and the image push (:mod:`mayfly.infra.images`) only
talk to this class; none of them names a cloud. A plug-in module must not import
Pulumi or a cloud SDK when it is imported (every ``mayfly`` command loads it, with or
without the ``deploy`` extra): :meth:`Cloud.program` imports its component lazily.
docs/clouds.md lists the files a new cloud adds.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from mayfly.core.errors import PluginError
from mayfly.core.plugins import default_plugins, get_clouds

if TYPE_CHECKING:
    from mayfly.core.provider import ProviderSettings
    from mayfly.infra.images import ImageRegistry
    from mayfly.infra.stackfile import StackBase


class Cloud(ABC):
    """One cloud's deploy plug-in. Subclasses set the class attributes and implement the two methods."""

    #: ``cloud:`` in stack files (and the key of the cloud's own section, by convention).
    name: ClassVar[str]
    #: Provider of the targets a deploy records (``ecs``); its ``Settings`` validate the outputs.
    provider: ClassVar[str]
    #: The whole stack-file model: :class:`~mayfly.infra.stackfile.StackBase` plus ``cloud: Literal[name]``,
    #: the cloud's section and its own rules. Validated before anything runs, one line per problem.
    stack_model: ClassVar[type[StackBase]]
    #: Pulumi resource plugin installed before a run (``aws``), and the Python package whose version pins
    #: it (``pulumi_aws``). Empty: the program needs no resource plugin.
    pulumi_plugin: ClassVar[str] = ""
    pulumi_package: ClassVar[str] = ""
    #: How people call the cloud in messages ("AWS").
    label: ClassVar[str] = ""
    #: Substrings of Pulumi's output that mean the cloud refused or found no credentials, and what to do then.
    credentials_markers: ClassVar[tuple[str, ...]] = ()
    credentials_hint: ClassVar[str] = ""
    #: The pip command that installs what a deploy to this cloud needs (its SDK extra and ``deploy``).
    install_hint: ClassVar[str] = 'pip install "mayfly-tasks[deploy]"'

    # ------------------------------------------------------------ before Pulumi runs

    def config(self, stack: StackBase) -> dict[str, str]:
        """Stack config the resource plugin reads (default: ``<plugin>:region``)."""
        return {f"{self.pulumi_plugin}:region": stack.region} if self.pulumi_plugin else {}

    def check_credentials(self, stack: StackBase) -> None:
        """Raise :class:`~mayfly.core.errors.CredentialsMissing` when no credentials are found at all."""

    # ------------------------------------------------------------ Pulumi

    @abstractmethod
    def program(self, stack: StackBase) -> Callable[[], None]:
        """The inline Pulumi program: builds the cloud's component and exports its outputs.

        It must export ``settings`` (or override :meth:`settings_output`). Import Pulumi here, not at the
        top of the plug-in module.
        """

    # ------------------------------------------------------------ after Pulumi ran

    def settings_output(self, stack: StackBase, outputs: Mapping[str, Any]) -> object:
        """The raw target settings among the stack outputs (default: the ``settings`` output)."""
        return outputs.get("settings")

    @abstractmethod
    def image_registry(self, stack: StackBase, outputs: Mapping[str, Any]) -> ImageRegistry:
        """Where the stack's runtime images go (:class:`~mayfly.infra.errors.DeployFailed` when the outputs
        name none)."""

    # ------------------------------------------------------------ helpers

    def settings_model(self) -> type[ProviderSettings]:
        """The settings model of the cloud's provider (from the provider registry)."""
        model: type[ProviderSettings] = default_plugins().registry.get(self.provider).Settings
        return model


def cloud_names() -> list[str]:
    """Every registered cloud."""
    return get_clouds().names()


def find_cloud(name: str) -> Cloud | None:
    """The deploy plug-in of cloud ``name``, or None when none is registered."""
    cls = get_clouds().find(name)
    if cls is None:
        return None
    if not issubclass(cls, Cloud):
        raise PluginError(f"cloud {name!r} ({cls.__module__}) is not a mayfly.infra.cloud.Cloud subclass")
    return cls()


def cloud_for(name: str) -> Cloud:
    """The deploy plug-in of a validated stack's cloud (a plug-in removed since: one line)."""
    cloud = find_cloud(name)
    if cloud is None:
        known = ", ".join(cloud_names()) or "none installed"
        raise PluginError(f"no deploy plug-in for cloud {name!r} is installed (installed: {known})")
    return cloud
