"""The shared provider conformance suite, run against the aci provider on the ARM emulator and Azurite."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mayfly.core.provider import ProviderContext
from mayfly.core.runner import BOOT
from mayfly.providers.aci.blobs import AzureBlobStore
from mayfly.providers.aci.provider import AciProvider
from mayfly.providers.aci.settings import AciSettings
from mayfly.testing import ProviderConformance

pytestmark = [pytest.mark.docker, pytest.mark.slow]


class TestAciConformance(ProviderConformance):
    # Container groups fetch payload, config and code through SAS URLs: the runtime's boot script
    # does it, then runs the command string (what the runner launches on every cloud target).
    shell = (BOOT,)
    # 64 MiB runs as ACI's 0.1 GB step (102 MiB): allocate well beyond it.
    oom_memory_mb = 64

    @pytest.fixture
    def provider(self, aci_target: AciSettings, tmp_path: Path) -> Iterator[AciProvider]:
        context = ProviderContext(
            blobs=AzureBlobStore.from_settings(aci_target),
            work_dir=tmp_path / "run",
            home_id=f"test-{uuid.uuid4().hex[:12]}",
            target="azure-conformance",
        )
        provider = AciProvider(aci_target, context)
        yield provider
        provider.close()

    @pytest.fixture
    def image(self, runtime_images: dict[str, str]) -> str:
        # Container groups get their files through the image's boot script (signed URLs): a runtime image.
        return runtime_images["shell"]
