"""Task logs in the blob store: written in chunks while the task runs, capped, readable while written.

Each chunk's key is its byte offset in the container's output
(``logs/<task>/<attempt>/<offset>``), so a runner that reattaches after a restart
can skip what is already stored, and two writers of the same stream can never
corrupt it: readers stitch chunks by offset and drop overlaps. Blob stores
without append (S3, GCS, Azure Blob) work the same way.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from mayfly.core.blobs import BlobStore
from mayfly.core.messages import log_prefix

#: The marker key sorts after every offset.
_MARKER = "zz-truncated"


def _offset_key(prefix: str, offset: int) -> str:
    return f"{prefix}{offset:015d}"


class LogWriter:
    """Buffers a container's output and flushes it to chunks, keeping at most ``max_bytes``."""

    def __init__(
        self,
        blobs: BlobStore,
        task_id: str,
        attempt: int,
        max_bytes: int,
        *,
        flush_every: float = 0.5,
        flush_bytes: int = 256 * 1024,
        fresh: bool = False,
    ) -> None:
        self.blobs = blobs
        self.prefix = log_prefix(task_id, attempt)
        self.max_bytes = max_bytes
        self.flush_every = flush_every
        self.flush_bytes = flush_bytes
        #: Bytes of the stream seen so far (kept or dropped).
        self.seen = 0
        #: Bytes already stored before this writer started (a reattach resumes after them);
        #: ``fresh`` says the container was just launched, so there can be none.
        self.stored = 0 if fresh else stored_size(blobs, self.prefix)
        self._buf = bytearray()
        self._buf_start = self.stored
        self._last_flush = time.monotonic()
        #: Chunks stored by this writer (a caller can tell a write that flushed from one that only buffered).
        self.flushed = 0

    @property
    def dropped(self) -> int:
        """Bytes beyond the cap."""
        return max(0, self.seen - self.max_bytes)

    def write(self, data: bytes) -> None:
        """Take the next bytes of the stream."""
        start = self.seen
        self.seen += len(data)
        # Skip what a previous writer already stored, and everything past the cap.
        lo = max(start, self.stored)
        hi = min(self.seen, self.max_bytes)
        if hi > lo:
            self._buf += data[lo - start : hi - start]
        if len(self._buf) >= self.flush_bytes or time.monotonic() - self._last_flush >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        """Store buffered bytes as one chunk."""
        self._last_flush = time.monotonic()
        if not self._buf:
            return
        self.blobs.put(_offset_key(self.prefix, self._buf_start), bytes(self._buf))
        self._buf_start += len(self._buf)
        self._buf.clear()
        self.flushed += 1

    def close(self) -> None:
        """Flush, and record the truncation marker if bytes were dropped."""
        self.flush()
        if self.dropped:
            note = f"\n[mayfly: log truncated at {self.max_bytes} bytes; {self.dropped} more bytes dropped]\n"
            self.blobs.put(self.prefix + _MARKER, note.encode())

    @property
    def size(self) -> int:
        """Bytes of the stream that were kept."""
        return min(self.seen, self.max_bytes)


def stored_size(blobs: BlobStore, prefix: str) -> int:
    """Contiguous bytes already stored under ``prefix``."""
    end = 0
    for key in blobs.list(prefix):
        name = key[len(prefix) :]
        if not name.isdigit():
            continue
        offset = int(name)
        if offset > end:
            break
        end = max(end, offset + len(blobs.get(key)))
    return end


def read_log(
    blobs: BlobStore, task_id: str, attempt: int, start: int = 0, *, with_marker: bool = True
) -> Iterator[bytes]:
    """Yield the stored log from byte ``start``, then the truncation marker if any and asked for."""
    prefix = log_prefix(task_id, attempt)
    pos = 0
    marker = None
    for key in blobs.list(prefix):
        name = key[len(prefix) :]
        if name == _MARKER:
            marker = blobs.get(key)
            continue
        if not name.isdigit():
            continue
        offset = int(name)
        if offset > pos:
            break  # a gap: a chunk is still being written
        data = blobs.get(key)
        end = offset + len(data)
        if end <= pos:
            continue
        piece = data[pos - offset :]
        if pos + len(piece) > start:
            yield piece[max(0, start - pos) :]
        pos = end
    if marker is not None and with_marker:
        yield marker
