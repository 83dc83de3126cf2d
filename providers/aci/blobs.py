"""Azure Blob Storage store of an ``aci`` target: code packages, payloads, results, logs and queue overflow.

Keys are Mayfly's blob keys (``codes/<sha256>.zip``, ``runs/...``) as block blob names,
under an optional prefix, in the target's container. Containers never get credentials: the
runner hands them SAS URLs (read for code, payload and config; create+write for
``result.json``) that the boot script uses with plain HTTP. A PUT through a SAS URL must
send ``x-ms-blob-type: BlockBlob``; :attr:`AzureBlobStore.upload_headers` says so, and the
runner passes it to the boot script (``MAYFLY_RESULT_HEADERS``).

Signing:

* **in Azure** (no account key in the settings): a *user-delegation* SAS, signed with a
  user delegation key the runner's identity obtains from the blob service (cached, renewed
  before it runs out; a key lives at most 7 days, so do the URLs). The identity needs
  ``Storage Blob Data Contributor`` on the container, and
  ``Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action``
  on the account (part of ``Storage Blob Delegator`` and ``Storage Blob Data Contributor``
  at account scope); the stack grants both;
* **on the emulator** (the settings carry Azurite's well-known key): a service SAS signed
  with the account key. Azurite checks its signature and expiry like Azure does.

Writes are atomic: one Put Blob up to 64 MiB, above that Put Block + Put Block List (the
blob appears only when the list commits). Limits (https://learn.microsoft.com/azure/storage/
blobs/scalability-targets): block blobs up to 190.7 TiB; a user delegation key and its SAS
up to 7 days (https://learn.microsoft.com/rest/api/storageservices/get-user-delegation-key).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

from mayfly.core.blobs import BlobStore, check_key
from mayfly.core.errors import InvalidInput, NotFound
from mayfly.providers.aci.azure import StorageClients, blob_module, error_code, status_of, translate

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

    from mayfly.providers.aci.settings import AciSettings

#: Longest a SAS URL lives (a user delegation key's own limit; service SAS kept the same).
MAX_URL_SECONDS = 7 * 24 * 3600
#: A user delegation key is asked for this long, and renewed when less than a URL's life is left.
DELEGATION_KEY_SECONDS = MAX_URL_SECONDS
#: SAS start times are set this far in the past: clocks of Azure and of the runner may differ.
CLOCK_SKEW = dt.timedelta(minutes=5)
#: Headers a PUT through one of this store's SAS URLs must send.
UPLOAD_HEADERS = {"x-ms-blob-type": "BlockBlob"}
_READ_BUFFER = 1024 * 1024


class _BlobReader(io.RawIOBase):
    """A blob download read as a raw file; errors mid-stream become Mayfly errors."""

    def __init__(self, downloader: Any, doing: str) -> None:
        super().__init__()
        self._downloader = downloader
        self._doing = doing

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        if not view:
            return 0
        with translate(self._doing):
            data = self._downloader.read(len(view))
        view[: len(data)] = data
        return len(data)


def _missing(exc: BaseException) -> bool:
    """True for Azure's answer that a blob (not its container) does not exist."""
    return status_of(exc) == 404 and error_code(exc) in {"BlobNotFound", "ResourceNotFound", ""}


class AzureBlobStore(BlobStore):
    """Blobs in one Azure Storage container, under an optional name prefix."""

    upload_headers = UPLOAD_HEADERS

    def __init__(self, clients: StorageClients, container: str, *, prefix: str = "") -> None:
        self.clients = clients
        self.container = container
        self.prefix = check_key(prefix.strip("/")) + "/" if prefix.strip("/") else ""
        self._lock = threading.Lock()
        self._delegation_key: Any = None
        self._container_seen = False

    @classmethod
    def from_settings(
        cls, settings: AciSettings, clients: StorageClients | None = None, *, prefix: str = ""
    ) -> AzureBlobStore:
        """The container named in an ``aci`` target's settings."""
        return cls(clients or StorageClients(settings), settings.container, prefix=prefix)

    @property
    def _container(self) -> Any:
        return self.clients.blob_service.get_container_client(self.container)

    def _name(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _where(self, key: str) -> str:
        return f"blob {self.container}/{self._name(key)} of storage account {self.clients.settings.storage_account}"

    def create_container(self) -> None:
        """Create the container unless it exists (the stack does this in Azure; the emulator and tests here)."""
        from azure.core.exceptions import ResourceExistsError

        with translate(f"creating blob container {self.container}"), contextlib.suppress(ResourceExistsError):
            self._container.create_container()

    # ------------------------------------------------------------ write

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` (replacing it, atomically)."""
        name = self._name(key)
        with translate(f"writing {self._where(key)}"):
            self._container.upload_blob(name, data, overwrite=True)

    def put_file(self, key: str, fileobj: BinaryIO) -> None:
        """Store a file object's content, streamed in blocks when large (committed atomically)."""
        name = self._name(key)
        with translate(f"uploading {self._where(key)}"):
            self._container.upload_blob(name, fileobj, overwrite=True)

    # ------------------------------------------------------------ read

    def _download(self, key: str) -> Any:
        """The blob's downloader; KeyError when it is absent."""
        try:
            return self._container.download_blob(self._name(key))
        except Exception as exc:
            if _missing(exc):
                raise KeyError(key) from None
            raise

    def get(self, key: str) -> bytes:
        """The bytes under ``key``; KeyError when absent."""
        with translate(f"reading {self._where(key)}"):
            data = self._download(key).readall()
        return bytes(data)

    def open(self, key: str) -> BinaryIO:
        """A buffered stream of the blob (downloaded in chunks as it is read); KeyError when absent."""
        doing = f"reading {self._where(key)}"
        with translate(doing):
            downloader = self._download(key)
        return io.BufferedReader(_BlobReader(downloader, doing), _READ_BUFFER)

    def exists(self, key: str) -> bool:
        """True when ``key`` is present; NotFound when the container itself is missing."""
        name = self._name(key)
        with translate(f"checking {self._where(key)}"):
            if self._container.get_blob_client(name).exists():
                return True
            if not self._container_seen and not self._container.exists():
                raise NotFound(f"checking {self._where(key)}: the container {self.container} does not exist")
        self._container_seen = True  # a container is not deleted under a running target: ask once
        return False

    def list(self, prefix: str) -> Iterator[str]:
        """Yield the keys under the folder ``prefix``, sorted (Azure lists blob names in lexicographic order)."""
        folder = prefix.strip("/")
        full = self.prefix + (check_key(folder) + "/" if folder else "")
        with translate(f"listing blobs {self.container}/{full}"):
            for name in self._container.list_blob_names(name_starts_with=full):
                yield str(name)[len(self.prefix) :]

    # ------------------------------------------------------------ delete, sign

    def delete(self, key: str) -> None:
        """Delete ``key``; an absent key is fine."""
        name = self._name(key)
        with translate(f"deleting {self._where(key)}"):
            try:
                self._container.delete_blob(name)
            except Exception as exc:
                if not _missing(exc):
                    raise

    def url_for(self, key: str, *, method: str = "GET", expires: int = 3600) -> str:
        """A SAS URL to GET (read) or PUT (create + write) ``key`` for ``expires`` seconds (at most 7 days).

        A PUT must send :attr:`upload_headers` (``x-ms-blob-type: BlockBlob``).
        """
        verb = method.upper()
        if verb not in ("GET", "PUT"):
            raise InvalidInput(f"SAS URLs are for GET or PUT, not {method!r}")
        if not 1 <= expires <= MAX_URL_SECONDS:
            raise InvalidInput(f"SAS URLs expire after 1 to {MAX_URL_SECONDS} seconds (7 days); got {expires}")
        module = blob_module()
        name = self._name(key)
        now = dt.datetime.now(dt.UTC)
        expiry = now + dt.timedelta(seconds=expires)
        permission = (
            module.BlobSasPermissions(read=True)
            if verb == "GET"
            else module.BlobSasPermissions(create=True, write=True)
        )
        settings = self.clients.settings
        signing: dict[str, Any]
        with translate(f"signing a {verb} URL for {self._where(key)}"):
            if settings.account_key:
                signing = {"account_key": settings.account_key}
            else:
                signing = {"user_delegation_key": self._user_delegation_key(now, expiry)}
            sas = module.generate_blob_sas(
                settings.storage_account,
                self.container,
                name,
                permission=permission,
                expiry=expiry,
                start=now - CLOCK_SKEW,
                protocol=None if settings.account_key else "https",
                **signing,
            )
            url = self._container.get_blob_client(name).url
        return f"{url}?{sas}"

    def _user_delegation_key(self, now: dt.datetime, expiry: dt.datetime) -> Any:
        """A user delegation key valid until at least ``expiry`` (renewed when the cached one is not)."""
        with self._lock:
            key = self._delegation_key
            if key is None or _parse_time(key.signed_expiry) < expiry:
                key = self.clients.blob_service.get_user_delegation_key(
                    key_start_time=now - CLOCK_SKEW, key_expiry_time=now + dt.timedelta(seconds=DELEGATION_KEY_SECONDS)
                )
                self._delegation_key = key
            return key


def _parse_time(value: Any) -> dt.datetime:
    """A user delegation key's ``signed_expiry`` (ISO 8601 text from the service) as an aware datetime."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
