"""The provider interface: how Mayfly starts, watches and removes one container.

A provider is a class with a unique ``name``, generic in the pydantic model of
its target settings (``class MyProvider(Provider[MySettings])``, so
``self.settings`` is a ``MySettings`` without a cast), its capabilities declared
as data, and a handful of methods. ``launch``, ``state``, ``logs``, ``result`` and ``remove`` are required;
``wait`` has a polling default; ``cancel`` and ``reattach`` raise
:class:`~mayfly.core.errors.Unsupported` unless the provider overrides them.

Providers are registered through the ``mayfly_register_providers`` hook (see
:mod:`mayfly.core.hookspecs`); the runner looks a provider up by name and calls
these typed methods directly. SDK exceptions must be translated into
:class:`~mayfly.core.errors.MayflyError` subclasses before they leave a provider.

The class attribute ``Settings`` (the model core validates a target's settings
with) is derived from the type parameter; a provider may still set it, to a
subclass of the parameter (checked when the provider is registered).
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar, get_args, get_origin

from pydantic import BaseModel, ConfigDict

from mayfly.core.blobs import BlobStore
from mayfly.core.errors import Unsupported
from mayfly.core.models import Attached, ContainerState, ContainerStatus, LaunchResult, LaunchSpec
from mayfly.core.queues import QueueSet


class Capability(StrEnum):
    """Optional features a provider may offer."""

    #: Logs can be read while the container runs.
    LOG_STREAMING = "log_streaming"
    #: A running container can be stopped (SIGTERM, then SIGKILL after a grace period).
    CANCEL = "cancel"
    #: Containers can be found again by their labels after a runner restart.
    REATTACH = "reattach"
    #: ``network="none"`` is honoured.
    NETWORK_NONE = "network_none"
    GPU = "gpu"
    #: Spot / preemptible capacity.
    SPOT = "spot"
    #: Secret values reach the container privately (files, a secret manager), never in its env or spec.
    SECRETS = "secrets"


@dataclass(frozen=True)
class ProviderLimits:
    """Hard limits of a provider; admission (:mod:`mayfly.core.admission`) refuses codes and tasks beyond them."""

    max_cpu: float
    max_memory_mb: int
    #: Largest timeout the provider can run, in seconds.
    max_timeout: int
    #: Why each limit is what it is; shown to users whose code or task goes beyond it.
    cpu_reason: str = "the provider's largest task"
    memory_reason: str = "the provider's largest task"
    timeout_reason: str = "the provider's longest task"


class ProviderSettings(BaseModel):
    """Base of every provider's target settings. Unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


#: The settings model of a provider (``Provider[SettingsT]``).
SettingsT = TypeVar("SettingsT", bound=ProviderSettings)


@dataclass(frozen=True)
class Transport:
    """A target's own queues and blob store (a cloud target's SQS + S3, say)."""

    queues: QueueSet
    blobs: BlobStore


@dataclass(frozen=True)
class ProviderContext:
    """What the runner hands a provider besides its settings."""

    #: The target's blob store (code packages, payloads, results).
    blobs: BlobStore
    #: A private scratch directory the provider may use (per target).
    work_dir: Path
    #: Identifies this Mayfly home, so two homes on one engine never see each other's containers.
    home_id: str
    #: Name of the target this provider instance serves.
    target: str


class Provider(abc.ABC, Generic[SettingsT]):
    """Starts one container per (task, attempt) and reports on it; ``SettingsT`` is its settings model."""

    #: Registry key, e.g. "docker". Must be unique.
    name: ClassVar[str]
    #: The pydantic model of this provider's target settings: the type parameter, unless
    #: the class sets it (to a subclass of the parameter, see :func:`settings_parameter`).
    Settings: ClassVar[type[ProviderSettings]] = ProviderSettings
    #: Capabilities this provider offers.
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    #: Capabilities it does not offer, each with the reason shown to users.
    unsupported: ClassVar[Mapping[Capability, str]] = {}
    limits: ClassVar[ProviderLimits] = ProviderLimits(max_cpu=4.0, max_memory_mb=16384, max_timeout=86400)
    #: Networks refused outright, each with the reason shown to users (``{"host": "..."}``).
    #: ``bridge`` (the default egress network) is always accepted; ``none`` is governed by
    #: :attr:`Capability.NETWORK_NONE`.
    refused_networks: ClassVar[Mapping[str, str]] = {}
    #: Why other named networks are refused, or ``None`` when the provider accepts them.
    named_networks_refused: ClassVar[str | None] = None
    #: Seconds between ``state`` calls in the default ``wait``.
    poll_interval: ClassVar[float] = 1.0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Take ``Settings`` from the type parameter when the class names one and sets no ``Settings`` itself."""
        super().__init_subclass__(**kwargs)
        if "Settings" not in cls.__dict__:
            own = _parameter_of(cls)
            if own is not None:
                cls.Settings = own

    def __init__(self, settings: SettingsT, context: ProviderContext) -> None:
        self.settings: SettingsT = settings
        self.context = context

    @classmethod
    def transport(cls, settings: SettingsT, target: str) -> Transport | None:
        """The queues and blob store of a target of this provider.

        ``None`` (the default) means the home's embedded queues and local blob
        directory, which is right for a provider whose containers run on this
        machine. A cloud provider returns its cloud's queue and storage, so a
        runner in that cloud needs nothing else.
        """
        return None

    @classmethod
    def limits_for(cls, settings: SettingsT) -> ProviderLimits:
        """The limits of a target with these settings (``limits`` unless they depend on the settings)."""
        return cls.limits

    # ------------------------------------------------------------ required

    @abc.abstractmethod
    def launch(self, spec: LaunchSpec) -> LaunchResult:
        """Start the container for ``spec`` and return its handle.

        Idempotent: when a container named ``spec.name`` already exists (a launch
        retried after a crash, a redelivered message), return its handle with
        ``existing=True`` and start nothing.

        Raises:
            LaunchFailed: the container could not be started.
            EngineNotRunning / CredentialsMissing: the provider is unreachable.
        """

    @abc.abstractmethod
    def state(self, handle: str) -> ContainerState:
        """Report the container's state; ``MISSING`` when it no longer exists."""

    @abc.abstractmethod
    def logs(self, handle: str, *, follow: bool = False) -> Iterator[bytes]:
        """Yield the container's combined stdout and stderr from the start.

        With ``follow=True`` the iterator ends when the container exits, having
        yielded every byte it wrote.
        """

    @abc.abstractmethod
    def result(self, handle: str, max_bytes: int) -> bytes | None:
        """Return what the task wrote to /mayfly/result.json, or None if nothing.

        Raises:
            InvalidInput: the result is larger than ``max_bytes``.
        """

    @abc.abstractmethod
    def remove(self, handle: str) -> None:
        """Remove the container and everything created for it. Removing twice is fine."""

    # ------------------------------------------------------------ optional

    def find(self, spec_name: str) -> LaunchResult | None:
        """Return the container with this deterministic name, if it exists."""
        raise Unsupported(f"provider {self.name!r} does not support find")

    def wait(self, handle: str, timeout: float) -> ContainerState:
        """Block until the container exits or ``timeout`` seconds pass; return its state."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.state(handle)
            if st.status in (ContainerStatus.EXITED, ContainerStatus.MISSING):
                return st
            left = deadline - time.monotonic()
            if left <= 0:
                return st
            time.sleep(min(self.poll_interval, left))

    def cancel(self, handle: str, grace_seconds: float) -> None:
        """Stop the container: SIGTERM, then SIGKILL after ``grace_seconds``.

        Raises:
            Unsupported: the provider cannot stop a running container.
        """
        raise Unsupported(f"provider {self.name!r} does not support cancel")

    def reattach(self) -> list[Attached]:
        """Find this home's containers on this target by their labels (after a runner restart).

        Raises:
            Unsupported: the provider cannot list containers by label.
        """
        raise Unsupported(f"provider {self.name!r} does not support reattach")

    def sweep(self, is_over: Callable[[str, int], bool]) -> int:
        """Remove what is left of attempts that are over; return how many leftovers went.

        ``is_over(task_id, attempt)`` is true when the attempt reported its end and no
        runner works on it any more. The runner calls this at start, periodically and
        after an engine outage. The default removes the containers :meth:`reattach`
        finds; a provider with scratch space of its own (task directories) removes
        that too.
        """
        try:
            found = self.reattach()
        except Unsupported:
            return 0
        removed = 0
        for item in found:
            if is_over(item.task_id, item.attempt):
                self.remove(item.handle)
                removed += 1
        return removed

    def check(self) -> None:
        """Verify the provider is usable (engine reachable, credentials valid); raise if not."""

    def close(self) -> None:
        """Release clients and connections."""


def _parameter_of(cls: type) -> type[ProviderSettings] | None:
    """The settings model ``cls`` itself names in its bases (``Provider[X]``, ``Base[X]``), if any."""
    for base in cls.__dict__.get("__orig_bases__", ()):
        origin = get_origin(base)
        if isinstance(origin, type) and issubclass(origin, Provider):
            for arg in get_args(base):
                if isinstance(arg, type) and issubclass(arg, ProviderSettings):
                    return arg
    return None


def settings_parameter(provider: type[Provider[Any]]) -> type[ProviderSettings] | None:
    """The settings model a provider class is parameterized with, or ``None`` (a bare ``Provider``).

    The nearest class in the MRO that names one wins, so a subclass of ``DockerProvider``
    has ``DockerSettings``. ``Settings`` must be this class or a subclass of it.
    """
    for klass in provider.__mro__:
        found = _parameter_of(klass)
        if found is not None:
            return found
    return None


def check_capability(provider: type[Provider[Any]], capability: Capability) -> None:
    """Raise :class:`Unsupported` naming the feature and the reason when ``provider`` lacks it."""
    if capability in provider.capabilities:
        return
    reason = provider.unsupported.get(capability, "not implemented")
    raise Unsupported(f"provider {provider.name!r} does not support {capability.value}: {reason}")
