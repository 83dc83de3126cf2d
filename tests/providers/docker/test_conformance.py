"""The shared provider conformance suite, run against the Docker provider with both file placements."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mayfly.providers.docker import DockerProvider
from mayfly.testing import ProviderConformance

pytestmark = pytest.mark.docker


class TestDockerConformance(ProviderConformance):
    @pytest.fixture(params=["bind", "archive"])
    def provider(self, request: pytest.FixtureRequest, make_provider: Callable[..., DockerProvider]) -> DockerProvider:
        return make_provider(placement=request.param)

    @pytest.fixture
    def image(self, busybox_image: str) -> str:
        return busybox_image
