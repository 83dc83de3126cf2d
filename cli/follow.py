"""Following a task: stream its log as it is written and wait for its end."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from rich.status import Status

from mayfly.cli.output import err_console
from mayfly.core.app import Mayfly
from mayfly.core.errors import ExitCode
from mayfly.core.models import TaskStatus
from mayfly.core.records import Task

if TYPE_CHECKING:
    from mayfly.cli.remote import RemoteMayfly


def follow(
    mf: Mayfly | RemoteMayfly,
    project_id: str,
    task_id: str,
    *,
    poll: float = 0.1,
    on_idle: Callable[[], None] | None = None,
    show_status: bool = True,
) -> Task:
    """Write the task's log to stdout as it grows; return the task once it has ended.

    Against a server, the log comes from its streaming endpoint (no polling here).
    """
    if not isinstance(mf, Mayfly):
        return mf.tasks.follow(task_id, sys.stdout.buffer)
    pos = 0
    attempt = 0
    out = sys.stdout.buffer
    status = Status("queued", console=err_console) if show_status and err_console.is_terminal else None
    if status:
        status.start()
    try:
        while True:
            task = mf.tasks.get(project_id, task_id)
            if task.attempt != attempt:
                if attempt and pos:
                    out.write(f"\n[mayfly: attempt {attempt} ended; attempt {task.attempt} starting]\n".encode())
                attempt, pos = task.attempt, 0
            if status:
                status.update(f"{task.status} ({task.code_name}, {task.id})")
                if task.task_status is TaskStatus.RUNNING:
                    status.stop()
                    status = None
            terminal = task.task_status.terminal
            wrote = False
            for chunk in mf.tasks.log(project_id, task_id, attempt or None, pos, with_marker=terminal):
                if status:
                    status.stop()
                    status = None
                out.write(chunk)
                pos += len(chunk)
                wrote = True
            if wrote:
                out.flush()
            if terminal:
                return task
            if on_idle:
                on_idle()
            time.sleep(poll)
    finally:
        if status:
            status.stop()


def task_exit_code(task: Task) -> int:
    """What ``mayfly run`` exits with: the container's code, or 124 for a timeout, 130 if cancelled."""
    if task.task_status is TaskStatus.TIMEOUT:
        return int(ExitCode.TIMEOUT)
    if task.task_status is TaskStatus.CANCELLED:
        return int(ExitCode.CANCELLED)
    if task.exit_code is not None:
        return min(max(task.exit_code, 0), 255)
    return 0 if task.task_status is TaskStatus.COMPLETE else int(ExitCode.FAILED)


def summary(task: Task) -> str:
    """One line on how a task ended."""
    took = f" in {task.duration_ms / 1000:.2f}s" if task.duration_ms is not None else ""
    line = f"task {task.id} {task.status}{took}"
    if task.reason:
        line += f": {task.msg or task.reason}"
    return line
