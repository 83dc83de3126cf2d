"""Running a control plane and runners in threads of one process (``mayfly server``, ``mayfly run``).

Each loop holds its lock on the home (:mod:`mayfly.core.homelock`) while it runs: one
control plane, one webhook deliverer and one runner per target on a home. On a
PostgreSQL store the control plane and the deliverer take no lock: any number run at
once, and each claims its work in the store; runners keep their per-home lock. A loop whose
lock another process holds (a ``mayfly runner --target local`` beside a server, a
second ``mayfly run``) does not fail: it logs once, waits, and takes over when that
process exits. ``mayfly runner`` asks for ``exclusive`` runners instead: it is refused
with :class:`~mayfly.core.errors.AlreadyRunning` when its target already has one.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mayfly.core.app import Mayfly
from mayfly.core.config import Home
from mayfly.core.control import ControlPlane
from mayfly.core.delivery import Deliverer
from mayfly.core.errors import Unsupported
from mayfly.core.homelock import HomeLock, control_lock, held, runner_lock, server_lock, webhooks_lock
from mayfly.core.plugins import default_plugins
from mayfly.core.provider import ProviderContext
from mayfly.core.runner import Runner
from mayfly.core.secrets import SecretBox
from mayfly.core.targets import validate_settings

log = logging.getLogger("mayfly.serving")


def server_running(root: Path) -> bool:
    """True when some ``mayfly server`` runs on the home at ``root``."""
    return held(server_lock(root).path)


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


#: How often a loop waiting for another process's lock looks again.
LOCK_POLL = 0.5


class Serving:
    """A control plane, the webhook deliverer and a runner per target, each in its own thread.

    ``targets`` are served by runners only where their runner is embedded (``mayfly
    server``, ``mayfly run``); ``all_runners`` serves every one of them (``mayfly runner
    --target T``, also for a target added with ``--remote-runner``). ``exclusive`` makes
    :meth:`start` refuse with :class:`~mayfly.core.errors.AlreadyRunning` when a runner's
    lock is held elsewhere, instead of waiting for it; ``announce_waits`` logs such a wait
    as a warning.
    """

    def __init__(
        self,
        mf: Mayfly,
        targets: list[str],
        *,
        control: bool = True,
        runners: bool = True,
        all_runners: bool = False,
        exclusive: bool = False,
        announce_waits: bool = True,
        runner_capacity: int | None = None,
    ) -> None:
        self.mf = mf
        self.targets = targets
        self.exclusive = exclusive
        #: Log a wait for another process's lock as a warning (a server), or only at INFO (``mayfly run``,
        #: whose output is the task's log).
        self._wait_level = logging.WARNING if announce_waits else logging.INFO
        self.stop_event = threading.Event()
        self.control: ControlPlane | None = mf.control_plane(targets) if control else None
        #: Webhooks are sent wherever a control plane runs (the outbox is in its store).
        self.deliverer: Deliverer | None = mf.deliverer() if control else None
        served = [t for t in targets if all_runners or mf.targets.get(t).embedded_runner]
        #: ``runner_capacity``: most attempts at once in each runner of this process (default: its target's capacity,
        #: the limit of the whole target; a pool of runners on several machines shares it).
        self.runners: list[Runner] = [mf.runner(t, concurrency=runner_capacity) for t in served] if runners else []
        self._threads: list[threading.Thread] = []
        self._locks: list[HomeLock] = []

    def start(self) -> None:
        """Check every provider first (a clear error beats a dead thread), then start the threads."""
        root = self.mf.home.root
        runner_locks = [runner_lock(root, r.target) for r in self.runners]
        if self.exclusive:
            for lock in runner_locks:
                try:
                    lock.acquire()
                except BaseException:
                    self._release_all()
                    raise
                self._locks.append(lock)
        for runner in self.runners:
            runner.provider.check()
        # On PostgreSQL every control plane and deliverer runs at once: each piece of work is claimed in the
        # store (docs/decisions.md, "Several control planes on one PostgreSQL store"). On SQLite, one per home.
        shared = self.mf.store.is_postgres
        if self.control is not None:
            self._spawn("control", self.control.run, None if shared else control_lock(root))
        if self.deliverer is not None:
            self._spawn("webhooks", self.deliverer.run, None if shared else webhooks_lock(root))
        for runner, lock in zip(self.runners, runner_locks, strict=True):
            self._spawn(f"runner-{runner.target}", runner.run, None if self.exclusive else lock)

    def _spawn(self, name: str, fn: Callable[[threading.Event], None], lock: HomeLock | None) -> None:
        def body() -> None:
            try:
                if lock is not None and not self._wait_for(lock):
                    return
                fn(self.stop_event)
            except Exception:
                log.exception("%s stopped with an error", name)
                self.stop_event.set()
            finally:
                if lock is not None:
                    lock.release()

        thread = threading.Thread(target=body, name=f"mayfly-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _wait_for(self, lock: HomeLock) -> bool:
        """Take ``lock``, waiting while another process holds it; False if stopped first."""
        if lock.try_acquire():
            return True
        log.log(
            self._wait_level,
            "%s already runs on %s%s; this process takes over when it exits",
            lock.role,
            lock.root,
            lock.holder_text(),
        )
        while not self.stop_event.wait(LOCK_POLL):
            if lock.try_acquire():
                log.log(self._wait_level, "%s: taken over", lock.role)
                return True
        return False

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loops; containers keep running and are reattached by the next runner."""
        self.stop_event.set()
        for thread in self._threads:
            thread.join(timeout)
        self._release_all()

    def _release_all(self) -> None:
        for lock in self._locks:
            lock.release()
        self._locks.clear()

    def in_flight(self) -> int:
        """Attempts the runners of this process are watching."""
        return sum(r.busy() for r in self.runners)
