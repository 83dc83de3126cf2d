"""A container the platform ended (spot reclaim, never started) is an infrastructure failure, not the task's."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mayfly.core import hookimpl
from mayfly.core.app import Mayfly
from mayfly.core.codes import CodeOptions
from mayfly.core.config import Home
from mayfly.core.models import ContainerState, ContainerStatus, LaunchResult, LaunchSpec
from mayfly.core.plugins import ProviderRegistry, build_plugins
from mayfly.core.provider import Provider, ProviderSettings
from mayfly.core.serving import Serving
from mayfly.core.tasks import TaskOptions


class FlakyPlatform(Provider[ProviderSettings]):
    """Attempt 1 is reclaimed by the platform; later attempts exit 0. Code "never" never starts at all."""

    name = "flaky"

    def launch(self, spec: LaunchSpec) -> LaunchResult:
        return LaunchResult(handle=f"{spec.name}|{spec.attempt}|{spec.env.get('MAYFLY_CODE_NAME')}")

    def state(self, handle: str) -> ContainerState:
        _, attempt, code = handle.split("|")
        if code == "never":
            return ContainerState(ContainerStatus.EXITED, detail="image pull failed: image not found", infra="fail")
        if attempt == "1":
            return ContainerState(
                ContainerStatus.EXITED, exit_code=143, detail="spot capacity reclaimed", infra="retry"
            )
        return ContainerState(ContainerStatus.EXITED, exit_code=0)

    def logs(self, handle: str, *, follow: bool = False) -> Iterator[bytes]:
        return iter(())

    def result(self, handle: str, max_bytes: int) -> bytes | None:
        return None

    def remove(self, handle: str) -> None:
        return None


class Plugin:
    __name__ = "flaky-plugin"

    @hookimpl
    def mayfly_register_providers(self, registry: ProviderRegistry) -> None:
        registry.add(FlakyPlatform)


@pytest.fixture
def flaky(home: Path) -> Iterator[Mayfly]:
    mf = Mayfly(Home(home), lambda n: None, plugins=build_plugins((Plugin(),)))  # type: ignore[arg-type,return-value]
    mf.targets.add("flaky", "flaky", {})
    pid = mf.project_id()
    for name in ("spot", "never"):
        mf.codes.register(pid, name, "img", CodeOptions(command="true", target="flaky", retries=0))
    serving = Serving(mf, ["flaky"])
    serving.start()
    yield mf
    serving.stop()
    mf.close()


def _wait(mf: Mayfly, task_id: str) -> object:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        task = mf.tasks.get(mf.project_id(), task_id)
        if task.task_status.terminal:
            return task
        time.sleep(0.05)
    raise AssertionError("task did not end")


def test_a_reclaimed_container_is_relaunched_on_the_infrastructure_budget(flaky: Mayfly) -> None:
    task = flaky.tasks.queue(flaky.project_id(), "spot", "{}", TaskOptions())
    done = _wait(flaky, task.id)
    assert (done.status, done.attempt, done.infra_failures, done.retried_by) == ("complete", 2, 1, None)  # type: ignore[attr-defined]


def test_a_container_that_can_never_start_fails_at_once(flaky: Mayfly) -> None:
    task = flaky.tasks.queue(flaky.project_id(), "never", "{}", TaskOptions())
    done = _wait(flaky, task.id)
    assert (done.status, done.reason, done.attempt) == ("error", "launch_failed", 1)  # type: ignore[attr-defined]
    assert done.msg == "image pull failed: image not found"  # type: ignore[attr-defined]
