"""The shared provider conformance suite, run against the ecs provider on the AWS emulator (real containers)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mayfly.core.provider import ProviderContext
from mayfly.core.runner import BOOT
from mayfly.providers.ecs.provider import EcsProvider
from mayfly.providers.ecs.s3 import S3BlobStore
from mayfly.providers.ecs.settings import EcsSettings
from mayfly.testing import ProviderConformance

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.usefixtures("fake_aws_env")]


class TestEcsConformance(ProviderConformance):
    # Fargate tasks fetch payload, config and code through signed URLs: the runtime's boot script
    # does it, then runs the command string (what the runner launches on every cloud target).
    shell = (BOOT,)
    # The suite's tasks ask for 0.5 vCPU, whose smallest Fargate size is 1 GiB: allocate beyond it.
    oom_memory_mb = 512
    oom_command = "dd if=/dev/zero of=/dev/null bs=1600M count=1"
    # awslogs sends lines to CloudWatch Logs: a last line without a newline gains one.
    line_logs = True

    @pytest.fixture
    def provider(self, target: dict[str, Any], tmp_path: Path) -> Iterator[EcsProvider]:
        settings = EcsSettings(**{**target, "stop_timeout": 2, "status_poll_seconds": 0.3})
        context = ProviderContext(
            blobs=S3BlobStore.from_settings(settings),
            work_dir=tmp_path / "run",
            home_id=f"test-{uuid.uuid4().hex[:12]}",
            target="aws-conformance",
        )
        provider = EcsProvider(settings, context)
        yield provider
        provider.close()

    @pytest.fixture
    def image(self, runtime_images: dict[str, str]) -> str:
        # ECS tasks get their files through the image's boot script (signed URLs): a runtime image.
        return runtime_images["shell"]
