"""The Cloud Storage store: the blob conformance suite on fake-gcs-server; its signed URLs checked as Google would.

fake-gcs-server serves signed URLs without checking them; the signatures are verified
here from the canonical request with the service account's public key, for both
signers: a key file, and IAM signBlob (through a local stand-in of the IAM Credentials
API that signs with a key of its own, so the request Mayfly makes and the answer it
reads are real).
"""

from __future__ import annotations

import base64
import datetime
import json
import threading
import urllib.parse
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mayfly.core.blobs import BlobStore
from mayfly.core.errors import AccessDenied, CredentialsMissing, InvalidInput, NotFound
from mayfly.providers.cloudrun.auth import IamSigner, signing_credentials
from mayfly.providers.cloudrun.gcs import GcsBlobStore
from mayfly.providers.cloudrun.settings import CloudRunSettings
from mayfly.testing import BlobStoreConformance
from mayfly.testing.blobs import plain_http

SIGNER = "mayfly-signer@mayfly-test.iam.gserviceaccount.com"


def settings(endpoint: str | None, bucket: str, key_file: Path | None, **extra: Any) -> CloudRunSettings:
    return CloudRunSettings(
        project="mayfly-test",
        region="europe-west1",
        queue_prefix="mayfly",
        bucket=bucket,
        job_prefix="mayfly-test",
        credentials_file=str(key_file) if key_file else None,
        storage_endpoint=endpoint,
        **extra,
    )


def new_store(endpoint: str, key_file: Path | None, **extra: Any) -> GcsBlobStore:
    bucket = f"mayfly-{uuid.uuid4().hex[:12]}"
    store = GcsBlobStore.from_settings(settings(endpoint, bucket, key_file, **extra), prefix="mayfly")
    store.client.create_bucket(bucket)
    return store


class TestGcsBlobStore(BlobStoreConformance):
    # NOTE: fake-gcs-server serves a signed URL past its X-Goog-Expires; Google answers 400 ExpiredToken.
    # The expiry parameters are verified below instead.
    checks_url_expiry = False

    @pytest.fixture
    def store(self, gcs_endpoint: str, sa_key: tuple[Path, Any]) -> BlobStore:
        return new_store(gcs_endpoint, sa_key[0])


@pytest.fixture
def store(gcs_endpoint: str, sa_key: tuple[Path, Any]) -> GcsBlobStore:
    return new_store(gcs_endpoint, sa_key[0])


def test_signed_urls_verify_with_the_key_and_carry_the_asked_expiry(
    store: GcsBlobStore, sa_key: tuple[Path, Any], verify: Any
) -> None:
    public = sa_key[1].public_key()
    store.put("codes/abc.zip", b"zip")
    get = store.url_for("codes/abc.zip", method="GET", expires=1234)
    params = verify(get, "GET", public)
    assert params["X-Goog-Expires"] == "1234"
    assert params["X-Goog-Credential"].startswith("mayfly-runner%40".replace("%40", "@"))
    assert params["X-Goog-Credential"].endswith("/auto/storage/goog4_request")
    assert urllib.parse.urlsplit(get).path == f"/{store.bucket_name}/mayfly/codes/abc.zip"
    put = store.url_for("runs/t/1/result.json", method="PUT", expires=60)
    verify(put, "PUT", public)
    # The verifier is not a rubber stamp: another method, object, expiry or moment fails.
    with pytest.raises(AssertionError, match="does not match"):
        verify(get, "PUT", public)
    with pytest.raises(AssertionError, match="does not match"):
        verify(get.replace("abc.zip", "abd.zip"), "GET", public)
    with pytest.raises(AssertionError, match="does not match"):
        verify(get.replace("X-Goog-Expires=1234", "X-Goog-Expires=9999"), "GET", public)
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=1300)
    with pytest.raises(AssertionError, match="expired"):
        verify(get, "GET", public, now=later)


def test_bad_url_requests_are_refused(store: GcsBlobStore) -> None:
    with pytest.raises(InvalidInput, match="GET or PUT"):
        store.url_for("codes/x", method="DELETE")
    with pytest.raises(InvalidInput, match="7 days"):
        store.url_for("codes/x", expires=8 * 24 * 3600)


def test_a_missing_bucket_is_not_found(gcs_endpoint: str, sa_key: tuple[Path, Any]) -> None:
    store = GcsBlobStore.from_settings(settings(gcs_endpoint, "mayfly-absent-bucket", sa_key[0]))
    with pytest.raises(NotFound, match="mayfly-absent-bucket does not exist"):
        store.exists("codes/x")


def test_create_and_replace_are_conditional(store: GcsBlobStore) -> None:
    first = store.create("runs/t/1/launch", b'{"a": 1}')
    assert first is not None
    assert store.create("runs/t/1/launch", b'{"a": 2}') is None
    assert store.read("runs/t/1/launch") == (b'{"a": 1}', first)
    second = store.replace("runs/t/1/launch", b'{"a": 3}', first)
    assert second is not None
    assert second != first
    assert store.replace("runs/t/1/launch", b'{"a": 4}', first) is None  # someone else moved it on
    assert store.get("runs/t/1/launch") == b'{"a": 3}'
    assert store.read("runs/t/1/absent") is None


# ---------------------------------------------------------------- IAM signBlob


class _SignBlob(BaseHTTPRequestHandler):
    """The IAM Credentials API's signBlob, signing with the key the server was given."""

    def do_POST(self) -> None:
        server: Any = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        server.calls.append((self.path, self.headers.get("Authorization"), body))
        if self.headers.get("Authorization") != "Bearer runner-token":
            self._answer(403, {"error": {"code": 403, "message": "Permission 'iam.serviceAccounts.signBlob' denied"}})
            return
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        signature = server.key.sign(base64.b64decode(body["payload"]), padding.PKCS1v15(), hashes.SHA256())
        self._answer(200, {"keyId": "k", "signedBlob": base64.b64encode(signature).decode()})

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def iam() -> Iterator[Any]:
    """A local signBlob server with a key of its own (the service account's Google-managed key)."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), _SignBlob)
    server.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    server.calls = []
    server.url = f"http://127.0.0.1:{server.server_address[1]}/v1/projects/-/serviceAccounts/{{email}}:signBlob"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _token(value: str) -> Any:
    from google.oauth2.credentials import Credentials

    return Credentials(token=value)  # no expiry: used as is, never refreshed


def test_iam_signblob_signs_urls_that_verify_with_the_signers_key(gcs_endpoint: str, iam: Any, verify: Any) -> None:
    signer = IamSigner(SIGNER, _token("runner-token"), url=iam.url)
    bucket = f"mayfly-{uuid.uuid4().hex[:12]}"
    store = GcsBlobStore.from_settings(settings(gcs_endpoint, bucket, None, signer_service_account=SIGNER))
    store.signer = signer  # the same store, its signBlob sent to the local stand-in
    store.client.create_bucket(bucket)
    store.put("codes/c.zip", b"code")
    url = store.url_for("codes/c.zip", method="GET", expires=600)
    params = verify(url, "GET", iam.key.public_key())
    assert params["X-Goog-Credential"].startswith(f"{SIGNER}/")
    path, authorization, body = iam.calls[-1]
    assert path == f"/v1/projects/-/serviceAccounts/{SIGNER}:signBlob"
    assert authorization == "Bearer runner-token"
    assert base64.b64decode(body["payload"]).startswith(b"GOOG4-RSA-SHA256\n")
    # And the emulator serves it (it checks no signature, but the URL's shape is what Google takes).
    assert plain_http("GET", url)[:2] == (0, b"code")


def test_iam_signblob_denied_is_access_denied_naming_the_permission(iam: Any) -> None:
    signer = IamSigner(SIGNER, _token("someone-else"), url=iam.url)
    with pytest.raises(AccessDenied, match=r"iam\.serviceAccounts\.signBlob on " + SIGNER):
        signer.sign_bytes(b"x")


def test_signer_choice_follows_the_settings(sa_key: tuple[Path, Any], tmp_path: Path) -> None:
    # signer_service_account wins, authorized by the key file's identity; no call is made until a URL is signed.
    chosen = signing_credentials(SIGNER, str(sa_key[0]))
    assert isinstance(chosen, IamSigner)
    assert chosen.signer_email == SIGNER
    # A key file alone signs with its own key.
    own = signing_credentials(None, str(sa_key[0]))
    assert own.signer_email == "mayfly-runner@mayfly-test.iam.gserviceaccount.com"
    missing = tmp_path / "absent.json"
    with pytest.raises(CredentialsMissing, match="does not exist"):
        signing_credentials(None, str(missing))
    with pytest.raises(InvalidInput, match="service account email"):
        IamSigner("not-an-email", _token("t"))


def test_without_credentials_the_store_is_made_and_its_first_use_says_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # No key file, no ADC, and never a metadata server probe (google-auth reads NO_GCE_CHECK once, at import).
    from google.auth.compute_engine import _metadata

    monkeypatch.setattr(_metadata, "_NO_GCE_CHECK", True)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    store = GcsBlobStore.from_settings(settings(None, "mayfly-bucket", None))
    with pytest.raises(CredentialsMissing, match="no Google Cloud credentials found"):
        store.exists("codes/x")
