"""Fixtures of the aci provider's tests: Azurite, the local ARM emulator and both together, once per session.

``azurite``: Azurite alone on loopback, ``azure_settings`` on it (queue and blob
tests), ``azurite_oauth`` / ``entra_settings`` for user-delegation SAS. ``arm_emulator`` /
``aci_client``: the ARM endpoint for container groups, whose containers run in
the real Docker engine, and the real management client on it. ``azure_emulator``:
that ARM plus an Azurite that task containers reach, with a factory of
:class:`~mayfly.providers.aci.settings.AciSettings` for a fresh target (its own
resource group, queues and blob container).
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

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


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files in ``folder``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


@dataclass(frozen=True)
class AzuriteTls:
    """An Azurite serving HTTPS and accepting Entra tokens, and the certificate to trust."""

    azurite: azurite_launcher.Azurite
    ca_file: Path


@pytest.fixture(scope="session")
def azurite_oauth(azurite: azurite_launcher.Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzuriteTls]:
    """A second Azurite over HTTPS with OAuth: what a runner's identity meets in Azure (user delegation SAS)."""
    folder = tmp_path_factory.mktemp("azurite-tls")
    tls = _self_signed(folder)
    try:
        running = azurite_launcher.start(log=folder / "azurite.log", memory_limit_mb=256, tls=tls, oauth=True)
    except MayflyError as exc:
        pytest.fail(f"Azurite with HTTPS and OAuth did not start: {exc}")
    try:
        yield AzuriteTls(running, tls[0])
    finally:
        running.stop()


class EntraToken:
    """A token credential issuing what Microsoft Entra would for a managed identity (unsigned: Azurite's
    ``--oauth basic`` checks audience, issuer and lifetime only)."""

    tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
    object_id = "5f6b7e8a-0000-4000-8000-00000000a1c1"

    def _token(self) -> AccessToken:
        now = int(time.time())
        claims = {
            "aud": "https://storage.azure.com",
            "iss": f"https://sts.windows.net/{self.tenant}/",
            "iat": now - 60,
            "nbf": now - 60,
            "exp": now + 3600,
            "oid": self.object_id,
            "tid": self.tenant,
        }

        def part(value: dict[str, object]) -> str:
            return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

        return AccessToken(f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}.", now + 3600)

    def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        return self._token()

    def close(self) -> None:
        pass


@pytest.fixture
def entra_credential() -> EntraToken:
    """The runner's identity as a token credential (what ManagedIdentityCredential is in Azure)."""
    return EntraToken()


@pytest.fixture
def entra_settings(azurite_oauth: AzuriteTls, monkeypatch: pytest.MonkeyPatch) -> AciSettings:
    """Settings of a target as in Azure (no account key) on the HTTPS Azurite, its certificate trusted."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(azurite_oauth.ca_file))  # the SDK (requests)
    monkeypatch.setenv("SSL_CERT_FILE", str(azurite_oauth.ca_file))  # plain urllib, as the boot script
    unique = uuid.uuid4().hex[:12]
    return AciSettings(
        subscription_id="00000000-0000-0000-0000-000000000000",
        resource_group="mayfly-test",
        location="westeurope",
        storage_account=azurite_oauth.azurite.account_name,
        blob_endpoint=azurite_oauth.azurite.blob_endpoint,
        queue_endpoint=azurite_oauth.azurite.queue_endpoint,
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
