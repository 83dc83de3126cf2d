"""The blob store conformance suite: what every Mayfly blob store must do, as pytest tests.

Code packages, logs and results live in a :class:`~mayfly.core.blobs.BlobStore`; a store
(local folder, S3, GCS, Azure Blob, ...) is ready when its subclass of
:class:`BlobStoreConformance` passes::

    import pytest
    from mayfly.testing import BlobStoreConformance

    class TestMyStore(BlobStoreConformance):
        @pytest.fixture
        def store(self):
            yield make_a_fresh_empty_store()

Checked: put/get/exists/delete, streaming put and open, listing by folder prefix
(sorted, nothing from a sibling folder), content addressing of code packages, keys
that could escape refused, and signed GET and PUT URLs that a separate process with
no SDK (plain ``urllib``) fetches and writes (a PUT sending the store's ``upload_headers``),
with their expiry honoured where the store checks it. A store that offers no URLs declares it (``urls_unsupported``)
and must then return None from ``url_for``.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from typing import ClassVar

import pytest

from mayfly.core.blobs import BlobStore, code_key, sha256_file
from mayfly.core.errors import InvalidInput

__all__ = ["BlobStoreConformance"]

# Run in a separate interpreter: the reader or writer of a URL is never the process that signed it.
_HTTP = """
import json, sys, urllib.request, urllib.error
method, url, extra = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
data = sys.stdin.buffer.read() if method == "PUT" else None
headers = {"Content-Type": "application/octet-stream", **extra} if data is not None else {}
req = urllib.request.Request(url, data=data, method=method, headers=headers)
try:
    with urllib.request.urlopen(req, timeout=30) as resp:
        sys.stdout.buffer.write(resp.read())
except urllib.error.HTTPError as exc:
    sys.stderr.write(str(exc.code))
    sys.exit(3)
"""


def plain_http(
    method: str, url: str, data: bytes = b"", headers: Mapping[str, str] | None = None
) -> tuple[int, bytes, str]:
    """GET or PUT ``url`` from another process with the standard library only: (rc, body, HTTP error code).

    A PUT sends ``headers`` too (what the store's ``upload_headers`` asks of its URLs' users).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GOOGLE_", "AZURE_"))}
    extra = json.dumps(dict(headers or {}))
    proc = subprocess.run(
        [sys.executable, "-c", _HTTP, method, url, extra], input=data, capture_output=True, timeout=60, env=env
    )
    return proc.returncode, proc.stdout, proc.stderr.decode(errors="replace").strip()


class BlobStoreConformance:
    """Base class of a blob store's conformance tests; see the module docstring."""

    #: Why the store offers no signed URLs (None: it must offer GET and PUT URLs).
    urls_unsupported: ClassVar[str | None] = None
    #: Whether the store refuses a signed URL after it expired (an emulator may not check).
    checks_url_expiry: ClassVar[bool] = True

    @pytest.fixture
    def store(self) -> BlobStore:
        """A fresh, empty store of the backend under test. Override it."""
        pytest.fail(f"{type(self).__name__} must override the 'store' fixture")

    # ------------------------------------------------------------ put, get, exists, delete

    def test_put_get_exists_delete(self, store: BlobStore) -> None:
        assert not store.exists("logs/t1/1/00000001")
        store.put("logs/t1/1/00000001", b"first\n")
        store.put("logs/t1/1/00000001", b"replaced\n")
        assert store.exists("logs/t1/1/00000001")
        assert store.get("logs/t1/1/00000001") == b"replaced\n"
        store.delete("logs/t1/1/00000001")
        assert not store.exists("logs/t1/1/00000001")
        store.delete("logs/t1/1/00000001")  # deleting what is absent is fine

    def test_a_missing_key_is_a_key_error(self, store: BlobStore) -> None:
        with pytest.raises(KeyError):
            store.get("results/absent")
        with pytest.raises(KeyError):
            store.open("results/absent")

    def test_empty_and_binary_values(self, store: BlobStore) -> None:
        store.put("r/empty", b"")
        store.put("r/binary", bytes(range(256)) * 4)
        assert store.get("r/empty") == b""
        assert store.get("r/binary") == bytes(range(256)) * 4

    def test_put_file_and_open_stream(self, store: BlobStore) -> None:
        data = os.urandom(3 * 1024 * 1024 + 17)
        store.put_file("codes/big.bin", io.BytesIO(data))
        with store.open("codes/big.bin") as fh:
            first = fh.read(1000)
            rest = fh.read()
        assert first + rest == data

    # ------------------------------------------------------------ list, keys, addressing

    def test_list_by_folder_prefix_is_sorted(self, store: BlobStore) -> None:
        for key in ("logs/b/2", "logs/a/1", "logs/a/10", "logsx/z", "results/a"):
            store.put(key, key.encode())
        assert list(store.list("logs/")) == ["logs/a/1", "logs/a/10", "logs/b/2"]
        assert list(store.list("logs/a/")) == ["logs/a/1", "logs/a/10"]
        assert list(store.list("nothing/")) == []

    def test_keys_that_could_escape_are_refused(self, store: BlobStore) -> None:
        for key in ("../x", "/etc/passwd", "a/../../b", "a//b", "a/./b", ""):
            with pytest.raises(InvalidInput):
                store.put(key, b"x")
        assert list(store.list("")) == []

    def test_code_packages_are_content_addressed(self, store: BlobStore) -> None:
        package = b"PK\x05\x06" + b"\x00" * 18  # an empty zip
        sha, size = sha256_file(io.BytesIO(package))
        key = code_key(sha)
        store.put(key, package)
        stored_sha, stored_size = sha256_file(store.open(key))
        assert (stored_sha, stored_size) == (sha, size)
        assert key == f"codes/{sha}.zip"

    # ------------------------------------------------------------ signed URLs

    def test_signed_get_and_put_urls_work_with_plain_http(self, store: BlobStore) -> None:
        if self.urls_unsupported is not None:
            assert store.url_for("results/x") is None, "a store that declares no URLs returns None"
            pytest.skip(self.urls_unsupported)
        store.put("codes/readme", b"read me\n")
        get_url = store.url_for("codes/readme", method="GET", expires=300)
        assert get_url is not None
        assert plain_http("GET", get_url)[:2] == (0, b"read me\n")
        put_url = store.url_for("results/t1/1/result", method="PUT", expires=300)
        assert put_url is not None
        rc, _, error = plain_http("PUT", put_url, b'{"ok": true}', store.upload_headers)
        assert rc == 0, error
        assert store.get("results/t1/1/result") == b'{"ok": true}'

    def test_a_signed_url_expires(self, store: BlobStore) -> None:
        if self.urls_unsupported is not None:
            pytest.skip(self.urls_unsupported)
        if not self.checks_url_expiry:
            pytest.skip("this store (or its emulator) does not check the expiry of signed URLs")
        store.put("codes/short", b"soon gone")
        url = store.url_for("codes/short", method="GET", expires=1)
        assert url is not None
        time.sleep(2.5)
        rc, body, error = plain_http("GET", url)
        assert rc == 3, f"an expired URL still answered: rc={rc} {body!r}"
        assert error.isdigit(), error
