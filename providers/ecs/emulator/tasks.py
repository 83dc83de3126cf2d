"""The Docker side of the emulator: each ECS task is one real container on the local engine.

Launch (a worker thread per RunTask'ed task): PENDING, find the image locally
(:mod:`~mayfly.providers.ecs.emulator.images`), open the awslogs stream, create
and start the container on the emulator's bridge network, RUNNING. A poller
thread lists the emulator's containers every ``poll_interval`` and finishes the
tasks whose container exited: exit code and OOM kill read from the engine,
DEPROVISIONING, the log stream drained to its last line, the container removed,
STOPPED. StopTask is ``docker stop`` with the container's ``stopTimeout``
(SIGTERM, or the image's STOPSIGNAL, then SIGKILL).

Containers carry ECS's agent labels and ``mayfly.ecs-emulator=<instance id>``;
on close every container of this emulator is removed. Containers left behind by
an emulator that was killed on this host are removed when the next one starts.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import docker.errors

from mayfly.providers.ecs.emulator import images, secrets
from mayfly.providers.ecs.emulator.backend import EcsBackend
from mayfly.providers.ecs.emulator.containerspec import ContainerSpec, container_spec
from mayfly.providers.ecs.emulator.cwlogs import LogGroupMissing, LogShipper, LogStream
from mayfly.providers.ecs.emulator.faults import PULL
from mayfly.providers.ecs.emulator.model import Task
from mayfly.providers.emulation import logpump

log = logging.getLogger(__name__)

LABEL = "mayfly.ecs-emulator"
LABEL_PID = "mayfly.ecs-emulator.pid"
LABEL_HOST = "mayfly.ecs-emulator.host"
OOM_REASON = "OutOfMemoryError: Container killed due to memory usage"
POLL_INTERVAL = 0.5
#: How long a stopped container's log stream may take to drain before the task is stopped anyway.
LOG_DRAIN_TIMEOUT = 30.0

_NAME_UNSAFE = re.compile(r"[^a-zA-Z0-9_.-]")


@dataclass
class _Live:
    """What the runner knows of one task's container beyond the API's view."""

    task: Task
    spec: ContainerSpec | None = None
    container_id: str | None = None
    log_stream: LogStream | None = None
    pumps: list[threading.Thread] = field(default_factory=list)
    finishing: bool = False


def _epoch(value: str | None) -> float | None:
    """Epoch seconds of a Docker RFC 3339 time (None for the zero time)."""
    if not value or value.startswith("0001-"):
        return None
    return logpump.parse_timestamp(value.encode()) / 1000


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class DockerTasks:
    """Runs the backend's tasks as containers (the backend's :class:`~.backend.Launcher`)."""

    def __init__(
        self,
        backend: EcsBackend,
        client: Any,
        logs: LogShipper,
        *,
        network: str = "bridge",
        rewrites: Mapping[str, str] | None = None,
        extra_hosts: Mapping[str, str] | None = None,
        poll_interval: float = POLL_INTERVAL,
        instance: str,
        aws_client: Callable[[str, str], Any] | None = None,
    ) -> None:
        self.backend = backend
        self.client = client
        self.logs = logs
        self.network = network
        self.rewrites = dict(rewrites or {})
        self.extra_hosts = dict(extra_hosts or {})
        self.poll_interval = poll_interval
        self.instance = instance
        #: boto3 client of (service, region) on the emulator: resolves the tasks' ``secrets``.
        self.aws_client = aws_client
        self.host_cpus = float(client.info().get("NCPU") or os.cpu_count() or 1)
        self._live: dict[str, _Live] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="ecs-emulator-task")
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self.reap_orphans()
        self._poller = threading.Thread(target=self._poll_loop, name="ecs-emulator-poller", daemon=True)
        self._poller.start()

    def close(self) -> None:
        """Stop polling; kill and remove every container of this emulator."""
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=10)
        # Removing the containers first ends their log streams, so no worker waits on them.
        self._remove_all()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._remove_all()

    def _remove_all(self) -> None:
        for container in self.client.api.containers(all=True, filters={"label": f"{LABEL}={self.instance}"}):
            self._remove(container["Id"])

    def reap_orphans(self) -> None:
        """Remove containers of emulators on this host whose process is gone."""
        host = socket.gethostname()
        for container in self.client.containers.list(all=True, filters={"label": LABEL}):
            labels = container.labels or {}
            pid = labels.get(LABEL_PID, "")
            if labels.get(LABEL_HOST) == host and pid.isdigit() and not _pid_alive(int(pid)):
                log.info("removing container %s of a dead emulator (pid %s)", container.name, pid)
                self._remove(container.id)

    # -------------------------------------------------------------- launch

    def launch(self, task: Task) -> None:
        with self._lock:
            self._live[task.arn] = _Live(task)
        self._pool.submit(self._launch, task)

    def _fail(self, task: Task, reason: str) -> None:
        with self.backend.lock:
            task.failed_to_start(self.backend.clock(), reason)
        self._finish(task.arn)

    def _launch(self, task: Task) -> None:
        try:
            self._launch_steps(task)
        except Exception as exc:
            if self._stop.is_set():
                return  # the emulator is closing: its containers are being removed
            log.exception("launch of %s failed", task.arn)
            self._fail(task, f"CannotStartContainerError: {exc}")

    def _launch_steps(self, task: Task) -> None:
        live = self._live[task.arn]
        if self._stop.is_set():
            return
        if self._stopped_early(task):
            return
        with self.backend.lock:
            task.pending(self.backend.clock())
            spec = container_spec(
                task,
                host_cpus=self.host_cpus,
                labels={LABEL: self.instance, LABEL_PID: str(os.getpid()), LABEL_HOST: socket.gethostname()},
                rewrites=self.rewrites,
            )
        live.spec = spec
        refs = list(task.definition.containers[0].get("secrets") or [])
        if refs:
            if self.aws_client is None:
                self._fail(task, f"{secrets.PREFIX}this emulator cannot read secrets")
                return
            try:
                spec.environment.update(secrets.resolve(refs, task.region, self.aws_client))
            except secrets.SecretUnavailable as exc:
                self._fail(task, str(exc))
                return
        try:
            if self.backend.faults.take(PULL, task.cluster.name) is not None:
                raise images.not_available(spec.image, [])
            image = images.resolve(self.client, spec.image)
        except images.ImageNotAvailable as exc:
            self._fail(task, str(exc))
            return
        with self.backend.lock:
            task.pulled(self.backend.clock(), image.id)
        if spec.awslogs is not None:
            try:
                live.log_stream = self.logs.open(spec.awslogs.region, spec.awslogs.group, spec.awslogs.stream)
            except LogGroupMissing as exc:
                self._fail(task, str(exc))
                return
        if self._stopped_early(task):
            return
        name = _NAME_UNSAFE.sub("-", f"ecs-{task.definition.family}-{task.definition.revision}-{task.id}")
        try:
            container = self.client.containers.create(
                image.reference,
                name=name,
                network=self.network,
                extra_hosts=self.extra_hosts or None,
                **spec.create_kwargs(),
            )
        except docker.errors.APIError as exc:
            self._fail(task, f"CannotCreateContainerError: {exc.explanation or exc}")
            return
        live.container_id = container.id
        if self._stop.is_set():
            self._remove(container.id)
            return
        try:
            container.start()
        except docker.errors.APIError as exc:
            self._remove(container.id)
            live.container_id = None
            self._fail(task, f"CannotStartContainerError: {exc.explanation or exc}")
            return
        container.reload()
        networks = (container.attrs.get("NetworkSettings") or {}).get("Networks") or {}
        address = (networks.get(self.network) or {}).get("IPAddress") or None
        if live.log_stream is not None:
            stream = live.log_stream
            live.pumps = logpump.follow(self.client, container.id, stream.write)
        with self.backend.lock:
            task.running(self.backend.clock(), container.id, address)
            stop_now = task.desired_status == "STOPPED"
        if stop_now:
            # StopTask arrived while the container was being created.
            self._docker_stop(container.id, spec.stop_timeout)

    def _stopped_early(self, task: Task) -> bool:
        """If StopTask came before the container exists, stop the task without one (True)."""
        with self.backend.lock:
            if task.desired_status != "STOPPED":
                return False
            task.exited(self.backend.clock(), None, None, None)
        self._finish(task.arn)
        return True

    # ---------------------------------------------------------------- stop

    def stop(self, task: Task) -> None:
        with self._lock:
            live = self._live.get(task.arn)
        if live is None or live.container_id is None or live.spec is None:
            return  # not started yet: the launch sees desiredStatus STOPPED
        threading.Thread(
            target=self._docker_stop,
            args=(live.container_id, live.spec.stop_timeout),
            name=f"ecs-emulator-stop-{task.id[:12]}",
            daemon=True,
        ).start()

    def _docker_stop(self, container_id: str, timeout: int) -> None:
        try:
            self.client.api.stop(container_id, timeout=timeout)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError:
            log.warning("docker stop of %s failed", container_id[:12], exc_info=True)

    # -------------------------------------------------------------- finish

    def _poll_loop(self) -> None:
        while not self._stop.wait(self.poll_interval):
            try:
                self._poll()
            except Exception:
                log.warning("polling the Docker engine failed", exc_info=True)

    def _poll(self) -> None:
        with self._lock:
            running = {
                live.container_id: live
                for live in self._live.values()
                if live.container_id is not None and not live.finishing
            }
        if not running:
            return
        states = {
            c["Id"]: c["State"]
            for c in self.client.api.containers(all=True, filters={"label": f"{LABEL}={self.instance}"})
        }
        for container_id, live in running.items():
            with self.backend.lock:
                started = live.task.last_status == "RUNNING"
            if not started:
                continue  # still launching
            if states.get(container_id, "removed") in ("exited", "dead", "removed"):
                live.finishing = True
                self._pool.submit(self._exited, live)

    def _exited(self, live: _Live) -> None:
        task = live.task
        exit_code: int | None = None
        reason: str | None = None
        finished_at: float | None = None
        try:
            state = self.client.api.inspect_container(live.container_id)["State"]
            exit_code = int(state.get("ExitCode", 0))
            finished_at = _epoch(state.get("FinishedAt"))
            if state.get("OOMKilled"):
                reason = OOM_REASON
        except docker.errors.NotFound:
            reason = "ContainerRemoved: the container was removed from the Docker engine outside the emulator"
        with self.backend.lock:
            task.exited(self.backend.clock(), exit_code, reason, finished_at)
        self._finish(task.arn)

    def _finish(self, arn: str) -> None:
        """Deprovision: drain the logs, remove the container, STOPPED."""
        with self._lock:
            live = self._live.pop(arn, None)
        if live is None:
            return
        deadline = time.monotonic() + LOG_DRAIN_TIMEOUT
        for thread in live.pumps:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if live.log_stream is not None:
            self.logs.close_stream(live.log_stream)
        if live.container_id is not None:
            self._remove(live.container_id)
        with self.backend.lock:
            live.task.finished(self.backend.clock())

    def _remove(self, container_id: str) -> None:
        try:
            self.client.api.remove_container(container_id, force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # removal already in progress
                log.warning("could not remove container %s", container_id[:12], exc_info=True)
