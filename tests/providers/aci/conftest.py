"""Fixtures of the aci provider's tests: the local ARM emulator (and Azurite), once per test session.

``arm_emulator``: the ARM endpoint for container groups, whose containers run in the
real Docker engine. ``azure_emulator``: that plus Azurite, with a factory of
:class:`~mayfly.providers.aci.settings.AciSettings` for a fresh target (its own
resource group, queues and blob container).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from mayfly.providers.aci.emulator import ArmEmulator
from mayfly.providers.aci.emulator.containers import LABEL

#: The subscription of the emulator's tests (any id works on the emulator).
SUBSCRIPTION = "00000000-0000-0000-0000-00000000a0c1"


@pytest.fixture(scope="session")
def arm_emulator(docker_client: Any) -> Iterator[ArmEmulator]:
    """The ARM emulator on a free port (poller and stop grace shorter than the defaults, to keep tests short)."""
    with ArmEmulator("127.0.0.1", 0, poll_interval=0.2, stop_timeout=2) as arm:
        yield arm
        instance = arm.instance
    left = docker_client.containers.list(all=True, filters={"label": f"{LABEL}={instance}"})
    assert left == [], f"containers left behind: {[c.name for c in left]}"


@pytest.fixture(scope="session")
def aci_client(arm_emulator: ArmEmulator) -> Any:
    """The real ``ContainerInstanceManagementClient`` on the emulator (subscription :data:`SUBSCRIPTION`)."""
    from mayfly.providers.aci.emulator.clients import management_client

    return management_client(arm_emulator.local_url, SUBSCRIPTION)
