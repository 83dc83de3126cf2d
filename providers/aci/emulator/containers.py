"""The Docker side of the emulator: each container group's container is one real container on the local engine.

Launch (a worker thread per PUT, start or restart): the ``Pulling`` event, the
image found locally (:mod:`.images`), the container created with the group's
cpu and memory as hard limits (memory without swap, so exceeding it is a real
OOM kill) and started: ``Pulled`` and ``Started`` events, ``currentState``
Running, ``provisioningState`` Succeeded, the operation Succeeded. No local image:
ACI's pull failure, ``Pulling``, ``Failed`` (Warning) and ``BackOff`` events, the
container Waiting with detailStatus ``ErrImagePull``, ``provisioningState``
Failed and the operation failed with ``InaccessibleImage``.

A poller lists the emulator's containers every ``poll_interval`` and handles
the exits: ``Terminated`` with the exit code, start and finish times and
detailStatus ``Completed`` (exit 0), ``Error`` or ``OOMKilled`` (exit code 137).
The group's restartPolicy decides what follows: ``Never`` leaves it
terminated (group state Succeeded or Failed), ``OnFailure`` restarts it on a
non-zero exit and ``Always`` on any exit (``restartCount`` + 1, the last run
as ``previousState``), after a back-off (``Waiting``, ``CrashLoopBackOff``)
that doubles with each restart, from ``restart_backoff`` (10 s) up to 5
minutes. The container stays until the group is deleted, so its logs can be
read after it exits, as in ACI.

Containers carry ``mayfly.aci-emulator=<instance id>`` (and the emulator's pid
and host); on close every container of this emulator is removed, and
containers of an emulator on this host whose process is gone are removed when
the next one starts (:mod:`mayfly.providers.emulation.containers`). Nothing else
on the engine is touched.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import docker.errors

from mayfly.providers.aci.emulator import images
from mayfly.providers.aci.emulator.backend import Backend
from mayfly.providers.aci.emulator.model import ContainerState, Group
from mayfly.providers.aci.emulator.operations import Operation
from mayfly.providers.emulation import logpump
from mayfly.providers.emulation.containers import OwnedContainers

log = logging.getLogger(__name__)

LABEL = "mayfly.aci-emulator"
#: Labels :class:`~mayfly.providers.emulation.containers.OwnedContainers` adds beside ``LABEL``.
LABEL_PID = f"{LABEL}.pid"
LABEL_HOST = f"{LABEL}.host"
LABEL_GROUP = f"{LABEL}.group"
POLL_INTERVAL = 0.5
#: Seconds between SIGTERM and SIGKILL when a group is stopped.
STOP_TIMEOUT = 10
#: Wait before the first restart of an exited container (doubling with each restart, up to the maximum),
#: as Kubernetes' crash-loop back-off, which ACI shows as ``CrashLoopBackOff``.
RESTART_BACKOFF = 10.0
MAX_RESTART_BACKOFF = 300.0
MIB = 1024 * 1024
#: Docker refuses memory limits under 6 MiB.
MIN_MEMORY_MB = 6

_NAME_UNSAFE = re.compile(r"[^a-zA-Z0-9_.-]")


def _epoch(value: str | None) -> float | None:
    """Epoch seconds of a Docker RFC 3339 time (None for the zero time)."""
    if not value or value.startswith("0001-"):
        return None
    return logpump.parse_timestamp(value.encode()) / 1000


def terminated(state: Mapping[str, Any]) -> ContainerState:
    """The ``Terminated`` state of an exited container from ``docker inspect``'s State."""
    exit_code = int(state.get("ExitCode", 0))
    detail = "OOMKilled" if state.get("OOMKilled") else "Completed" if exit_code == 0 else "Error"
    started, finished = _epoch(state.get("StartedAt")), _epoch(state.get("FinishedAt"))
    if started is not None and finished is not None and finished < started:
        # NOTE: Docker records StartedAt once the runtime reports the start, which can be after a
        # very short process already exited; ACI never reports a finish before the start.
        finished = started
    return ContainerState(
        state="Terminated",
        detail_status=detail,
        start_time=started,
        finish_time=finished,
        exit_code=exit_code,
    )


class DockerContainers:
    """Runs the backend's groups as containers (the backend's :class:`~.backend.Runner`)."""

    def __init__(
        self,
        backend: Backend,
        client: Any,
        *,
        instance: str,
        network: str = "bridge",
        extra_hosts: Mapping[str, str] | None = None,
        poll_interval: float = POLL_INTERVAL,
        stop_timeout: int = STOP_TIMEOUT,
        restart_backoff: float = RESTART_BACKOFF,
    ) -> None:
        self.backend = backend
        self.restart_backoff = restart_backoff
        self.client = client
        self.instance = instance
        self.network = network
        self.extra_hosts = dict(extra_hosts or {})
        self.poll_interval = poll_interval
        self.stop_timeout = stop_timeout
        self.host_cpus = float(client.info().get("NCPU") or os.cpu_count() or 1)
        self.owned = OwnedContainers(client, LABEL, instance)
        self._groups: dict[str, Group] = {}  # by group id, the groups with a launched container
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="aci-emulator")
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self.owned.reap_orphans()
        self._poller = threading.Thread(target=self._poll_loop, name="aci-emulator-poller", daemon=True)
        self._poller.start()

    def close(self) -> None:
        """Stop polling; remove every container of this emulator."""
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=10)
        self.owned.remove_all()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.owned.remove_all()

    # -------------------------------------------------------------- launch

    def launch(self, group: Group, operation: Operation) -> None:
        with self.backend.lock:
            generation = group.generation
            old = group.container_id
            group.container_id = None
        self._pool.submit(self._launch, group, generation, old, operation)

    def _current(self, group: Group, generation: int) -> bool:
        """Whether ``generation`` is still the group's run (not deleted, stopped or relaunched since)."""
        return group.generation == generation and not self._stop.is_set()

    def _launch(self, group: Group, generation: int, old: str | None, operation: Operation) -> None:
        try:
            self._launch_steps(group, generation, old, operation)
        except Exception as exc:
            log.exception("launch of %s failed", group.id)
            with self.backend.lock:
                if self._current(group, generation):
                    group.provisioning_state = "Failed"
                    group.state = "Failed"
                    group.event(self.backend.clock(), "Failed", f"Error: {exc}", "Warning")
            operation.finish("Failed", {"code": "ContainerGroupDeploymentFailed", "message": str(exc)})

    def _launch_steps(self, group: Group, generation: int, old: str | None, operation: Operation) -> None:
        if old is not None:
            self._remove(old)
        spec = group.spec
        log.debug("%s: launching %s (generation %d)", group.id, spec.image, generation)
        with self.backend.lock:
            if not self._current(group, generation):
                operation.finish("Canceled")
                return
            group.event(self.backend.clock(), "Pulling", f'pulling image "{spec.image}"')
        try:
            image = images.resolve(self.client, spec.image)
        except images.ImageNotAvailable as exc:
            self._pull_failed(group, generation, operation, exc)
            return
        memory_mb = max(round(spec.memory_gb * 1024), MIN_MEMORY_MB)
        name = _NAME_UNSAFE.sub("-", f"aci-{self.instance[:8]}-{group.name}-{generation}")
        container = self.client.containers.create(
            image.reference,
            name=name,
            entrypoint=spec.command,  # ACI's command replaces the image's entrypoint (and its CMD)
            environment=spec.environment,
            labels={**self.owned.labels(), LABEL_GROUP: group.id},
            network=self.network,
            extra_hosts=self.extra_hosts or None,
            mem_limit=memory_mb * MIB,
            memswap_limit=memory_mb * MIB,
            nano_cpus=int(min(spec.cpu, self.host_cpus) * 1e9),
            log_config=docker.types.LogConfig(type="json-file"),
            detach=True,
        )
        with self.backend.lock:
            if not self._current(group, generation):
                operation.finish("Canceled")
                stale = True
            else:
                stale = False
                group.container_id = container.id
                group.event(self.backend.clock(), "Pulled", f'Successfully pulled image "{spec.image}"')
        if stale:
            self._remove(container.id)
            return
        with self._lock:
            self._groups[group.id] = group
        try:
            container.start()
        except docker.errors.APIError as exc:
            # The group is deployed; its container could not run (e.g. the command does not exist).
            message = f'Error: failed to start container "{spec.container}": {exc.explanation or exc}'
            try:
                exit_code = int(self.client.api.inspect_container(container.id)["State"].get("ExitCode") or 128)
            except docker.errors.APIError:
                exit_code = 128
            with self.backend.lock:
                if self._current(group, generation):
                    now = self.backend.clock()
                    group.event(now, "Failed", message, "Warning")
                    group.current = ContainerState("Terminated", "ContainerCannotRun", now, now, exit_code)
                    group.provisioning_state = "Succeeded"
                    group.state = "Failed"
            operation.finish()
            return
        started = _epoch(self.client.api.inspect_container(container.id)["State"].get("StartedAt"))
        with self.backend.lock:
            if not self._current(group, generation):
                # Stopped or deleted while starting: whoever did it saw no container running yet.
                operation.finish("Canceled")
                stale = True
            else:
                stale = False
                group.event(self.backend.clock(), "Started", "Started container")
                if group.current.state == "Waiting":
                    group.current = ContainerState("Running", "", started or self.backend.clock())
                group.provisioning_state = "Succeeded"
                if group.state == "Pending":
                    group.state = "Running"
        if stale:
            self._docker_stop(group, container.id, generation)
            return
        operation.finish()

    def _pull_failed(self, group: Group, generation: int, operation: Operation, exc: images.ImageNotAvailable) -> None:
        image = exc.reference
        log.info("%s: no local image for %s (tried %s)", group.id, image, ", ".join(exc.tried))
        with self.backend.lock:
            if self._current(group, generation):
                now = self.backend.clock()
                group.event(
                    now,
                    "Failed",
                    f'Failed to pull image "{image}": rpc error: code = NotFound desc = failed to pull and unpack '
                    f'image "{image}": failed to resolve reference "{image}": {image}: not found (the Mayfly ACI '
                    f"emulator pulls nothing; it looked in the local Docker engine for: {', '.join(exc.tried)})",
                    "Warning",
                )
                group.event(now, "BackOff", f'Back-off pulling image "{image}"')
                group.current = ContainerState("Waiting", "ErrImagePull")
                group.provisioning_state = "Failed"
                group.state = "Failed"
        operation.finish(
            "Failed",
            {
                "code": "InaccessibleImage",
                "message": f"The image '{image}' in container group '{group.name}' is not accessible. "
                "Please check the image and registry credential.",
            },
        )

    # ---------------------------------------------------------------- stop

    def stop(self, group: Group) -> None:
        with self.backend.lock:
            container_id = group.container_id
            generation = group.generation
        if container_id is not None:
            self._pool.submit(self._docker_stop, group, container_id, generation)

    def _docker_stop(self, group: Group, container_id: str, generation: int) -> None:
        try:
            self.client.api.stop(container_id, timeout=self.stop_timeout)
            state = self.client.api.inspect_container(container_id)["State"]
        except docker.errors.NotFound:
            return
        except docker.errors.APIError:
            log.warning("docker stop of %s failed", container_id[:12], exc_info=True)
            return
        with self.backend.lock:
            if group.generation == generation and group.current.state == "Running":
                group.current = terminated(state)

    # -------------------------------------------------------------- remove

    def remove(self, group: Group, operation: Operation | None) -> None:
        with self.backend.lock:
            container_id = group.container_id
            group.container_id = None
        with self._lock:
            self._groups.pop(group.id, None)

        def run() -> None:
            if container_id is not None:
                self._remove(container_id)
            if operation is not None:
                operation.finish()

        self._pool.submit(run)

    def _remove(self, container_id: str) -> None:
        self.owned.remove(container_id)

    # ---------------------------------------------------------------- logs

    def logs(self, group: Group, tail: int | None, timestamps: bool) -> str:
        with self.backend.lock:
            container_id = group.container_id
        if container_id is None:
            return ""
        try:
            data = self.client.api.logs(
                container_id, stdout=True, stderr=True, tail="all" if tail is None else tail, timestamps=timestamps
            )
        except docker.errors.NotFound:
            return ""
        return bytes(data).decode(errors="replace")

    # ---------------------------------------------------------------- exits

    def _poll_loop(self) -> None:
        while not self._stop.wait(self.poll_interval):
            try:
                self._poll()
            except Exception:
                log.warning("polling the Docker engine failed", exc_info=True)

    def _poll(self) -> None:
        with self._lock:
            groups = list(self._groups.values())
        with self.backend.lock:
            running = [
                (g, g.container_id, g.generation)
                for g in groups
                if g.container_id is not None and g.current.state == "Running" and g.state == "Running"
            ]
        if not running:
            return
        states = self.owned.states()
        for group, container_id, generation in running:
            if states.get(container_id, "removed") in ("exited", "dead", "removed"):
                self._exited(group, container_id, generation)

    def _exited(self, group: Group, container_id: str, generation: int) -> None:
        try:
            state = self.client.api.inspect_container(container_id)["State"]
        except docker.errors.NotFound:
            state = {"ExitCode": 137, "Error": "the container was removed from the Docker engine outside the emulator"}
        if state.get("Running"):
            return  # restarted meanwhile
        ended = terminated(state)
        log.debug("%s: container exited with %s (%s)", group.id, ended.exit_code, ended.detail_status)
        restart = False
        with self.backend.lock:
            if group.generation != generation or group.container_id != container_id:
                return
            policy = group.spec.restart_policy
            restart = policy == "Always" or (policy == "OnFailure" and ended.exit_code != 0)
            if not restart:
                group.current = ended
                group.state = "Succeeded" if ended.exit_code == 0 else "Failed"
                return
            group.previous = ended
            delay = min(self.restart_backoff * 2**group.restart_count, MAX_RESTART_BACKOFF)
            # Not Running while waiting: the poller leaves it alone until the restart.
            group.current = ContainerState("Waiting", "CrashLoopBackOff")
            group.event(self.backend.clock(), "BackOff", "Back-off restarting failed container", "Warning")
        timer = threading.Timer(delay, self._restart, (group, container_id, generation, ended))
        timer.daemon = True
        timer.start()

    def _restart(self, group: Group, container_id: str, generation: int, ended: ContainerState) -> None:
        """Start an exited container again (its restart policy asked for it, after the back-off)."""
        with self.backend.lock:
            if not self._current(group, generation) or group.container_id != container_id:
                return
            group.restart_count += 1
        try:
            self.client.api.start(container_id)
            started = _epoch(self.client.api.inspect_container(container_id)["State"].get("StartedAt"))
        except docker.errors.APIError as exc:
            log.warning("restart of %s failed: %s", group.id, exc)
            with self.backend.lock:
                if group.generation == generation:
                    group.current = ended
                    group.state = "Failed"
            return
        with self.backend.lock:
            if group.generation == generation:
                group.event(self.backend.clock(), "Started", "Started container")
                group.current = ContainerState("Running", "", started or self.backend.clock())
