"""The Google Cloud emulators, each started once per test session.

- ``pubsub_emulator``: the Google Cloud SDK's Pub/Sub emulator alone (the queue tests);
- ``gcp_emulator``: ``mayfly emulator gcp`` in this process (Cloud Run + Logging API on
  real Docker, Pub/Sub, Cloud Storage), for the provider, blob store and end-to-end tests.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from mayfly.core.errors import MissingDependency
from mayfly.providers.cloudrun.emulator import processes
from mayfly.providers.cloudrun.google import Clients

PROJECT = "mayfly-test"
REGION = "europe-west1"


@pytest.fixture(scope="session")
def pubsub_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``host:port`` of a running Pub/Sub emulator; skips when the SDK's emulator is not installed."""
    from mayfly.providers.emulation.serving import free_port

    port = free_port()
    try:
        child = processes.start_pubsub("127.0.0.1", port, tmp_path_factory.mktemp("pubsub-emulator") / "emulator.log")
    except MissingDependency as exc:
        pytest.skip(f"{exc} (CI machines have both)")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        child.stop()


@pytest.fixture
def pubsub_clients(pubsub_emulator: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Clients]:
    """Clients talking to the session's emulator (PUBSUB_EMULATOR_HOST is read when they are created)."""
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_emulator)
    clients = Clients()
    yield clients
    clients.close()


@dataclass
class GcpEmulatorHandle:
    """The session's GCP emulator: its endpoints, and fresh targets on it."""

    emulator: Any
    project: str = PROJECT
    region: str = REGION
    _names: Iterator[int] = field(default_factory=itertools.count)

    @property
    def endpoints(self) -> Any:
        """:class:`~mayfly.providers.cloudrun.emulator.Endpoints` (run, logging, storage, pubsub)."""
        return self.emulator.endpoints

    def new_target(self, name: str | None = None) -> Any:
        """A fresh target's ``CloudRunSettings``: its own topics, subscriptions, bucket and key file."""
        from mayfly.providers.cloudrun.settings import CloudRunSettings

        name = name or f"t{next(self._names)}-{uuid.uuid4().hex[:6]}"
        raw = self.emulator.bootstrap_target(name, project=self.project, region=self.region)
        return CloudRunSettings.model_validate(raw)

    def run_client(self, kind: str = "Jobs") -> Any:
        """A ``google.cloud.run_v2`` ``JobsClient`` / ``ExecutionsClient`` / ``TasksClient`` on the emulator."""
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import run_v2

        cls = getattr(run_v2, f"{kind}Client")
        return cls(
            transport="rest",
            client_options=ClientOptions(api_endpoint=self.endpoints.run),
            credentials=AnonymousCredentials(),
        )

    @property
    def parent(self) -> str:
        return f"projects/{self.project}/locations/{self.region}"


@pytest.fixture(scope="session")
def gcp_emulator(
    docker_client: Any, pubsub_emulator: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GcpEmulatorHandle]:
    # ``docker_client`` only makes sure an engine answers: the emulator opens its own, with a connection
    # pool sized for two log streams per running container. It shares the session's Pub/Sub emulator
    # (one JVM for the whole suite).
    """One ``GcpEmulator`` for the whole session; skips (one line) when Pub/Sub's or GCS's emulator is missing."""
    try:
        from mayfly.providers.cloudrun.emulator import GcpEmulator
    except ImportError as exc:
        pytest.skip(f"the GCP emulator's dependencies are missing ({exc})")
    emulator = GcpEmulator(
        port=0,
        pubsub_endpoint=pubsub_emulator,
        state_dir=tmp_path_factory.mktemp("gcp-emulator"),
        poll_interval=0.2,
        stop_grace=2,
    )
    try:
        emulator.start()
    except MissingDependency as exc:
        pytest.skip(f"{exc} (CI machines have it)")
    try:
        yield GcpEmulatorHandle(emulator)
    finally:
        emulator.stop()
