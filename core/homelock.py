"""Exclusive locks on files of a home: one ``mayfly server``, one control plane and one runner per target.

A home's queues and task directories are files on one machine, so two runners of one
target on one home would each take the other's messages for lost attempts, and two
servers ran tasks up to four times (issue 13). Each role takes an ``flock`` on its own
file under ``MAYFLY_HOME`` (the kernel drops it when the process dies, even on
``kill -9``) and writes who holds it into the file, so a refused process can say which
pid on which host is in its way.

- ``server.lock``: ``mayfly server``; a second one is refused (:class:`AlreadyRunning`).
- ``locks/control.lock``: the control plane (a server's, or a ``mayfly run``'s).
- ``locks/webhooks.lock``: the webhook deliverer.
- ``locks/runner-<target>.lock``: the runner of one target; ``mayfly runner`` is refused
  when it is held, a runner embedded in ``mayfly server`` or ``mayfly run`` waits for it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

from mayfly.core.dbfaults import storage_faults
from mayfly.core.errors import AlreadyRunning

#: How long :meth:`HomeLock.acquire` keeps trying: long enough to pass over a probe
#: (:func:`held` takes the lock shared for an instant), far shorter than any real holder.
_PROBE_GRACE = 0.5


def server_lock(root: Path) -> HomeLock:
    """The lock a ``mayfly server`` holds on the home at ``root``."""
    return HomeLock(root, root / "server.lock", "a mayfly server")


def control_lock(root: Path) -> HomeLock:
    """The lock the home's control plane holds."""
    return HomeLock(root, root / "locks" / "control.lock", "a control plane")


def webhooks_lock(root: Path) -> HomeLock:
    """The lock the home's webhook deliverer holds."""
    return HomeLock(root, root / "locks" / "webhooks.lock", "a webhook deliverer")


def runner_lock(root: Path, target: str) -> HomeLock:
    """The lock the runner of ``target`` holds (target names are safe file names)."""
    return HomeLock(root, root / "locks" / f"runner-{target}.lock", f"a runner for target {target!r}")


class HomeLock:
    """An exclusive ``flock`` on one file, with the holder's pid and host written inside."""

    def __init__(self, root: Path, path: Path, role: str) -> None:
        #: The home the lock belongs to (named in the refusal).
        self.root = root
        self.path = path
        #: What holds it, in words: "a mayfly server", "a runner for target 'local'".
        self.role = role
        self._fd: int | None = None

    @property
    def held_here(self) -> bool:
        """True while this object holds the lock."""
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Take the lock if it is free; never waits."""
        if self._fd is not None:
            return True
        with storage_faults():  # a read-only or full home: one line, exit 5
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time(), "argv": sys.argv[1:3]}
        with contextlib.suppress(OSError):  # a full disk must not stop a server from starting
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)
        return True

    def acquire(self) -> None:
        """Take the lock or raise :class:`AlreadyRunning` naming its holder."""
        deadline = time.monotonic() + _PROBE_GRACE
        while not self.try_acquire():
            if time.monotonic() >= deadline:
                raise AlreadyRunning(
                    f"{self.role} already runs on {self.root}{self.holder_text()}: "
                    "stop it first, or use another MAYFLY_HOME",
                    **self.holder(),
                )
            time.sleep(0.05)

    def holder(self) -> dict[str, object]:
        """Who holds the lock, as written into the file (empty when unknown)."""
        try:
            data = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}
        return {k: data[k] for k in ("pid", "host") if k in data}

    def holder_text(self) -> str:
        """`` (pid 123 on host x)``, or nothing when the file does not say."""
        who = self.holder()
        if "pid" not in who:
            return ""
        return f" (pid {who['pid']} on {who.get('host', 'an unknown host')})"

    def release(self) -> None:
        """Let the lock go (closing the file is enough; the holder record is cleared first)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        os.close(self._fd)
        self._fd = None


def held(path: Path) -> bool:
    """True when some process holds the lock at ``path`` (an instant's shared lock tells)."""
    if not path.exists():
        return False
    with path.open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
        return False
