"""Fixtures of the aci provider's tests: the local ARM emulator and Azurite, once per test session.

``arm_emulator``: the ARM endpoint for container groups, whose containers run in the
real Docker engine. ``azurite``: Azurite (the Azure Storage emulator from npm).
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from mayfly.core.errors import MayflyError
from mayfly.providers.aci.emulator import ArmEmulator
from mayfly.providers.aci.emulator import azurite as azurite_launcher
from mayfly.providers.aci.emulator.containers import LABEL
from mayfly.providers.aci.settings import AciSettings

#: The subscription of the emulator's tests (any id works on the emulator).
SUBSCRIPTION = "00000000-0000-0000-0000-00000000a0c1"


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[azurite_launcher.Azurite]:
    """A running Azurite (blob and queue on free ports); skips when Node.js/npm or the package is absent.

    ``scripts/bootstrap --test`` installs ``azurite@3.35.0`` into the checkout's ``.cache/azurite``,
    so CI starts it without network; elsewhere the first session installs it (npm, about a minute).
    """
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip(azurite_launcher.NODE_HINT)
    log = tmp_path_factory.mktemp("azurite") / "azurite.log"
    try:
        azurite_launcher.ensure_installed()
    except MayflyError as exc:
        pytest.skip(f"Azurite is not installed and npm could not install it: {exc}")
    try:
        running = azurite_launcher.start(log=log, memory_limit_mb=512)
    except MayflyError as exc:
        pytest.fail(f"Azurite is installed but did not start: {exc}")
    try:
        yield running
    finally:
        running.stop()


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


@pytest.fixture
def azure_settings(azurite: azurite_launcher.Azurite) -> AciSettings:
    """Settings of an ``aci`` target whose storage is the session's Azurite, with fresh queue and container names."""
    unique = uuid.uuid4().hex[:12]
    return AciSettings(
        subscription_id="00000000-0000-0000-0000-000000000000",
        resource_group="mayfly-test",
        location="westeurope",
        storage_account=azurite.account_name,
        account_key=azurite.account_key,
        blob_endpoint=azurite.blob_endpoint,
        queue_endpoint=azurite.queue_endpoint,
        queue_prefix=f"t{unique}",
        container=f"c{unique}",
    )


@pytest.fixture(scope="session")
def azure_for_containers(arm_emulator: ArmEmulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Azurite where task containers reach it too (the Docker bridge's gateway), for the provider's tests.

    Signed URLs name the blob endpoint, and the boot script in a task container fetches them: the
    endpoint must work on this host and inside containers, as the ARM emulator's does.
    """
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip(azurite_launcher.NODE_HINT)
    assert arm_emulator.reachability is not None
    host = arm_emulator.reachability.container_host
    try:
        azurite_launcher.ensure_installed()
    except MayflyError as exc:
        pytest.skip(f"Azurite is not installed and npm could not install it: {exc}")
    running = azurite_launcher.start(
        host=host, log=tmp_path_factory.mktemp("azurite-tasks") / "azurite.log", memory_limit_mb=512
    )
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def aci_target(arm_emulator: ArmEmulator, azure_for_containers: Any) -> AciSettings:
    """Settings of a fresh ``aci`` target on the emulators: its own resource group, queues and blob container."""
    from mayfly.providers.aci.transport import create_storage

    unique = uuid.uuid4().hex[:12]
    settings = AciSettings(
        subscription_id=SUBSCRIPTION,
        resource_group=f"mayfly-{unique}",
        location="westeurope",
        storage_account=azure_for_containers.account_name,
        account_key=azure_for_containers.account_key,
        blob_endpoint=azure_for_containers.blob_endpoint,
        queue_endpoint=azure_for_containers.queue_endpoint,
        queue_prefix=f"t{unique}",
        container=f"c{unique}",
        arm_endpoint=arm_emulator.local_url,
        status_poll_seconds=0.3,
        creates_per_second=50,
        create_burst=50,
    )
    create_storage(settings)
    return settings
