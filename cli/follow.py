"""Following a task: stream its log as it is written and wait for its end.

A :class:`Follower` remembers which attempt it is on and how many bytes of it it
has written, so following again (``mayfly run`` after Ctrl-C, while the task is
being cancelled) goes on where it stopped instead of printing the log twice.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from rich.status import Status

from mayfly.cli.output import err_console, plain
from mayfly.cli.terminal import LogSink, uninterrupted
from mayfly.core.app import Mayfly
from mayfly.core.errors import ExitCode
from mayfly.core.models import TaskStatus
from mayfly.core.records import Task

if TYPE_CHECKING:
    from mayfly.cli.remote import RemoteMayfly

#: The line a followed log shows between two attempts (the server's stream sends the same).
_MARKER = re.compile(rb"\n\[mayfly: attempt (\d+) ended; attempt (\d+) starting\]\n")
_MARKER_MAX = 80


def marker(ended: int, starting: int) -> bytes:
    """The line written between attempt ``ended`` and attempt ``starting``."""
    return f"\n[mayfly: attempt {ended} ended; attempt {starting} starting]\n".encode()


class Follower:
    """Writes one task's log to stdout as it grows; following twice never writes a byte twice."""

    def __init__(self, mf: Mayfly | RemoteMayfly, project_id: str, task_id: str, out: LogSink | None = None) -> None:
        self.mf = mf
        self.project_id = project_id
        self.task_id = task_id
        self.out = out or LogSink(sys.stdout.buffer)
        #: The attempt being written and how many bytes of its log are written.
        self.attempt = 0
        self.pos = 0
        # Remote streams: bytes of the current stream seen, where the current attempt began in it,
        # its last bytes (a marker may straddle two chunks) and how many bytes were written already.
        self._seen = 0
        self._base = 0
        self._tail = b""
        self._skip = 0

    def follow(self, *, poll: float = 0.1, on_idle: Callable[[], None] | None = None, show_status: bool = True) -> Task:
        """Write the log from where this follower stopped; return the task once it has ended."""
        try:
            if isinstance(self.mf, Mayfly):
                return self._local(self.mf, poll, on_idle, show_status)
            return self._remote(self.mf)
        finally:
            self.out.flush()

    # ------------------------------------------------------------ local home

    def _local(self, mf: Mayfly, poll: float, on_idle: Callable[[], None] | None, show_status: bool) -> Task:
        status = Status("queued", console=err_console) if show_status and err_console.is_terminal else None
        if status:
            status.start()
        try:
            while True:
                task = mf.tasks.get(self.project_id, self.task_id)
                if task.attempt != self.attempt:
                    if self.attempt and self.pos:
                        self.out.write(marker(self.attempt, task.attempt))
                    self.attempt, self.pos = task.attempt, 0
                if status:
                    status.update(plain(f"{task.status} ({task.code_name}, {task.id})"))
                    if task.task_status is TaskStatus.RUNNING:
                        status.stop()
                        status = None
                terminal = task.task_status.terminal
                for chunk in mf.tasks.log(
                    self.project_id, self.task_id, self.attempt or None, self.pos, with_marker=terminal
                ):
                    if status:
                        status.stop()
                        status = None
                    with uninterrupted():
                        self.out.write(chunk)
                        self.out.flush()
                        self.pos += len(chunk)
                if terminal:
                    return task
                if on_idle:
                    on_idle()
                time.sleep(poll)
        finally:
            if status:
                status.stop()

    # ------------------------------------------------------------ server

    def _remote(self, mf: RemoteMayfly) -> Task:
        # The server's stream starts at the latest attempt, from its first byte. A task not started yet
        # (attempt 0) has no log: the stream goes on into attempt 1 without a marker line.
        latest = max(1, mf.tasks.get(self.project_id, self.task_id).attempt)
        if latest == self.attempt:
            self._skip = self.pos
        else:
            if self.attempt and self.pos:
                self.out.write(marker(self.attempt, latest))
            self.attempt, self.pos, self._skip = latest, 0, 0
        self._seen = self._base = 0
        self._tail = b""
        return mf.tasks.follow(self.task_id, self)

    def write(self, chunk: bytes) -> int:
        """Take one chunk of the server's stream: note attempt changes and the position, write what is new."""
        with uninterrupted():
            window = self._tail + chunk
            offset = self._seen - len(self._tail)
            for found in _MARKER.finditer(window):
                end = offset + found.end()
                if end > self._base:
                    self.attempt, self._base = int(found.group(2)), end
            self._seen += len(chunk)
            self._tail = window[-_MARKER_MAX:]
            # Before the stream's first marker it replays the attempt from its first byte (see _skip).
            self.pos = self._seen - self._base if self._base else max(self.pos, self._seen)
            new = chunk
            if self._skip:
                drop = min(self._skip, len(new))
                self._skip -= drop
                new = new[drop:]
            if new:
                self.out.write(new)
                self.out.flush()
        return len(chunk)

    def flush(self) -> None:
        self.out.flush()


def follow(
    mf: Mayfly | RemoteMayfly,
    project_id: str,
    task_id: str,
    *,
    poll: float = 0.1,
    on_idle: Callable[[], None] | None = None,
    show_status: bool = True,
) -> Task:
    """Write the task's log to stdout as it grows; return the task once it has ended."""
    follower = Follower(mf, project_id, task_id)
    try:
        return follower.follow(poll=poll, on_idle=on_idle, show_status=show_status)
    finally:
        follower.out.close()


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
