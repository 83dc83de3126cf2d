"""Fixtures of the aci provider's tests: Azurite, the local ARM emulator and both together, once per session.

``azurite``: Azurite alone on loopback, and ``azure_settings`` on it (queue and blob
tests). ``arm_emulator`` /
``aci_client``: the ARM endpoint for container groups, whose containers run in
the real Docker engine, and the real management client on it. ``azure_emulator``:
that ARM plus an Azurite that task containers reach, with a factory of
:class:`~mayfly.providers.aci.settings.AciSettings` for a fresh target (its own
resource group, queues and blob container).
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from mayfly.core.errors import MayflyError
from mayfly.providers.aci.emulator import ArmEmulator
from mayfly.providers.aci.emulator import azurite as azurite_launcher
from mayfly.providers.aci.emulator.containers import LABEL
from mayfly.providers.aci.emulator.local import AzureEmulator
from mayfly.providers.aci.settings import AciSettings

#: The subscription of the emulator's tests (any id works on the emulator).
SUBSCRIPTION = "00000000-0000-0000-0000-00000000a0c1"


def _azurite_or_skip() -> None:
    """Skip (one clear reason) when Node.js/npm or the Azurite package is absent."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip(azurite_launcher.NODE_HINT)
    try:
        azurite_launcher.ensure_installed()
    except MayflyError as exc:
        pytest.skip(f"Azurite is not installed and npm could not install it: {exc}")


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
def arm_emulator(docker_client: Any) -> Iterator[ArmEmulator]:
    """The ARM emulator on a free port (poller, stop grace and restart back-off shorter than the defaults)."""
    with ArmEmulator("127.0.0.1", 0, poll_interval=0.2, stop_timeout=2, restart_backoff=0.5) as arm:
        yield arm
        instance = arm.instance
    left = docker_client.containers.list(all=True, filters={"label": f"{LABEL}={instance}"})
    assert left == [], f"containers left behind: {[c.name for c in left]}"


@pytest.fixture(scope="session")
def aci_client(arm_emulator: ArmEmulator) -> Any:
    """The real ``ContainerInstanceManagementClient`` on the emulator (subscription :data:`SUBSCRIPTION`)."""
    from mayfly.providers.aci.emulator.clients import management_client

    return management_client(arm_emulator.local_url, SUBSCRIPTION)


@dataclass
class AzureTestEmulator:
    """The session's local Azure: endpoints (reachable from task containers too) and fresh targets."""

    emulator: AzureEmulator

    @property
    def arm_endpoint(self) -> str:
        return self.emulator.arm_endpoint

    @property
    def blob_endpoint(self) -> str:
        return self.emulator.blob_endpoint

    @property
    def queue_endpoint(self) -> str:
        return self.emulator.queue_endpoint

    @property
    def account_name(self) -> str:
        return self.emulator.account_name

    @property
    def account_key(self) -> str:
        return self.emulator.account_key

    def settings(self, **overrides: Any) -> AciSettings:
        """Settings of a fresh target: its own resource group, queues and blob container (``overrides`` applied)."""
        settings = self.emulator.bootstrap_target(f"t-{uuid.uuid4().hex[:10]}")
        return settings.model_copy(update=overrides) if overrides else settings

    def management_client(self, settings: AciSettings | None = None) -> Any:
        """The real ``ContainerInstanceManagementClient`` on the emulator (a target's subscription)."""
        from mayfly.providers.aci.emulator.clients import management_client

        return management_client(self.arm_endpoint, settings.subscription_id if settings else SUBSCRIPTION)


@pytest.fixture(scope="session")
def azure_emulator(arm_emulator: ArmEmulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzureTestEmulator]:
    """ARM (the session's ``arm_emulator``) + an Azurite task containers reach; ``.settings()`` makes a target."""
    _azurite_or_skip()
    log = tmp_path_factory.mktemp("azure-emulator") / "azurite.log"
    emulator = AzureEmulator(blob_port=0, queue_port=0, azurite_log=log, arm=arm_emulator)
    try:
        emulator.start()
    except MayflyError as exc:
        pytest.fail(f"Azurite is installed but did not start: {exc}")
    try:
        yield AzureTestEmulator(emulator)
    finally:
        emulator.stop()


@pytest.fixture
def aci_target(azure_emulator: AzureTestEmulator) -> AciSettings:
    """A fresh ``aci`` target on the session's emulators, polled often and never held back by the create bucket."""
    return azure_emulator.settings(status_poll_seconds=0.3, creates_per_second=50, create_burst=50)
