"""Blob store in a local directory (the embedded default, under ``$MAYFLY_HOME/blobs``)."""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from mayfly.core.blobs import BlobStore, check_key
from mayfly.core.dbfaults import storage_faults


class LocalBlobStore(BlobStore):
    """Each key is a file under ``root``; writes go through a temp file and ``os.replace``.

    A full disk or a read-only file system raises
    :class:`~mayfly.core.errors.StoreUnavailable` (:mod:`mayfly.core.dbfaults`), as the
    store and the queues do; a missing key is a ``KeyError``.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        with storage_faults():
            self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _write(self, key: str, write: bytes | BinaryIO) -> None:
        with storage_faults():
            self._write_file(key, write)

    def _write_file(self, key: str, write: bytes | BinaryIO) -> None:
        path = self._path(key)
        # A name unique to this writer (process and thread) is as good as mkstemp's, and much cheaper.
        tmp = str(path.parent / f".tmp-{path.name}-{os.getpid()}-{threading.get_ident()}")
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        try:
            fd = os.open(tmp, flags, 0o644)
        except FileNotFoundError:  # the folder's first blob
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, flags, 0o644)
        try:
            if isinstance(write, bytes):
                try:  # the runner's small records: no buffered file object to build
                    _write_all(fd, write)
                finally:
                    os.close(fd)
            else:
                with os.fdopen(fd, "wb") as out:
                    shutil.copyfileobj(write, out, 1 << 20)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def put(self, key: str, data: bytes) -> None:
        self._write(key, data)

    def put_file(self, key: str, fileobj: BinaryIO) -> None:
        self._write(key, fileobj)

    def get(self, key: str) -> bytes:
        try:
            with storage_faults():
                return self._path(key).read_bytes()
        except FileNotFoundError:
            raise KeyError(key) from None

    def open(self, key: str) -> BinaryIO:
        try:
            with storage_faults():
                return self._path(key).open("rb")
        except FileNotFoundError:
            raise KeyError(key) from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str) -> Iterator[str]:
        base = self.root / prefix.rstrip("/") if prefix else self.root
        if not base.is_dir():
            return
        for path in sorted(base.rglob("*")):
            if path.is_file() and not path.name.startswith(".tmp-"):
                yield path.relative_to(self.root).as_posix()

    def delete(self, key: str) -> None:
        path = self._path(key)
        with storage_faults():
            path.unlink(missing_ok=True)

    def local_path(self, key: str) -> Path:
        """The file behind ``key`` (local store only; lets Docker read code without a copy)."""
        return self._path(key)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
