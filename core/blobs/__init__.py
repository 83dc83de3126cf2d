"""Blob stores: where code packages, logs and results live.

One small interface with a local-directory implementation here; S3, GCS and
Azure Blob implementations live with their providers. Keys are ``/``-separated
relative paths such as ``codes/<sha256>.zip`` or ``logs/<task>/<attempt>/00000001``.
"""

from __future__ import annotations

import abc
import hashlib
import re
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import BinaryIO

from mayfly.core.errors import InvalidInput

_KEY = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*\Z")


def check_key(key: str) -> str:
    """Reject keys that could escape the store (``..``, absolute, odd characters)."""
    if not _KEY.match(key) or any(part in (".", "..") for part in key.split("/")):
        raise InvalidInput(f"invalid blob key {key!r}")
    return key


def code_key(sha256: str) -> str:
    """The content-addressed key of a code package."""
    return f"codes/{sha256}.zip"


def sha256_file(fileobj: BinaryIO, chunk: int = 1 << 20) -> tuple[str, int]:
    """Return (hex sha256, size) of a file object, read from its current position."""
    h = hashlib.sha256()
    size = 0
    while block := fileobj.read(chunk):
        h.update(block)
        size += len(block)
    return h.hexdigest(), size


class BlobStore(abc.ABC):
    """A flat key → bytes store."""

    #: Headers a PUT through one of :meth:`url_for`'s URLs must send (Azure: ``x-ms-blob-type``); the
    #: boot script gets them in ``MAYFLY_RESULT_HEADERS``.
    upload_headers: Mapping[str, str] = MappingProxyType({})

    @abc.abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``, replacing what was there (atomically)."""

    @abc.abstractmethod
    def put_file(self, key: str, fileobj: BinaryIO) -> None:
        """Store the content of a file object under ``key`` (atomically)."""

    @abc.abstractmethod
    def get(self, key: str) -> bytes:
        """Return the bytes under ``key``. Raises ``KeyError`` when absent."""

    @abc.abstractmethod
    def open(self, key: str) -> BinaryIO:
        """Open the blob for streaming reads. Raises ``KeyError`` when absent."""

    @abc.abstractmethod
    def exists(self, key: str) -> bool:
        """True when ``key`` is present."""

    @abc.abstractmethod
    def list(self, prefix: str) -> Iterator[str]:
        """Yield the keys under ``prefix`` (a ``/``-ended folder), sorted."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Delete ``key``; deleting an absent key is fine."""

    def url_for(self, key: str, *, method: str = "GET", expires: int = 3600) -> str | None:
        """A short-lived URL a container can use to GET or PUT ``key``, where the store offers one."""
        return None
