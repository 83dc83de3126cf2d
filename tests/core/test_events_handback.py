"""An event batch that failed to apply, and could not be handed back either, comes back on the next pass.

The store's write lock is held past the busy timeout, so the control plane cannot apply a
runner's event; the queue's file is locked too when it tries to hand the batch back. It
used to stay leased for the lease's 60 s after both locks were gone (a real server's tasks
sat in ``running`` for a minute after a lock: tests/cli/test_server_faults.py). Now the
next pass hands it back first, and applies it. Real SQLite files, real locks.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.nullprovider import NullPlugin
from mayfly.core.app import Mayfly
from mayfly.core.codes import CodeOptions, RuntimeInfo
from mayfly.core.config import Home
from mayfly.core.errors import MayflyError
from mayfly.core.plugins import build_plugins
from mayfly.core.tasks import TaskOptions


def _lock(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    conn.execute("BEGIN IMMEDIATE")
    return conn


@pytest.fixture
def null_home(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Mayfly]:
    monkeypatch.setenv("MAYFLY_STORE_BUSY_TIMEOUT", "0.2")
    mf = Mayfly(Home(home), lambda name: RuntimeInfo(name, name, None), plugins=build_plugins((NullPlugin(),)))
    mf.targets.add("null", "null", {}, capacity=4)
    mf.codes.register(mf.project_id(), "noop", "none", CodeOptions(command="true", target="null"))
    yield mf
    mf.close()


def test_a_batch_that_could_not_be_handed_back_is_applied_once_the_locks_are_gone(
    null_home: Mayfly, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mf = null_home
    pid = mf.project_id()
    task = mf.tasks.queue(pid, "noop", "{}", TaskOptions())
    control, runner = mf.control_plane(["null"]), mf.runner("null")
    assert control.step() == 2  # dispatched, and published to the runner
    runner.step()
    assert runner.wait_idle()
    wiring = control.targets["null"]
    assert wiring.queues.get("events").depth() == 1  # the attempt's end, waiting to be applied
    before = mf.tasks.get(pid, task.id).status

    store_lock = _lock(home / "mayfly.db")
    locks = [store_lock]
    queue_class = type(wiring.queues.get("events"))
    hand_back = queue_class.extend_many

    def queue_locked_too(self: Any, messages: Any, lease: float) -> list[bool]:
        # The apply failed on the store's lock; the queue's file is locked as well before the (real) hand-back.
        if len(locks) == 1:
            locks.append(_lock(home / "queues.db"))
        return hand_back(self, messages, lease)

    monkeypatch.setattr(queue_class, "extend_many", queue_locked_too)
    with pytest.raises(MayflyError):
        control.apply_events("null", wiring)
    assert len(locks) == 2

    store_lock.rollback()
    with pytest.raises(MayflyError):  # the hand-back still fails: nothing is received meanwhile
        control.apply_events("null", wiring)
    assert mf.tasks.get(pid, task.id).status == before

    locks[1].rollback()
    assert control.apply_events("null", wiring) == 1  # handed back, received and applied, well within the lease
    assert mf.tasks.get(pid, task.id).status == "complete"
    for conn in locks:
        conn.close()
