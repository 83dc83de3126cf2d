"""Log chunks: capped with a marker, resumable after a reattach, overlap-safe, readable while written."""

from __future__ import annotations

from pathlib import Path

from mayfly.core.blobs.local import LocalBlobStore
from mayfly.core.logstore import LogWriter, read_log


def _read(blobs: LocalBlobStore, **kw: object) -> bytes:
    return b"".join(read_log(blobs, "t1", 1, **kw))  # type: ignore[arg-type]


def test_every_byte_is_kept_under_the_cap(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path)
    w = LogWriter(blobs, "t1", 1, max_bytes=1 << 20, flush_bytes=100)
    data = b"".join(f"line {i}\n".encode() for i in range(10_000)) + b"last line without newline"
    for i in range(0, len(data), 37):
        w.write(data[i : i + 37])
    w.close()
    assert _read(blobs) == data
    assert (w.size, w.dropped) == (len(data), 0)


def test_the_cap_keeps_the_head_and_adds_a_marker(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path)
    w = LogWriter(blobs, "t1", 1, max_bytes=1000)
    for _ in range(100):
        w.write(b"x" * 100)
    w.close()
    text = _read(blobs)
    assert text.startswith(b"x" * 1000)
    assert text[1000:] == b"\n[mayfly: log truncated at 1000 bytes; 9000 more bytes dropped]\n"
    assert _read(blobs, with_marker=False) == b"x" * 1000
    assert (w.size, w.dropped) == (1000, 9000)


def test_a_second_writer_resumes_after_what_is_stored(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path)
    stream = bytes(range(256)) * 40
    first = LogWriter(blobs, "t1", 1, max_bytes=1 << 20)
    first.write(stream[:3000])
    first.flush()  # the runner dies here; a new runner re-reads the container's log from the start
    second = LogWriter(blobs, "t1", 1, max_bytes=1 << 20)
    assert second.stored == 3000
    for i in range(0, len(stream), 512):
        second.write(stream[i : i + 512])
    second.close()
    assert _read(blobs) == stream


def test_overlapping_chunks_are_read_once(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path)
    blobs.put("logs/t1/1/000000000000000", b"abcdef")
    blobs.put("logs/t1/1/000000000000004", b"efgh")  # overlaps "ef"
    blobs.put("logs/t1/1/000000000000010", b"zz")  # a gap: not readable yet
    assert _read(blobs) == b"abcdefgh"
    assert _read(blobs, start=5) == b"fgh"
