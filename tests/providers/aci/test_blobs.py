"""The Azure Blob store on Azurite: the blob conformance suite, and SAS URLs that Azurite checks (403)."""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

from mayfly.core.blobs import BlobStore
from mayfly.core.errors import InvalidInput, NotFound
from mayfly.providers.aci.azure import StorageClients
from mayfly.providers.aci.blobs import AzureBlobStore
from mayfly.providers.aci.settings import AciSettings
from mayfly.testing import BlobStoreConformance
from mayfly.testing.blobs import plain_http

# Each test talks to Azurite (started once per session); some wait out leases or expiries.
pytestmark = pytest.mark.slow


@pytest.fixture
def azure_store(azure_settings: AciSettings) -> Iterator[AzureBlobStore]:
    store = AzureBlobStore.from_settings(azure_settings)
    store.create_container()
    yield store
    store.clients.blob_service.delete_container(azure_settings.container)
    store.clients.close()


class TestAzureBlobConformance(BlobStoreConformance):
    @pytest.fixture
    def store(self, azure_store: AzureBlobStore) -> AzureBlobStore:
        return azure_store


def test_a_tampered_sas_is_refused_with_403(azure_store: AzureBlobStore) -> None:
    azure_store.put("codes/secret", b"only for the signer")
    url = azure_store.url_for("codes/secret", method="GET", expires=300)
    assert plain_http("GET", url)[:2] == (0, b"only for the signer")
    # Widen the permissions the signature covered: read -> read+write+delete.
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qs(parts.query)
    assert query["sp"] == ["r"]
    query["sp"] = ["rwd"]
    tampered = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query, doseq=True)))
    assert plain_http("GET", tampered) == (3, b"", "403")
    # A read URL does not write, and a write URL of one key does not write another.
    assert plain_http("PUT", url, b"x", azure_store.upload_headers)[0::2] == (3, "403")
    put_url = azure_store.url_for("results/t1/1/result.json", method="PUT", expires=300)
    other = put_url.replace("results/t1/1/result.json", "codes/secret")
    assert plain_http("PUT", other, b"overwritten", azure_store.upload_headers)[0::2] == (3, "403")
    assert azure_store.get("codes/secret") == b"only for the signer"


def test_an_expired_sas_is_refused_with_403(azure_store: AzureBlobStore) -> None:
    azure_store.put("codes/short", b"soon gone")
    url = azure_store.url_for("codes/short", method="GET", expires=1)
    time.sleep(2.5)
    assert plain_http("GET", url) == (3, b"", "403")


def test_a_sas_put_needs_the_blob_type_header(azure_store: AzureBlobStore) -> None:
    url = azure_store.url_for("results/t2/1/result.json", method="PUT", expires=300)
    rc, _, error = plain_http("PUT", url, b"{}")
    assert (rc, error) == (3, "400"), "Azure refuses a PUT without x-ms-blob-type"
    assert dict(azure_store.upload_headers) == {"x-ms-blob-type": "BlockBlob"}
    assert plain_http("PUT", url, b"{}", azure_store.upload_headers)[0] == 0
    assert azure_store.get("results/t2/1/result.json") == b"{}"


def test_bad_url_requests_are_refused(azure_store: AzureBlobStore) -> None:
    with pytest.raises(InvalidInput):
        azure_store.url_for("codes/x", method="DELETE")
    with pytest.raises(InvalidInput):
        azure_store.url_for("codes/x", expires=8 * 24 * 3600)


def test_a_missing_container_is_not_found(azure_settings: AciSettings) -> None:
    store = AzureBlobStore(StorageClients(azure_settings), "absent-container")
    with pytest.raises(NotFound):
        store.exists("codes/x")
    with pytest.raises(NotFound):
        store.put("codes/x", b"x")


@pytest.fixture
def delegated_store(entra_settings: AciSettings, entra_credential: Any) -> Iterator[AzureBlobStore]:
    """The store as a runner in Azure has it: an Entra identity, no account key, user-delegation SAS."""
    assert entra_settings.account_key is None
    store = AzureBlobStore(StorageClients(entra_settings, credential=entra_credential), entra_settings.container)
    store.create_container()
    yield store
    store.clients.blob_service.delete_container(entra_settings.container)
    store.clients.close()


# Azurite 3.35 verifies user-delegation SAS of service versions up to 2025-11-05; azure-storage-blob 12.31
# signs them as 2026-10-06, whose string-to-sign has two more lines (signed request headers and query
# parameters), so Azurite refuses every one with 403 while Azure accepts them. What Azurite can check
# is done below: the key, its fields and the permissions, re-signed in the 2025 layout.
AZURITE_UDK_GAP = (
    "Azurite 3.35 cannot verify user-delegation SAS signed as version 2026-10-06 (azure-storage-blob 12.31)"
)


class TestAzureBlobConformanceWithUserDelegation(BlobStoreConformance):
    @pytest.fixture
    def store(self, delegated_store: AzureBlobStore) -> AzureBlobStore:
        return delegated_store

    @pytest.mark.xfail(reason=AZURITE_UDK_GAP, strict=True)
    def test_signed_get_and_put_urls_work_with_plain_http(self, store: BlobStore) -> None:
        super().test_signed_get_and_put_urls_work_with_plain_http(store)

    def test_a_signed_url_expires(self, store: BlobStore) -> None:
        pytest.skip(f"{AZURITE_UDK_GAP}: an expired URL and a refused signature both answer 403 there")


def _resigned_for_azurite(url: str, key: Any, settings: AciSettings, blob: str) -> str:
    """``url`` re-signed in the 2025-07-05 layout Azurite 3.35 knows; asserts the rest is the SDK's own SAS."""
    from azure.storage.blob import generate_blob_sas
    from azure.storage.blob._shared import sign_string

    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query))
    seen: list[str] = []
    sas = generate_blob_sas(
        settings.storage_account,
        settings.container,
        blob,
        user_delegation_key=key,
        permission=query["sp"],
        start=query["st"],
        expiry=query["se"],
        protocol=query["spr"],
        sts_hook=seen.append,
    )
    assert dict(urllib.parse.parse_qsl(sas)) == query, "the URL is the SDK's SAS for these inputs"
    lines = seen[0].split("\n")
    assert lines[21:23] == ["", ""], "the 2026 layout's signed request headers and query parameters (none)"
    query["sig"] = sign_string(key.value, "\n".join(lines[:21] + lines[23:]))
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def test_user_delegation_sas_urls_carry_the_identity_s_key(
    delegated_store: AzureBlobStore, entra_credential: Any, entra_settings: AciSettings
) -> None:
    delegated_store.put("codes/secret", b"delegated")
    url = delegated_store.url_for("codes/secret", method="GET", expires=300)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert query["skoid"] == [entra_credential.object_id], "signed with the identity's user delegation key"
    assert (query["sp"], query["spr"], query["sr"]) == (["r"], ["https"], ["b"])
    key = delegated_store._delegation_key
    resigned = _resigned_for_azurite(url, key, entra_settings, "codes/secret")
    assert plain_http("GET", resigned)[:2] == (0, b"delegated"), "Azurite accepts the key, fields and permissions"
    assert plain_http("GET", resigned.replace("sp=r", "sp=rw")) == (3, b"", "403")
    put = delegated_store.url_for("results/t1/1/result.json", method="PUT", expires=600)
    assert delegated_store._delegation_key is key, "the key is fetched once and reused while it outlives the URLs"
    put_resigned = _resigned_for_azurite(put, key, entra_settings, "results/t1/1/result.json")
    assert plain_http("PUT", put_resigned, b"{}", delegated_store.upload_headers)[0] == 0
    assert delegated_store.get("results/t1/1/result.json") == b"{}"
