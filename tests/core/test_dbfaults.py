"""The storage boundary below the loops: embedded queues, blobs and logs raise StoreUnavailable, then recover.

The CLI and API tests (tests/cli/test_store_unavailable.py) reach the store; the runner
and the control plane reach the embedded queues and the log store, so these faults are
made for real here (a second SQLite connection holding the write lock, a full tmpfs) on
the same objects the loops use, and each object must work again once the fault clears.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mayfly.core.blobs.local import LocalBlobStore
from mayfly.core.errors import StoreUnavailable
from mayfly.core.logstore import LogWriter, read_log
from mayfly.core.queues.embedded import EmbeddedBroker


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB tmpfs (root only)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@contextlib.contextmanager
def _filled(disk: Path) -> Iterator[None]:
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 4096, 1):
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * size):
                    pass
    finally:
        os.close(fd)
    try:
        yield
    finally:
        filler.unlink()


def test_locked_queue_file_is_unavailable_and_the_queue_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAYFLY_STORE_BUSY_TIMEOUT", "0.2")
    broker = EmbeddedBroker(tmp_path / "queues.db")
    queue = broker.queue("local.tasks")
    queue.send("first")
    other = sqlite3.connect(tmp_path / "queues.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    with pytest.raises(StoreUnavailable, match="database is locked"):
        queue.send("refused")
    other.execute("ROLLBACK")
    other.close()
    queue.send("second")
    assert [m.body for m in queue.receive(5, lease=30)] == ["first", "second"]
    broker.close()


def test_locked_queue_receive_is_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAYFLY_STORE_BUSY_TIMEOUT", "0.2")
    broker = EmbeddedBroker(tmp_path / "queues.db")
    queue = broker.queue("local.tasks")
    queue.send("waiting")
    other = sqlite3.connect(tmp_path / "queues.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreUnavailable):
            queue.receive(1, lease=30)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert [m.body for m in queue.receive(1, lease=30)] == ["waiting"]
    broker.close()


def test_full_disk_queue_blobs_and_logs_are_unavailable_then_recover(small_disk: Path) -> None:
    broker = EmbeddedBroker(small_disk / "queues.db")
    queue = broker.queue("local.events")
    blobs = LocalBlobStore(small_disk / "blobs")
    body = "x" * 200_000
    queue.send("before")
    with _filled(small_disk):
        with pytest.raises(StoreUnavailable, match="full"):
            queue.send_many([body] * 5)
        with pytest.raises(StoreUnavailable, match="No space left"):
            blobs.put("results/t/1", os.urandom(100_000))
        writer = LogWriter(blobs, "t", 1, 10 << 20, fresh=True)
        writer.write(os.urandom(100_000))
        with pytest.raises(StoreUnavailable):
            writer.flush()
    # The same objects work once there is room again: the failed commit left no open transaction.
    queue.send("after")
    assert [m.body for m in queue.receive(5, lease=30)] == ["before", "after"]
    blobs.put("results/t/1", b"{}")
    writer.flush()
    assert len(b"".join(read_log(blobs, "t", 1))) == 100_000
    broker.close()
