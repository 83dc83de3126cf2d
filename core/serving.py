"""Running a control plane and runners in threads of one process (``mayfly server``, ``mayfly run``)."""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from pathlib import Path
from typing import IO, Any

from mayfly.core.app import Mayfly
from mayfly.core.config import Home
from mayfly.core.control import ControlPlane
from mayfly.core.delivery import Deliverer
from mayfly.core.errors import Unsupported
from mayfly.core.plugins import default_plugins
from mayfly.core.provider import ProviderContext
from mayfly.core.runner import Runner
from mayfly.core.secrets import SecretBox
from mayfly.core.targets import validate_settings

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


def remote_runner(
    target: str, provider: str, settings: dict[str, Any], home: Home, *, capacity: int = 10, lease: float = 30.0
) -> Runner:
    """A runner that needs no store: for a target whose runner runs in its own cloud.

    Everything comes from the provider's settings: its queues and blob store
    (:meth:`Provider.transport`) and its API. ``MAYFLY_HOME_ID`` names the owner in
    the labels/tags of its containers, so a restarted runner finds them again.
    """
    cls = default_plugins().registry.get(provider)
    validated = cls.Settings.model_validate(validate_settings(cls, settings))
    transport = cls.transport(validated, target)
    if transport is None:
        raise Unsupported(
            f"provider {provider!r} has no queues of its own; its runner must run beside the control plane "
            "(mayfly server)"
        )
    work_dir = home.ensure().run_dir / target
    work_dir.mkdir(parents=True, exist_ok=True)
    context = ProviderContext(
        blobs=transport.blobs, work_dir=work_dir, home_id=os.environ.get("MAYFLY_HOME_ID") or home.id, target=target
    )
    return Runner(
        target,
        cls(validated, context),
        transport.queues,
        transport.blobs,
        concurrency=capacity,
        lease=lease,
        # The control plane's key must be given to this runner (MAYFLY_SECRET_KEY) for tasks with secrets.
        open_secrets=SecretBox(home.secret_key_file).open,
    )


class Serving:
    """A control plane, the webhook deliverer and a runner per target, each in its own thread."""

    def __init__(self, mf: Mayfly, targets: list[str], *, control: bool = True, runners: bool = True) -> None:
        self.mf = mf
        self.targets = targets
        self.stop_event = threading.Event()
        self.control: ControlPlane | None = mf.control_plane(targets) if control else None
        #: Webhooks are sent wherever a control plane runs (the outbox is in its store).
        self.deliverer: Deliverer | None = mf.deliverer() if control else None
        embedded = [t for t in targets if mf.targets.get(t).embedded_runner]
        self.runners: list[Runner] = [mf.runner(t) for t in embedded] if runners else []
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Check every provider first (a clear error beats a dead thread), then start the threads."""
        for runner in self.runners:
            runner.provider.check()
        if self.control is not None:
            self._spawn("control", self.control.run)
        if self.deliverer is not None:
            self._spawn("webhooks", self.deliverer.run)
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
