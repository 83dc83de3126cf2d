"""How the runner watches a running container: its thread follows the log, the runner's one timer keeps the clock.

The platform here keeps each "container" running until it is stopped, like a ``sleep``
on an engine, and writes one line first. Containers of code ``broken`` have a log stream
that breaks off after that line (an engine hiccup): the watch must fall back to waiting
on the container, and the timeout must still stop it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from mayfly.core.app import Mayfly
from mayfly.core.errors import Unavailable
from mayfly.core.models import ContainerState, ContainerStatus, LaunchResult, LaunchSpec
from mayfly.core.provider import Capability, Provider, ProviderSettings
from mayfly.core.tasks import TaskOptions
from mayfly.testing.tasks import wait_ended

LINE = b"started\n"


class RunsUntilStopped(Provider[ProviderSettings]):
    """Every container runs until cancelled (then exits 143); its log is one line."""

    name = "until-stopped"
    capabilities = frozenset({Capability.CANCEL, Capability.LOG_STREAMING})

    def __init__(self, settings: ProviderSettings, context: object) -> None:
        super().__init__(settings, context)  # type: ignore[arg-type]
        self.ended: dict[str, threading.Event] = {}
        self.started: dict[str, float] = {}

    def launch(self, spec: LaunchSpec) -> LaunchResult:
        handle = f"{spec.name}|{spec.env['MAYFLY_CODE_NAME']}"
        existing = handle in self.ended
        self.ended.setdefault(handle, threading.Event())
        self.started.setdefault(handle, time.time())
        return LaunchResult(handle=handle, existing=existing)

    def state(self, handle: str) -> ContainerState:
        if handle not in self.ended:
            return ContainerState(ContainerStatus.MISSING)
        if self.ended[handle].is_set():
            return ContainerState(ContainerStatus.EXITED, exit_code=143, started_at=self.started[handle])
        return ContainerState(ContainerStatus.RUNNING, started_at=self.started[handle])

    def wait(self, handle: str, timeout: float) -> ContainerState:
        ended = self.ended.get(handle)
        if ended is not None:
            ended.wait(timeout)
        return self.state(handle)

    def logs(self, handle: str, *, follow: bool = False) -> Iterator[bytes]:
        yield LINE
        if not follow:
            return
        if handle.endswith("|broken"):
            raise Unavailable("the log stream broke off")
        self.ended[handle].wait()  # a quiet container: the stream ends when it exits

    def cancel(self, handle: str, grace_seconds: float) -> None:
        self.ended[handle].set()

    def result(self, handle: str, max_bytes: int) -> bytes | None:
        return None

    def remove(self, handle: str) -> None:
        self.ended.pop(handle, None)


@pytest.fixture
def platform(serve_provider: Callable[..., Mayfly]) -> Mayfly:
    return serve_provider(RunsUntilStopped, ["quiet", "broken"], capacity=50)


@pytest.mark.parametrize("code", ["quiet", "broken"])
def test_a_container_that_overruns_is_stopped_and_its_log_kept(platform: Mayfly, code: str) -> None:
    """``quiet``: the timer stops it while the log is followed; ``broken``: the waiting loop does."""
    task = platform.tasks.queue(platform.project_id(), code, "{}", TaskOptions(timeout=1))
    done = wait_ended(platform, task.id)
    assert (done.status, done.reason, done.exit_code) == ("timeout", "timeout", 143)
    assert b"".join(platform.tasks.log(platform.project_id(), task.id)) == LINE


def test_each_watched_container_holds_one_thread(platform: Mayfly) -> None:
    """Twenty running containers: twenty attempt threads, the timer, and no log follower beside each."""
    before = threading.active_count()
    pid = platform.project_id()
    ids = [platform.tasks.queue(pid, "quiet", "{}", TaskOptions(timeout=600)).id for _ in range(20)]
    deadline = time.monotonic() + 30
    while platform.tasks.count_by_status(pid).get("running", 0) < 20:
        assert time.monotonic() < deadline, "the tasks did not all start"
        time.sleep(0.05)
    grown = threading.active_count() - before
    assert 20 <= grown <= 20 + 3, f"{grown} threads for 20 containers"
    for task_id in ids:
        platform.tasks.cancel(pid, task_id)
    for task_id in ids:
        assert wait_ended(platform, task_id).status == "cancelled"
