"""Azure on this machine for Mayfly: the ARM emulator and Azurite, started and stopped together.

``with AzureEmulator() as azure:`` serves ARM for container groups (containers in
local Docker, :class:`~.server.ArmEmulator`) and Azurite (queues and blobs,
:mod:`.azurite`); ``azure.bootstrap_target(name)`` creates a target's queues and
blob container and returns its :class:`~mayfly.providers.aci.settings.AciSettings`.
Every endpoint it hands out is the one task containers reach too: Azurite listens
on the address containers use for this host (the Docker bridge's gateway, see
:mod:`mayfly.providers.emulation.network`), which is an address of this host as well.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from mayfly.providers.aci.emulator import azurite
from mayfly.providers.aci.emulator.bootstrap import bootstrap_target
from mayfly.providers.aci.emulator.containers import POLL_INTERVAL, STOP_TIMEOUT
from mayfly.providers.aci.emulator.server import DEFAULT_HOST, DEFAULT_PORT, ArmEmulator
from mayfly.providers.aci.settings import AciSettings
from mayfly.providers.emulation.network import ANY, is_local_address

log = logging.getLogger(__name__)

#: The subscription id of emulator targets (any id works on the emulator).
SUBSCRIPTION_ID = "00000000-0000-0000-0000-000000000000"
DEFAULT_LOCATION = "westeurope"
#: Azurite's own default ports.
BLOB_PORT = 10000
QUEUE_PORT = 10001


class AzureEmulator:
    """ARM (container groups in local Docker) + Azurite (queues, blobs)."""

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        blob_port: int = BLOB_PORT,
        queue_port: int = QUEUE_PORT,
        network: str = "bridge",
        container_host: str | None = None,
        location: str = DEFAULT_LOCATION,
        subscription_id: str = SUBSCRIPTION_ID,
        azurite_log: Path | None = None,
        poll_interval: float = POLL_INTERVAL,
        stop_timeout: int = STOP_TIMEOUT,
        docker_client: Any = None,
        arm: ArmEmulator | None = None,
    ) -> None:
        """``arm``: an ARM emulator already serving, to add Azurite to (it is left running on stop)."""
        self.host = host
        self.blob_port = blob_port
        self.queue_port = queue_port
        self.location = location
        self.subscription_id = subscription_id
        self.azurite_log = azurite_log
        self._own_arm = arm is None
        self.arm = arm or ArmEmulator(
            host,
            port,
            network=network,
            container_host=container_host,
            poll_interval=poll_interval,
            stop_timeout=stop_timeout,
            docker_client=docker_client,
        )
        self.storage: azurite.Azurite | None = None

    def __enter__(self) -> AzureEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> AzureEmulator:
        """Start ARM, then Azurite on the address containers reach (installing Azurite first if needed)."""
        if self._own_arm:
            self.arm.start()
        try:
            self.storage = azurite.start(
                host=self.storage_host, blob_port=self.blob_port, queue_port=self.queue_port, log=self.azurite_log
            )
        except BaseException:
            if self._own_arm:
                self.arm.stop()
            raise
        log.info("Azurite: blob %s, queue %s", self.storage.blob_endpoint, self.storage.queue_endpoint)
        return self

    def stop(self) -> None:
        """Stop Azurite and ARM; every container group's container is removed."""
        if self.storage is not None:
            self.storage.stop()
            self.storage = None
        if self._own_arm:
            self.arm.stop()

    @property
    def storage_host(self) -> str:
        """The address Azurite listens on: the containers' name of this host when it is a local address."""
        reach = self.arm.reachability
        if reach is None:
            raise RuntimeError("the emulator is not started")
        if self.host not in ANY and is_local_address(reach.container_host):
            return reach.container_host
        return self.host

    def _azurite(self) -> azurite.Azurite:
        if self.storage is None:
            raise RuntimeError("the emulator is not started")
        return self.storage

    def _for_containers(self, url: str) -> str:
        """``url`` with the host containers use (Azurite on 0.0.0.0 reports that address)."""
        reach = self.arm.reachability
        assert reach is not None
        for any_host in ("0.0.0.0", "127.0.0.1", "localhost"):
            url = url.replace(f"//{any_host}:", f"//{reach.container_host}:")
        return url

    @property
    def arm_endpoint(self) -> str:
        """ARM's base URL (on this host and in containers)."""
        return self.arm.endpoint_url

    @property
    def blob_endpoint(self) -> str:
        """Azurite's blob service URL with the account (``http://HOST:PORT/devstoreaccount1``)."""
        return self._for_containers(self._azurite().blob_endpoint)

    @property
    def queue_endpoint(self) -> str:
        """Azurite's queue service URL with the account."""
        return self._for_containers(self._azurite().queue_endpoint)

    @property
    def account_name(self) -> str:
        return self._azurite().account_name

    @property
    def account_key(self) -> str:
        """Azurite's well-known account key."""
        return self._azurite().account_key

    def bootstrap_target(self, name: str) -> AciSettings:
        """Create target ``name``'s queues and blob container; its settings (see :mod:`.bootstrap`)."""
        storage = self._azurite()
        return bootstrap_target(
            name,
            subscription_id=self.subscription_id,
            location=self.location,
            arm_endpoint=self.arm_endpoint,
            blob_endpoint=self.blob_endpoint,
            queue_endpoint=self.queue_endpoint,
            account_name=storage.account_name,
            account_key=storage.account_key,
            local_blob_endpoint=storage.blob_endpoint,
            local_queue_endpoint=storage.queue_endpoint,
        )
