"""The Azure Blob store on Azurite: the blob conformance suite, and SAS URLs that Azurite checks (403)."""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Iterator

import pytest

from mayfly.core.errors import InvalidInput, NotFound
from mayfly.providers.aci.azure import StorageClients
from mayfly.providers.aci.blobs import AzureBlobStore
from mayfly.providers.aci.settings import AciSettings
from mayfly.testing import BlobStoreConformance
from mayfly.testing.blobs import plain_http


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
