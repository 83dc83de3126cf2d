"""Providers that start nothing: ``null``, whose "containers" exit 0 at once (core throughput without
Docker), and ``hold``, whose "containers" run until cancelled (a runner watching many containers).

Registered only by the benchmarks (and their CI smoke test), never by Mayfly itself.
"""

from __future__ import annotations

import threading
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


class HoldProvider(NullProvider):
    """Every launch "runs" until cancelled: its runner keeps watching it, as it watches a real container.

    A watch blocks in :meth:`wait` and its log follower in :meth:`logs`, as they would on an engine.
    """

    name = "hold"

    def __init__(self, settings: ProviderSettings, context: ProviderContext) -> None:
        super().__init__(settings, context)
        self._ended: dict[str, threading.Event] = {}

    def launch(self, spec: LaunchSpec) -> LaunchResult:
        result = super().launch(spec)
        self._ended.setdefault(spec.name, threading.Event())
        return result

    def state(self, handle: str) -> ContainerState:
        started = self._started.get(handle)
        if started is None:
            return ContainerState(ContainerStatus.MISSING)
        if self._ended[handle].is_set():
            return ContainerState(ContainerStatus.EXITED, exit_code=143, started_at=started, finished_at=time.time())
        return ContainerState(ContainerStatus.RUNNING, started_at=started)

    def wait(self, handle: str, timeout: float) -> ContainerState:
        ended = self._ended.get(handle)
        if ended is not None:
            ended.wait(timeout)
        return self.state(handle)

    def logs(self, handle: str, *, follow: bool = False) -> Iterator[bytes]:
        ended = self._ended.get(handle)
        if follow and ended is not None:
            ended.wait()
        return iter(())

    def cancel(self, handle: str, grace_seconds: float) -> None:
        ended = self._ended.get(handle)
        if ended is not None:
            ended.set()

    def remove(self, handle: str) -> None:
        super().remove(handle)
        self._ended.pop(handle, None)


class NullPlugin:
    """The plugin object the benchmarks register."""

    __name__ = "bench-null"

    @hookimpl
    def mayfly_register_providers(self, registry: ProviderRegistry) -> None:
        registry.add(NullProvider)
        registry.add(HoldProvider)
