"""A container the platform ended (spot reclaim, never started) is an infrastructure failure, not the task's."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from mayfly.core.app import Mayfly
from mayfly.core.models import ContainerState, ContainerStatus, LaunchResult, LaunchSpec
from mayfly.core.provider import Provider, ProviderSettings
from mayfly.core.tasks import TaskOptions
from mayfly.testing.tasks import wait_ended


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


@pytest.fixture
def flaky(serve_provider: Callable[..., Mayfly]) -> Mayfly:
    return serve_provider(FlakyPlatform, ["spot", "never"])


def test_a_reclaimed_container_is_relaunched_on_the_infrastructure_budget(flaky: Mayfly) -> None:
    task = flaky.tasks.queue(flaky.project_id(), "spot", "{}", TaskOptions())
    done = wait_ended(flaky, task.id)
    assert (done.status, done.attempt, done.infra_failures, done.retried_by) == ("complete", 2, 1, None)


def test_a_container_that_can_never_start_fails_at_once(flaky: Mayfly) -> None:
    task = flaky.tasks.queue(flaky.project_id(), "never", "{}", TaskOptions())
    done = wait_ended(flaky, task.id)
    assert (done.status, done.reason, done.attempt) == ("error", "launch_failed", 1)
    assert done.msg == "image pull failed: image not found"
