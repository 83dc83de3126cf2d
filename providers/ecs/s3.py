"""S3 blob store of an ``ecs`` target: code packages, payloads, results, logs and run markers.

Keys are Mayfly's blob keys (``codes/<sha256>.zip``, ``runs/...``) under an
optional key prefix, in the bucket the target's stack created. Containers never
get credentials: the runner hands them presigned URLs (GET for code, payload and
config; PUT for ``result.json``) that the boot script uses with plain HTTP.

IAM permissions of the identity that runs the store (control plane and runner):

* ``s3:GetObject``, ``s3:PutObject``, ``s3:DeleteObject`` and ``s3:AbortMultipartUpload``
  on ``arn:aws:s3:::BUCKET/*`` (presigned URLs act with the signer's permissions);
* ``s3:ListBucket`` on ``arn:aws:s3:::BUCKET``: for ``list``, and so that S3 answers
  404 rather than 403 for a missing key;
* with SSE-KMS on a customer key: ``kms:GenerateDataKey`` and ``kms:Decrypt`` on it.

Presigned URLs live at most 7 days, and no longer than the credentials that signed
them: URLs signed with a role's temporary credentials die with the session.

What the local emulator (moto) does not cover: it does not check the signature or
the expiry of presigned URLs; a HEAD of a key in a missing bucket answers
``NoSuchBucket`` there, while AWS answers a bare 404 (handled here by checking the
bucket once); and by default it never throttles (``SlowDown``) nor denies access.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

from mayfly.core.blobs import BlobStore, check_key
from mayfly.core.errors import AccessDenied, InvalidInput, MayflyError, NotFound, Throttled
from mayfly.providers.ecs.aws import Clients, error_code, translate

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

    from mayfly.providers.ecs.settings import EcsSettings

#: Files larger than this go up in parts of this size (S3's minimum part size is 5 MiB).
PART_SIZE = 16 * 1024 * 1024
#: SigV4 presigned URLs expire after at most 7 days.
MAX_URL_SECONDS = 7 * 24 * 3600
_READ_BUFFER = 1024 * 1024
_METHODS = {"GET": "get_object", "PUT": "put_object"}


class _ObjectReader(io.RawIOBase):
    """The streaming body of a GetObject, read as a raw file; errors mid-stream become Mayfly errors."""

    def __init__(self, body: Any, doing: str) -> None:
        super().__init__()
        self._body = body
        self._doing = doing

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        if not view:
            return 0  # botocore treats read(0) as the end of the stream and checks its length
        with translate(self._doing):
            data = self._body.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


def _head_error(exc: Exception, doing: str, permissions: str) -> MayflyError | None:
    """Translate a failed HEAD (no body, so botocore reports only the status code); None: use ``translate``."""
    code = error_code(exc)
    if code == "403":
        return AccessDenied(f"{doing}: access denied (403 Forbidden; needs {permissions})")
    if code == "503":
        return Throttled(f"{doing}: throttled by AWS (503 Slow Down)")
    return None


class S3BlobStore(BlobStore):
    """Blobs in one S3 bucket, under an optional key prefix."""

    def __init__(self, bucket: str, clients: Clients, *, prefix: str = "", part_size: int = PART_SIZE) -> None:
        self.bucket = bucket
        self.clients = clients
        self.prefix = check_key(prefix.strip("/")) + "/" if prefix.strip("/") else ""
        self.part_size = part_size
        self._bucket_checked = False

    @classmethod
    def from_settings(cls, settings: EcsSettings, clients: Clients | None = None, *, prefix: str = "") -> S3BlobStore:
        """The bucket named in an ``ecs`` target's settings."""
        return cls(settings.bucket, clients or Clients(settings.region, settings.endpoint_url), prefix=prefix)

    @property
    def _s3(self) -> Any:
        return self.clients("s3")

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _where(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    # ------------------------------------------------------------ write

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` (one PutObject: atomic)."""
        with translate(f"writing {self._where(key)}"):
            self._s3.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def put_file(self, key: str, fileobj: BinaryIO) -> None:
        """Store a file object's content, in parts when it is larger than ``part_size`` (atomic either way)."""
        s3 = self._s3  # first: raises MissingDependency when boto3 is not installed
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(multipart_threshold=self.part_size, multipart_chunksize=self.part_size)
        with translate(f"uploading {self._where(key)}"):
            s3.upload_fileobj(fileobj, self.bucket, self._key(key), Config=config)

    # ------------------------------------------------------------ read

    def _get_object(self, key: str) -> Any:
        """GetObject's response; KeyError when the key is absent."""
        try:
            return self._s3.get_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            if error_code(exc) == "NoSuchKey":
                raise KeyError(key) from None
            raise

    def get(self, key: str) -> bytes:
        """The bytes under ``key``; KeyError when absent."""
        doing = f"reading {self._where(key)}"
        with translate(doing):
            body = self._get_object(key)["Body"]
            with body:
                return bytes(body.read())

    def open(self, key: str) -> BinaryIO:
        """A buffered stream of the object (read as you go, never loaded whole); KeyError when absent."""
        doing = f"reading {self._where(key)}"
        with translate(doing):
            body = self._get_object(key)["Body"]
        return io.BufferedReader(_ObjectReader(body, doing), _READ_BUFFER)

    def exists(self, key: str) -> bool:
        """True when ``key`` is present (HeadObject)."""
        doing = f"checking {self._where(key)}"
        with translate(doing):
            try:
                self._s3.head_object(Bucket=self.bucket, Key=self._key(key))
            except Exception as exc:
                if error_code(exc) not in {"404", "NoSuchKey"}:
                    mapped = _head_error(exc, doing, "s3:GetObject, and s3:ListBucket for absent keys")
                    if mapped is None:
                        raise
                    raise mapped from exc
                self._check_bucket()
                return False
        return True

    def _check_bucket(self) -> None:
        """Raise NotFound if the bucket is missing (a HEAD answers a bare 404 for a missing bucket or key)."""
        if self._bucket_checked:
            return
        doing = f"checking S3 bucket {self.bucket}"
        with translate(doing):
            try:
                self._s3.head_bucket(Bucket=self.bucket)
            except Exception as exc:
                if error_code(exc) in {"404", "NoSuchBucket"}:
                    raise NotFound(f"{doing}: the bucket does not exist") from exc
                mapped = _head_error(exc, doing, "s3:ListBucket")
                if mapped is None:
                    raise
                raise mapped from exc
        self._bucket_checked = True

    def list(self, prefix: str) -> Iterator[str]:
        """Yield the keys under the folder ``prefix``, sorted (S3 lists in UTF-8 byte order, i.e. code points)."""
        folder = prefix.strip("/")
        full = self.prefix + (check_key(folder) + "/" if folder else "")
        with translate(f"listing s3://{self.bucket}/{full}"):
            pages = self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full)
            for page in pages:
                for item in page.get("Contents", []):
                    yield str(item["Key"])[len(self.prefix) :]

    # ------------------------------------------------------------ delete, sign

    def delete(self, key: str) -> None:
        """Delete ``key``; S3 answers success for an absent key too."""
        with translate(f"deleting {self._where(key)}"):
            self._s3.delete_object(Bucket=self.bucket, Key=self._key(key))

    def url_for(self, key: str, *, method: str = "GET", expires: int = 3600) -> str:
        """A presigned URL to GET or PUT ``key`` for ``expires`` seconds (at most 7 days).

        A PUT URL signs no Content-Type, so any client may send any (or none).
        """
        operation = _METHODS.get(method.upper())
        if operation is None:
            raise InvalidInput(f"presigned URLs are for GET or PUT, not {method!r}")
        if not 1 <= expires <= MAX_URL_SECONDS:
            raise InvalidInput(f"presigned URLs expire after 1 to {MAX_URL_SECONDS} seconds (7 days); got {expires}")
        with translate(f"signing a {method.upper()} URL for {self._where(key)}"):
            url = self._s3.generate_presigned_url(
                operation, Params={"Bucket": self.bucket, "Key": self._key(key)}, ExpiresIn=expires
            )
        return str(url)
