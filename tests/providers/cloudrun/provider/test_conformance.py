"""The shared provider conformance suite, run against the cloudrun provider on the GCP emulator (real containers)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mayfly.core.provider import ProviderContext
from mayfly.core.runner import BOOT
from mayfly.providers.cloudrun.gcs import GcsBlobStore
from mayfly.providers.cloudrun.provider import CloudRunProvider
from mayfly.testing import ProviderConformance

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="module")
def target(gcp_emulator: Any) -> Any:
    """One target (topics, subscriptions, bucket, key file) for the module's tests."""
    return gcp_emulator.new_target()


class TestCloudRunConformance(ProviderConformance):
    # Cloud Run jobs fetch payload, config and code through signed URLs: the runtime's boot script does it,
    # then runs the command string (what the runner launches on every cloud target).
    shell = (BOOT,)
    # Cloud Run's smallest job has 512 MiB: allocate beyond it.
    oom_memory_mb = 512
    oom_command = "dd if=/dev/zero of=/dev/null bs=1600M count=1"
    # Cloud Logging keeps lines: a last line without a newline gains one.
    line_logs = True

    @pytest.fixture
    def provider(self, target: Any, tmp_path: Path) -> Iterator[CloudRunProvider]:
        # The emulator has no Cloud Logging read quota: read as fast as the suite's 10,000 lines need.
        settings = target.model_copy(update={"status_poll_seconds": 0.3, "log_reads_per_second": 20.0})
        context = ProviderContext(
            blobs=GcsBlobStore.from_settings(settings),
            work_dir=tmp_path / "run",
            home_id=f"test-{uuid.uuid4().hex[:12]}",
            target="gcp-conformance",
        )
        provider = CloudRunProvider(settings, context)
        yield provider
        provider.close()

    @pytest.fixture
    def image(self, runtime_images: dict[str, str]) -> str:
        return runtime_images["shell"]
