"""A locked or full store is ``store_unavailable``: one line and exit 5 in the CLI, 503 + Retry-After in the API.

Issue 13 item 4: a write lock held past the busy timeout, or a full disk, escaped as a
raw ``sqlite3.OperationalError`` (a traceback and rc 1; a 500 from the API). Each test
makes the fault for real (a second SQLite connection holding ``BEGIN IMMEDIATE``; a
small tmpfs home filled to the last byte) against a real ``mayfly server`` and the CLI
as a subprocess, then checks the same request works once the fault is gone.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest

from mayfly.cli.context import resolve_runtime
from mayfly.core.app import Mayfly
from mayfly.core.codes import CodeOptions
from mayfly.core.config import Home

pytestmark = pytest.mark.slow

#: The server and the CLI give up on a held lock after this many seconds.
BUSY = {"MAYFLY_STORE_BUSY_TIMEOUT": "1"}


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MAYFLY_HOME": str(home), **BUSY}
    env.pop("MAYFLY_URL", None)
    env.pop("MAYFLY_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "mayfly.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


def _register(home: Path) -> None:
    mf = Mayfly(Home(home), resolve_runtime)
    try:
        mf.codes.register(mf.project_id(), "hello", "mayfly-test/busybox:latest", CodeOptions(command="true"))
    finally:
        mf.close()


def _assert_one_line_unavailable(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 5, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "store unavailable" in lines[0]


def _assert_503(resp: httpx.Response) -> None:
    assert resp.status_code == 503, resp.text
    body = resp.json()
    assert body["code"] == "store_unavailable"
    assert "store unavailable" in body["message"]
    assert int(resp.headers["Retry-After"]) >= 1


def _task_count(home: Path) -> int:
    with contextlib.closing(sqlite3.connect(home / "mayfly.db")) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM tasks").fetchone()[0])


@contextlib.contextmanager
def _write_lock(db: Path) -> Iterator[None]:
    """Another process's writer: SQLite's write lock held until the block ends."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


def test_locked_store_is_unavailable_in_cli_and_api(
    tmp_path: Path, start_server: Callable[..., AbstractContextManager]
) -> None:
    home = tmp_path / "home"
    _register(home)
    with start_server(tmp_path, "default", env=BUSY) as srv:
        body = {"code_name": "hello", "payload": {"n": 1}}
        with _write_lock(home / "mayfly.db"):
            _assert_one_line_unavailable(_cli(home, "task", "queue", "hello"))
            _assert_503(httpx.post(f"{srv.url}/v1/tasks", json=body, headers=srv.bearer, timeout=30))
        assert _task_count(home) == 0  # the refused requests changed nothing
        # The fault gone, the same requests work.
        assert _cli(home, "task", "queue", "hello").returncode == 0
        assert httpx.post(f"{srv.url}/v1/tasks", json=body, headers=srv.bearer, timeout=30).status_code == 201


def test_concurrent_requests_behind_a_held_lock_each_answer_503(
    tmp_path: Path, start_server: Callable[..., AbstractContextManager]
) -> None:
    # The server's writers used to queue on one mutex, each then waiting its own busy timeout
    # (1 s here): the eighth request waited eight of them, outlived the 6 s lock and was not
    # refused. Now each waits one busy timeout at most, so all are refused while the lock holds.
    home = tmp_path / "home"
    _register(home)
    with start_server(tmp_path, "default", env=BUSY) as srv:
        body = {"code_name": "hello", "payload": {"n": 1}}
        locked = threading.Event()

        def hold_lock() -> None:
            with _write_lock(home / "mayfly.db"):
                locked.set()
                time.sleep(6)

        def post(_: int) -> httpx.Response:
            return httpx.post(f"{srv.url}/v1/tasks", json=body, headers=srv.bearer, timeout=60)

        holder = threading.Thread(target=hold_lock)
        holder.start()
        locked.wait(10)
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(post, range(8)))
        holder.join()
        for resp in answers:
            _assert_503(resp)
        assert _task_count(home) == 0


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MB tmpfs: a home on it fills up for real (root only)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(disk: Path) -> Path:
    """Take every free byte of ``disk``; the file returned gives them back when deleted."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 4096, 1):
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * size):
                    pass
    finally:
        os.close(fd)
    return filler


def _checkpoint(db: Path) -> None:
    """Empty the WAL so the next commit must grow a file (a reused WAL needs no new bytes)."""
    with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def test_full_disk_is_unavailable_in_cli_and_api(
    small_disk: Path, start_server: Callable[..., AbstractContextManager]
) -> None:
    home = small_disk / "home"
    _register(home)
    zip_dir = small_disk.parent / "code"
    zip_dir.mkdir()
    (zip_dir / "main.sh").write_text("echo hi\n")
    (zip_dir / "data.bin").write_bytes(os.urandom(200_000))  # does not compress: the zip needs the space
    with start_server(small_disk, "default", env=BUSY) as srv:
        body = {"code_name": "hello", "payload": {"n": 1}}
        _checkpoint(home / "mayfly.db")
        filler = _fill(small_disk)
        try:
            _assert_one_line_unavailable(_cli(home, "task", "queue", "hello"))
            _assert_503(httpx.post(f"{srv.url}/v1/tasks", json=body, headers=srv.bearer, timeout=30))
            # A code package goes to the local blob store first: ENOSPC there is the same error.
            push = _cli(home, "code", "push", str(zip_dir), "--name", "big", "--runtime", "shell")
            _assert_one_line_unavailable(push)
        finally:
            filler.unlink()
        assert _task_count(home) == 0
        assert _cli(home, "task", "queue", "hello").returncode == 0
        assert httpx.post(f"{srv.url}/v1/tasks", json=body, headers=srv.bearer, timeout=30).status_code == 201


def test_read_only_home_is_unavailable(small_disk: Path) -> None:
    home = small_disk / "home"
    _register(home)
    assert _cli(home, "task", "queue", "hello").returncode == 0
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    try:
        _assert_one_line_unavailable(_cli(home, "task", "queue", "hello"))
        _assert_one_line_unavailable(_cli(home, "server", "--port", "0"))
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    assert _task_count(home) == 1
