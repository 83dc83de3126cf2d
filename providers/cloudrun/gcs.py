"""Cloud Storage blob store of a ``cloudrun`` target: code packages, payloads, results, logs and run markers.

Keys are Mayfly's blob keys (``codes/<sha256>.zip``, ``runs/...``) under an optional
key prefix, in the bucket the target's stack created (uniform bucket-level access).
Code packages are content-addressed, so uploading one twice is harmless. Task
containers never get credentials: the runner hands them V4 signed URLs (GET for code,
payload and config; PUT for ``result.json``) that the boot script uses with plain HTTP.
Who signs is :mod:`mayfly.providers.cloudrun.auth`'s choice: a key file, or IAM
``signBlob`` as ``signer_service_account`` in Google Cloud (no key anywhere).

IAM permissions of the identity that runs the store (control plane and runner), on the
bucket (``roles/storage.objectUser`` covers them): ``storage.objects.get``,
``storage.objects.create``, ``storage.objects.delete`` and ``storage.objects.list``
(the signer needs the same: a signed URL acts with the signer's permissions).
``storage.buckets.get`` lets ``mayfly target check`` verify the bucket.

V4 signed URLs live at most 7 days
(https://cloud.google.com/storage/docs/access-control/signed-urls#signing-resumable).
A PUT URL signs no Content-Type header, so any client may send any (or none).

What the local emulator (fake-gcs-server) does not cover: it checks neither the
signature nor the expiry of signed URLs (the tests verify both from the canonical
request instead), it needs ``-public-host`` equal to the host of the signed URLs, and
it never answers 429 or 403.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib
import io
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

from mayfly.core.blobs import BlobStore, check_key
from mayfly.core.errors import InvalidInput, MissingDependency, NotFound
from mayfly.providers.cloudrun.google import translate

if TYPE_CHECKING:
    from mayfly.providers.cloudrun.settings import CloudRunSettings

INSTALL_HINT = 'Google Cloud Storage needs google-cloud-storage: pip install "mayfly-tasks[gcp]"'
#: V4 signed URLs expire after at most 7 days.
MAX_URL_SECONDS = 7 * 24 * 3600
#: Files larger than this go up as a resumable upload in chunks of this size (a multiple of 256 KiB).
CHUNK_SIZE = 8 * 1024 * 1024
_READ_CHUNK = 1024 * 1024
_METHODS = ("GET", "PUT")


def storage_module() -> Any:
    """Import ``google.cloud.storage``, or raise MissingDependency with the install command."""
    try:
        storage = importlib.import_module("google.cloud.storage")
    except ImportError:
        raise MissingDependency(INSTALL_HINT) from None
    return storage


def make_client(project: str, credentials: Any, endpoint: str | None = None) -> Any:
    """A ``storage.Client`` for ``project`` (talking to ``endpoint`` instead of Google when set)."""
    storage = storage_module()
    options = {"api_endpoint": endpoint} if endpoint else None
    with translate("creating a Cloud Storage client"):
        return storage.Client(project=project, credentials=credentials, client_options=options)


class GcsBlobStore(BlobStore):
    """Blobs in one Cloud Storage bucket, under an optional key prefix.

    ``client`` is a ``storage.Client``, or a callable that makes one on first use (so a
    store that is never used needs no credentials). ``signer`` signs the URLs (a
    ``google.auth.credentials.Signing``: a service account key, or
    :class:`~mayfly.providers.cloudrun.auth.IamSigner`); None: ``url_for`` signs with the
    client's own credentials, which must then carry a key.
    """

    def __init__(
        self,
        bucket: str,
        client: Any,
        *,
        prefix: str = "",
        signer: Any = None,
        endpoint: str | None = None,
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        self.bucket_name = bucket
        self._client = client
        self._client_lock = threading.Lock()
        self.prefix = check_key(prefix.strip("/")) + "/" if prefix.strip("/") else ""
        self.signer = signer
        #: Scheme and host of the signed URLs (Google's unless an emulator's).
        self.url_endpoint = (endpoint or "https://storage.googleapis.com").rstrip("/")
        self.chunk_size = chunk_size
        self._bucket_checked = False

    @property
    def client(self) -> Any:
        """The ``storage.Client`` (made on first use when the store was given a factory)."""
        with self._client_lock:
            if callable(self._client) and not hasattr(self._client, "bucket"):
                self._client = self._client()
            return self._client

    @property
    def _bucket(self) -> Any:
        return self.client.bucket(self.bucket_name)

    @classmethod
    def from_settings(cls, settings: CloudRunSettings, *, prefix: str = "") -> GcsBlobStore:
        """The bucket named in a ``cloudrun`` target's settings, with its API and signing credentials."""
        from mayfly.providers.cloudrun.auth import api_credentials, signing_credentials

        s = settings

        def client() -> Any:
            return make_client(s.project, api_credentials(s.credentials_file, s.storage_endpoint), s.storage_endpoint)

        signer = _LazySigner(lambda: signing_credentials(s.signer_service_account, s.credentials_file))
        return cls(s.bucket, client, prefix=prefix, signer=signer, endpoint=s.storage_endpoint)

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _where(self, key: str) -> str:
        return f"gs://{self.bucket_name}/{self._key(key)}"

    def _blob(self, key: str) -> Any:
        return self._bucket.blob(self._key(key), chunk_size=None)

    # ------------------------------------------------------------ write

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` (one upload: a new generation appears whole or not at all)."""
        with translate(f"writing {self._where(key)}"):
            self._blob(key).upload_from_string(data, content_type="application/octet-stream")

    def put_file(self, key: str, fileobj: BinaryIO) -> None:
        """Store a file object's content; large files go up resumably in ``chunk_size`` chunks (still atomic)."""
        blob = self._bucket.blob(self._key(key), chunk_size=self.chunk_size)
        with translate(f"uploading {self._where(key)}"):
            blob.upload_from_file(fileobj, content_type="application/octet-stream")

    # ------------------------------------------------------------ read

    def get(self, key: str) -> bytes:
        """The bytes under ``key``; KeyError when absent."""
        from google.api_core import exceptions as gx

        with translate(f"reading {self._where(key)}"):
            try:
                return bytes(self._blob(key).download_as_bytes())
            except gx.NotFound:
                self._check_bucket()
                raise KeyError(key) from None

    def open(self, key: str) -> BinaryIO:
        """A buffered stream of the object's current generation, read in chunks; KeyError when absent."""
        from google.api_core import exceptions as gx

        doing = f"reading {self._where(key)}"
        blob = self._blob(key)
        with translate(doing):
            try:
                blob.reload()  # pins the generation: the stream never mixes two versions
            except gx.NotFound:
                self._check_bucket()
                raise KeyError(key) from None
        return io.BufferedReader(_ObjectReader(blob, doing), _READ_CHUNK)

    def exists(self, key: str) -> bool:
        """True when ``key`` is present."""
        with translate(f"checking {self._where(key)}"):
            found = bool(self._blob(key).exists())
        if not found:
            self._check_bucket()
        return found

    def _check_bucket(self) -> None:
        """Raise NotFound if the bucket is missing (an object's 404 does not say which is absent)."""
        if self._bucket_checked:
            return
        with translate(f"checking Cloud Storage bucket {self.bucket_name}"):
            if not self._bucket.exists():
                raise NotFound(f"Cloud Storage bucket {self.bucket_name} does not exist")
        self._bucket_checked = True

    def list(self, prefix: str) -> Iterator[str]:
        """Yield the keys under the folder ``prefix``, sorted (Cloud Storage lists in UTF-8 byte order)."""
        folder = prefix.strip("/")
        full = self.prefix + (check_key(folder) + "/" if folder else "")
        with translate(f"listing gs://{self.bucket_name}/{full}"):
            for blob in self.client.list_blobs(self.bucket_name, prefix=full):
                yield str(blob.name)[len(self.prefix) :]

    # ------------------------------------------------------------ preconditions (launch records)

    def create(self, key: str, data: bytes) -> int | None:
        """Store ``data`` only if ``key`` is absent (``ifGenerationMatch=0``): its generation, or None."""
        from google.api_core import exceptions as gx

        blob = self._blob(key)
        with translate(f"creating {self._where(key)}"):
            try:
                blob.upload_from_string(data, content_type="application/json", if_generation_match=0)
            except gx.PreconditionFailed:
                return None
        return int(blob.generation)

    def read(self, key: str) -> tuple[bytes, int] | None:
        """The bytes under ``key`` and their generation, or None when absent."""
        from google.api_core import exceptions as gx

        blob = self._blob(key)
        with translate(f"reading {self._where(key)}"):
            try:
                data = blob.download_as_bytes()
            except gx.NotFound:
                return None
        return bytes(data), int(blob.generation)

    def replace(self, key: str, data: bytes, generation: int) -> int | None:
        """Store ``data`` only if ``key`` is still at ``generation``; the new generation, or None if it moved on."""
        from google.api_core import exceptions as gx

        blob = self._blob(key)
        with translate(f"updating {self._where(key)}"):
            try:
                blob.upload_from_string(data, content_type="application/json", if_generation_match=generation)
            except (gx.PreconditionFailed, gx.NotFound):
                return None
        return int(blob.generation)

    def delete_if(self, key: str, generation: int) -> bool:
        """Delete ``key`` only if it is still at ``generation``; False when it moved on or is gone."""
        from google.api_core import exceptions as gx

        with translate(f"deleting {self._where(key)}"):
            try:
                self._blob(key).delete(if_generation_match=generation)
            except (gx.PreconditionFailed, gx.NotFound):
                return False
        return True

    # ------------------------------------------------------------ delete, sign

    def delete(self, key: str) -> None:
        """Delete ``key``; an absent key is fine."""
        from google.api_core import exceptions as gx

        with translate(f"deleting {self._where(key)}"), contextlib.suppress(gx.NotFound):
            self._blob(key).delete()

    def url_for(self, key: str, *, method: str = "GET", expires: int = 3600) -> str:
        """A V4 signed URL to GET or PUT ``key`` for ``expires`` seconds (at most 7 days)."""
        verb = method.upper()
        if verb not in _METHODS:
            raise InvalidInput(f"signed URLs are for GET or PUT, not {method!r}")
        if not 1 <= expires <= MAX_URL_SECONDS:
            raise InvalidInput(f"signed URLs expire after 1 to {MAX_URL_SECONDS} seconds (7 days); got {expires}")
        signer = self.signer.get() if isinstance(self.signer, _LazySigner) else self.signer
        with translate(f"signing a {verb} URL for {self._where(key)}"):
            url = self._blob(key).generate_signed_url(
                version="v4",
                expiration=datetime.timedelta(seconds=expires),
                method=verb,
                credentials=signer,
                api_access_endpoint=self.url_endpoint,
            )
        return str(url)


class _ObjectReader(io.RawIOBase):
    """Ranged reads of one object generation, as a raw file; errors become Mayfly errors."""

    def __init__(self, blob: Any, doing: str) -> None:
        super().__init__()
        self._blob = blob
        self._doing = doing
        self._pos = 0
        self._size = int(blob.size or 0)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if not view or self._pos >= self._size:
            return 0
        end = min(self._pos + len(view), self._size) - 1
        with translate(self._doing):
            data = self._blob.download_as_bytes(start=self._pos, end=end, checksum=None)
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)


class _LazySigner:
    """Resolves the signing credentials on first use (so a store that never signs needs no key)."""

    def __init__(self, make: Any) -> None:
        self._make = make
        self._value: Any = None

    def get(self) -> Any:
        if self._value is None:
            self._value = self._make()
        return self._value
