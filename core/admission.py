"""Admission: what a target's provider cannot run is refused before anything is stored.

Every code push or register, every task row (CLI, /v1, IronWorker's /2, bulk
queues, schedule firings) and every schedule creation passes through
:func:`admit` with the target it will run on and what it asks of it. The
provider declares, as data on its class, what it offers and refuses
(:class:`~mayfly.core.provider.Capability` and ``unsupported``, ``refused_networks``,
``named_networks_refused``, :class:`~mayfly.core.provider.ProviderLimits` with
their reasons); a request beyond that raises :class:`TargetUnsupported` with one
line naming the target, the feature and the provider's own reason. The runner and
the provider keep their own checks as a second line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mayfly.core.errors import TargetUnsupported

if TYPE_CHECKING:  # the provider class is loaded by whoever admits; importing this module loads no provider
    from mayfly.core.provider import Capability, Provider, ProviderLimits

#: The default network: egress through the engine's or cloud's usual path. Every provider accepts it.
BRIDGE = "bridge"
#: No network at all (loopback only): needs :attr:`Capability.NETWORK_NONE`.
NONE = "none"


@dataclass(frozen=True)
class Requirements:
    """What a code revision, task or schedule asks of the provider that will run it."""

    network: str = BRIDGE
    cpu: float = 1.0
    memory_mb: int = 512
    #: Seconds; ``None`` when the caller has none to check.
    timeout: int | None = None
    #: Optional features asked for (GPU, spot, ...).
    capabilities: frozenset[Capability] = frozenset()


def admit(target: str, provider: type[Provider[Any]], need: Requirements, limits: ProviderLimits | None = None) -> None:
    """Refuse ``need`` on ``target`` (run by ``provider``) when the provider cannot do it.

    ``limits`` are the target's own (``provider.limits_for(settings)``); the class's by default.

    Raises:
        TargetUnsupported: one line, e.g. ``target aws-dev (ecs) does not support network none: ...``.
    """
    where = f"target {target} ({provider.name})"
    for capability in sorted(need.capabilities):
        if capability not in provider.capabilities:
            reason = provider.unsupported.get(capability, "not implemented")
            raise TargetUnsupported(f"{where} does not support {capability.value}: {reason}")
    _admit_network(where, provider, need.network)
    _admit_limits(where, limits or provider.limits, need)


def _admit_network(where: str, provider: type[Provider[Any]], network: str) -> None:
    if network == BRIDGE:
        return
    if network == NONE:
        from mayfly.core.provider import Capability

        if Capability.NETWORK_NONE not in provider.capabilities:
            why = provider.unsupported.get(Capability.NETWORK_NONE, "not implemented")
            raise TargetUnsupported(f"{where} does not support network none: {why}")
        return
    reason = provider.refused_networks.get(network) or provider.named_networks_refused
    if reason is not None:
        raise TargetUnsupported(f"{where} does not allow network {network}: {reason}")


def _admit_limits(where: str, limits: ProviderLimits, need: Requirements) -> None:
    if need.cpu > limits.max_cpu:
        raise TargetUnsupported(
            f"{where} does not allow cpu {need.cpu:g} (at most {limits.max_cpu:g}): {limits.cpu_reason}"
        )
    if need.memory_mb > limits.max_memory_mb:
        raise TargetUnsupported(
            f"{where} does not allow memory {need.memory_mb} MiB (at most {limits.max_memory_mb} MiB): "
            f"{limits.memory_reason}"
        )
    if need.timeout is not None and need.timeout > limits.max_timeout:
        raise TargetUnsupported(
            f"{where} does not allow timeout {need.timeout} s (at most {limits.max_timeout} s): {limits.timeout_reason}"
        )
