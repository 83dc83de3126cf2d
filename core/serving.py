"""Running a control plane and runners in threads of one process (``mayfly server``, ``mayfly run``)."""

from __future__ import annotations

import fcntl
import logging
import threading
from pathlib import Path
from typing import IO

from mayfly.core.app import Mayfly
from mayfly.core.control import ControlPlane
from mayfly.core.runner import Runner

log = logging.getLogger("mayfly.serving")


class ServerLock:
    """A shared lock on ``server.lock`` held while a server runs; ``mayfly run`` checks it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: IO[str] | None = None

    def acquire(self) -> None:
        self._fh = self.path.open("a")
        fcntl.flock(self._fh, fcntl.LOCK_SH)

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


def server_running(path: Path) -> bool:
    """True when some ``mayfly server`` holds the home's server lock."""
    with path.open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
        return False


class Serving:
    """A control plane and a runner per target, each in its own thread."""

    def __init__(self, mf: Mayfly, targets: list[str], *, control: bool = True, runners: bool = True) -> None:
        self.mf = mf
        self.targets = targets
        self.stop_event = threading.Event()
        self.control: ControlPlane | None = mf.control_plane(targets) if control else None
        embedded = [t for t in targets if mf.targets.get(t).embedded_runner]
        self.runners: list[Runner] = [mf.runner(t) for t in embedded] if runners else []
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Check every provider first (a clear error beats a dead thread), then start the threads."""
        for runner in self.runners:
            runner.provider.check()
        if self.control is not None:
            self._spawn("control", self.control.run)
        for runner in self.runners:
            self._spawn(f"runner-{runner.target}", runner.run)

    def _spawn(self, name: str, fn: object) -> None:
        def body() -> None:
            try:
                fn(self.stop_event)  # type: ignore[operator]
            except Exception:
                log.exception("%s stopped with an error", name)
                self.stop_event.set()

        thread = threading.Thread(target=body, name=f"mayfly-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loops; containers keep running and are reattached by the next runner."""
        self.stop_event.set()
        for thread in self._threads:
            thread.join(timeout)

    def in_flight(self) -> int:
        """Attempts the runners of this process are watching."""
        return sum(r.busy() for r in self.runners)
