"""Waiting for a task's end, for tests that drive a Mayfly in their own process."""

from __future__ import annotations

import time

from mayfly.core.app import Mayfly
from mayfly.core.records import Task


def wait_ended(mf: Mayfly, task_id: str, timeout: float = 60.0) -> Task:
    """The task once it has ended; raises AssertionError (failing the test) after ``timeout`` seconds."""
    pid = mf.project_id()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = mf.tasks.get(pid, task_id)
        if task.task_status.terminal:
            return task
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} still {mf.tasks.get(pid, task_id).status} after {timeout}s")
