"""Azure errors leave providers/aci as Mayfly errors: no credentials, denied, not found, SDK missing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mayfly.core.errors import AccessDenied, CredentialsMissing, MissingDependency, NotFound
from mayfly.providers.aci.settings import AciSettings
from mayfly.providers.aci.transport import create_storage, storage_transport


@pytest.mark.parametrize("runner_client_id", [None, "00000000-0000-0000-0000-00000000c1d0"])
def test_no_credentials_is_credentials_missing_at_once(
    runner_client_id: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Workload identity configured with a token file that does not exist: the credential fails
    # locally, before any network call, so nothing probes a metadata server.
    for name in ("AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_USERNAME", "IDENTITY_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_TENANT_ID", "00000000-0000-0000-0000-00000000a001")
    monkeypatch.setenv("AZURE_CLIENT_ID", runner_client_id or "00000000-0000-0000-0000-00000000a002")
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(tmp_path / "no-token"))
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", "https://127.0.0.1:9")
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))  # no az, azd or pwsh to ask
    settings = AciSettings(
        subscription_id="s",
        resource_group="rg",
        location="westeurope",
        storage_account="mayflytest",
        queue_prefix="mayfly",
        container="mayfly",
        runner_client_id=runner_client_id,
        queue_endpoint="https://127.0.0.1:9/mayflytest",
        blob_endpoint="https://127.0.0.1:9/mayflytest",
    )
    transport = storage_transport(settings)
    with pytest.raises(CredentialsMissing) as caught:
        transport.queues.get("tasks").depth()
    assert caught.value.code == "credentials_missing"
    assert "counting the messages of Azure queue mayfly-tasks: no usable Azure credentials" in caught.value.message
    with pytest.raises(CredentialsMissing):
        transport.blobs.put("codes/x", b"x")
    transport.queues.close()


def test_a_wrong_account_key_is_access_denied(azure_settings: AciSettings) -> None:
    create_storage(azure_settings)
    wrong = azure_settings.model_copy(update={"account_key": "d3Jvbmcga2V5" * 4})
    transport = storage_transport(wrong)
    with pytest.raises(AccessDenied) as caught:
        transport.queues.get("events").receive(1)
    assert caught.value.code == "access_denied"
    assert "403" in caught.value.message
    with pytest.raises(AccessDenied):
        transport.blobs.get("codes/x")
    transport.queues.close()


def test_a_queue_the_stack_did_not_create_is_not_found(azure_settings: AciSettings) -> None:
    transport = storage_transport(azure_settings)
    with pytest.raises(NotFound, match="QueueNotFound"):
        transport.queues.get("tasks").send("{}")
    transport.queues.close()


def test_without_the_azure_sdk_one_line_says_what_to_install() -> None:
    script = """
import sys
for name in ("azure.storage.queue", "azure.storage.blob", "azure.identity"):
    sys.modules[name] = None  # as if not installed
from mayfly.core.errors import MissingDependency
from mayfly.providers.aci.settings import AciSettings
from mayfly.providers.aci.transport import storage_transport
settings = AciSettings(subscription_id="s", resource_group="rg", location="l", storage_account="a",
                       queue_prefix="mayfly", container="c", account_key="a2V5")
try:
    storage_transport(settings).queues.get("tasks").depth()
except MissingDependency as exc:
    print(exc.code, exc.message)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert proc.stdout.strip() == (
        "missing_dependency Azure support needs azure-storage-queue, azure-storage-blob and azure-identity: "
        'pip install "mayfly-tasks[azure]"'
    )
    assert MissingDependency.code == "missing_dependency"
