"""Cross-process wake-ups for the embedded queues: a receiver sleeps until a sender pokes it.

Each waiting receiver binds a Unix datagram socket in Linux's abstract namespace
and leaves a marker file ``<dir>/<queue>/<pid>-<n>`` naming it; a sender, after
its commit, sends one byte to every listener of that queue. A datagram sent
between a receiver's "queue is empty" check and its wait stays in the socket's
buffer, so no wake-up is lost. Listeners of dead processes are found by the
refused send and their marker removed.

Where abstract sockets do not exist (not Linux), receivers fall back to polling.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import os
import select
import socket
import sys
import threading
import time
from pathlib import Path

_counter = itertools.count()
SUPPORTED = sys.platform.startswith("linux")


class Listener:
    """One receiver's socket and marker file."""

    def __init__(self, hub: WakeupHub, queue: str) -> None:
        self.hub = hub
        self.marker = hub.dir(queue) / f"{os.getpid()}-{next(_counter)}"
        self.name = hub.address(self.marker.name, queue)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.name)
        self.sock.setblocking(False)
        self.marker.touch()

    def wait(self, timeout: float) -> bool:
        """Sleep until poked or ``timeout``; True when poked. Pending pokes are drained."""
        return _wait([self], timeout)

    def drain(self) -> None:
        """Forget the pokes received so far (one wake-up answers them all)."""
        with contextlib.suppress(BlockingIOError):
            while True:
                self.sock.recv(16)

    def close(self) -> None:
        self.marker.unlink(missing_ok=True)
        self.sock.close()


class WakeupHub:
    """The wake-up registry of one directory (one Mayfly home's queues)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
        self._local = threading.local()
        self._out = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) if SUPPORTED else None
        if self._out is not None:
            self._out.setblocking(False)
        self._out_lock = threading.Lock()

    def dir(self, queue: str) -> Path:
        path = self.root / queue
        path.mkdir(parents=True, exist_ok=True)
        return path

    def address(self, marker: str, queue: str) -> str:
        return f"\0mayfly-{self._key}-{queue}-{marker}"

    def listener(self, queue: str) -> Listener | None:
        """This thread's listener for ``queue`` (created on first use), or None where unsupported."""
        if not SUPPORTED:
            return None
        listeners: dict[str, Listener] = self._local.__dict__.setdefault("listeners", {})
        if queue not in listeners:
            listeners[queue] = Listener(self, queue)
        return listeners[queue]

    def wait_any(self, queues: list[str], timeout: float) -> bool:
        """Sleep until any of ``queues`` is poked or ``timeout`` passes; True when poked.

        Uses this thread's listeners, the ones :meth:`listener` hands to receivers, so a poke
        is never consumed by one and missed by the other. Where unsupported it just sleeps.
        """
        listeners = [lst for lst in (self.listener(q) for q in queues) if lst is not None]
        if not listeners:
            time.sleep(max(0.0, timeout))
            return False
        return _wait(listeners, timeout)

    def notify(self, queue: str) -> None:
        """Poke every listener of ``queue`` (other processes' included)."""
        if self._out is None:
            return
        try:
            markers = os.listdir(self.root / queue)
        except FileNotFoundError:
            return
        for marker in markers:
            try:
                with self._out_lock:
                    self._out.sendto(b"!", self.address(marker, queue))
            except OSError as exc:
                if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
                    (self.root / queue / marker).unlink(missing_ok=True)  # its process is gone
                # EAGAIN: its buffer is full of pokes already, which is as good as one more.

    def close(self) -> None:
        for listener in getattr(self._local, "listeners", {}).values():
            listener.close()
        self._local.listeners = {}
        if self._out is not None:
            self._out.close()
            self._out = None


def _wait(listeners: list[Listener], timeout: float) -> bool:
    """Sleep until one of ``listeners`` is poked or ``timeout``; drain the poked ones."""
    ready, _, _ = select.select([lst.sock for lst in listeners], [], [], max(0.0, timeout))
    for lst in listeners:
        if lst.sock in ready:
            lst.drain()
    return bool(ready)
