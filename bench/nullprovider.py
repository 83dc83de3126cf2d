"""A provider that starts nothing: each "container" exits 0 at once (core throughput without Docker).

Registered only by the benchmarks (and their CI smoke test), never by Mayfly itself.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from mayfly.core import hookimpl
from mayfly.core.models import Attached, ContainerState, ContainerStatus, LaunchResult, LaunchSpec
from mayfly.core.plugins import ProviderRegistry
from mayfly.core.provider import Capability, Provider, ProviderContext, ProviderSettings


class NullProvider(Provider[ProviderSettings]):
    """Every launch "runs" for zero seconds and exits 0; state is kept in memory."""

    name = "null"
    capabilities = frozenset({Capability.CANCEL})

    def __init__(self, settings: ProviderSettings, context: ProviderContext) -> None:
        super().__init__(settings, context)
        # No lock: each dict operation below is atomic under the GIL. A lock held across a GIL
        # switch convoyed hundreds of attempt threads behind it (the bench measured the provider).
        self._started: dict[str, float] = {}

    def launch(self, spec: LaunchSpec) -> LaunchResult:
        now = time.time()
        existing = self._started.setdefault(spec.name, now) is not now
        return LaunchResult(handle=spec.name, existing=existing)

    def find(self, spec_name: str) -> LaunchResult | None:
        return LaunchResult(spec_name, existing=True) if spec_name in self._started else None

    def state(self, handle: str) -> ContainerState:
        started = self._started.get(handle)
        if started is None:
            return ContainerState(ContainerStatus.MISSING)
        return ContainerState(ContainerStatus.EXITED, exit_code=0, started_at=started, finished_at=started)

    def logs(self, handle: str, *, follow: bool = False) -> Iterator[bytes]:
        return iter(())

    def result(self, handle: str, max_bytes: int) -> bytes | None:
        return None

    def remove(self, handle: str) -> None:
        self._started.pop(handle, None)

    def cancel(self, handle: str, grace_seconds: float) -> None:
        return None

    def reattach(self) -> list[Attached]:
        return []


class NullPlugin:
    """The plugin object the benchmarks register."""

    __name__ = "bench-null"

    @hookimpl
    def mayfly_register_providers(self, registry: ProviderRegistry) -> None:
        registry.add(NullProvider)
