"""The Docker provider: one hardened container per (task, attempt) on a Docker engine."""

from __future__ import annotations

import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

import docker
import docker.errors
from docker.types import CancellableStream, LogConfig, Mount

from mayfly.core.errors import EngineNotRunning, LaunchFailed, TaskContainerNotFound, Unavailable
from mayfly.core.faults import fault_point
from mayfly.core.messages import parse_container_name
from mayfly.core.models import Attached, ContainerState, ContainerStatus, LaunchResult, LaunchSpec
from mayfly.core.provider import Capability, Provider, ProviderContext, ProviderLimits
from mayfly.providers.docker.errors import engine_url, translate
from mayfly.providers.docker.files import (
    MOUNT_POINT,
    RESULT_NAME,
    RESULT_PATH,
    SECRETS_NAME,
    SECRETS_PATH,
    TASK_DIR,
    build_task_dir,
    pack_task_dir,
    read_result_file,
    read_result_tar,
    remove_tree,
    result_too_big,
)
from mayfly.providers.docker.outage import EngineWatch
from mayfly.providers.docker.settings import DockerSettings

log = logging.getLogger("mayfly.providers.docker")

#: Docker's own rule for container names; also what makes a name safe as a directory name.
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,254}$")
#: Separates the container name from its id in a handle: ``mayfly-t1-1::3f2a...``.
_SEP = "::"
_RUNNING = frozenset({"running", "paused", "restarting"})
#: Requests the engine may hold open at once: every task has a log stream and a wait open.
_POOL_SIZE = 64
#: How long ``cancel`` waits for the engine to confirm the stop after ``docker stop`` returned.
_CONFIRM_STOP = 30.0
#: Labels the provider sets; a spec cannot override them.
L_TASK, L_ATTEMPT, L_PROJECT, L_HOME, L_TARGET = (
    "mayfly.task",
    "mayfly.attempt",
    "mayfly.project",
    "mayfly.home",
    "mayfly.target",
)


def make_handle(name: str, container_id: str) -> str:
    """The opaque handle of a container: ``<name>::<id>`` (the name locates the task directory)."""
    return f"{name}{_SEP}{container_id}"


def parse_handle(handle: str) -> tuple[str, str | None]:
    """Split a handle into (engine reference, container name); a bare id or name is accepted too."""
    name, sep, ref = handle.rpartition(_SEP)
    if not sep:
        return handle, None
    return ref, name if _NAME.match(name) else None


def _epoch(text: object) -> float | None:
    """Epoch seconds of a Docker timestamp (RFC 3339 with nanoseconds); None for the zero time."""
    if not isinstance(text, str) or not text or text.startswith("0001-01-01"):
        return None
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", text)
    if m is None:
        return None
    base, frac, tz = m.groups()
    stamp = f"{base}.{(frac or '0')[:6]:0<6}{'+00:00' if tz == 'Z' else tz}"
    return datetime.fromisoformat(stamp).timestamp()


#: How long the engine may take to report a container's ``oom`` event after its exit (see
#: :meth:`DockerProvider._late_oom`).
OOM_EVENT_GRACE = 0.5


def may_be_unflagged_oom(info: dict[str, Any]) -> bool:
    """Exited by SIGKILL, with a memory limit, yet ``OOMKilled`` false: the engine's flag may be late.

    containerd reports a task's exit and its OOM kill as two events that race; when the exit is
    handled first, Docker 20.10 records ``OOMKilled: false`` for good, although it still emits
    the container's ``oom`` event a moment later.
    """
    st: dict[str, Any] = info.get("State") or {}
    memory = int((info.get("HostConfig") or {}).get("Memory") or 0)
    return (
        st.get("Status") == "exited" and int(st.get("ExitCode", -1)) == 137 and not st.get("OOMKilled") and memory > 0
    )


def container_state(info: dict[str, Any]) -> ContainerState:
    """A ContainerState from ``docker inspect`` output."""
    st: dict[str, Any] = info.get("State") or {}
    status = st.get("Status", "")
    started, finished = _epoch(st.get("StartedAt")), _epoch(st.get("FinishedAt"))
    if started is not None and finished is not None and finished < started:
        # NOTE: the engine records StartedAt only after runc returns, so a task that exits at once
        # can "finish" a few microseconds before it "started".
        started = finished
    oom = bool(st.get("OOMKilled"))
    if status == "created":
        return ContainerState(ContainerStatus.PENDING)
    if status in _RUNNING:
        return ContainerState(ContainerStatus.RUNNING, started_at=started)
    detail = str(st.get("Error") or "")
    if oom:
        memory = int((info.get("HostConfig") or {}).get("Memory") or 0)
        limit = f" of {memory >> 20} MiB" if memory else ""
        detail = f"killed: out of memory (the container exceeded its limit{limit})"
    return ContainerState(
        ContainerStatus.EXITED,
        exit_code=int(st.get("ExitCode", -1)),
        oom_killed=oom,
        detail=detail,
        started_at=started,
        finished_at=finished,
    )


#: The longest task a Docker target runs (7 days).
MAX_TIMEOUT = 7 * 86400


def _host_limits() -> ProviderLimits:
    """This machine's cores and memory: the engine is normally local."""
    try:
        memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") >> 20
    except (ValueError, OSError):
        memory_mb = 4096
    cpus = os.cpu_count() or 1
    return ProviderLimits(
        max_cpu=float(cpus),
        max_memory_mb=int(memory_mb),
        max_timeout=MAX_TIMEOUT,
        cpu_reason=f"the engine's host has {cpus} CPUs and Docker refuses a limit above that",
        memory_reason=f"the engine's host has {int(memory_mb)} MiB of memory",
        timeout_reason="Mayfly's Docker targets run a task for 7 days at most",
    )


#: Limits of an engine on another machine: its size is not known here, so only the engine checks it.
_REMOTE_LIMITS = ProviderLimits(max_cpu=math.inf, max_memory_mb=2**62, max_timeout=MAX_TIMEOUT)

#: Why ``network: host`` is refused (here at admission, and again at launch).
HOST_NETWORK_REASON = (
    "the task would share the host's network namespace (its ports, loopback services and interfaces); "
    "use 'none', 'bridge' or a named network"
)


class DockerProvider(Provider[DockerSettings]):
    """Runs each task in a fresh, hardened container on a Docker engine."""

    name = "docker"
    capabilities = frozenset(
        {
            Capability.LOG_STREAMING,
            Capability.CANCEL,
            Capability.REATTACH,
            Capability.NETWORK_NONE,
            Capability.SECRETS,
        }
    )
    unsupported = {
        Capability.GPU: "GPU devices are not passed to task containers",
        Capability.SPOT: "a Docker engine has no spot or preemptible capacity",
    }
    limits = _host_limits()
    refused_networks = {"host": HOST_NETWORK_REASON}

    def __init__(self, settings: DockerSettings, context: ProviderContext) -> None:
        super().__init__(settings, context)
        self._url = engine_url(settings.base_url)
        self._client: Any = None
        self._oom_lock = threading.Lock()
        self._oom_verdicts: dict[str, bool] = {}
        #: The last state of containers seen exited, by reference, until they are removed.
        self._exited: dict[str, ContainerState] = {}
        self._exited_lock = threading.Lock()
        self._client_lock = threading.Lock()
        self._engine = EngineWatch(self._url)

    @classmethod
    def limits_for(cls, settings: DockerSettings) -> ProviderLimits:
        """This machine's size for a local engine; an engine elsewhere (``base_url``) checks its own."""
        return cls.limits if settings.base_url is None else _REMOTE_LIMITS

    # ------------------------------------------------------------ engine access

    def _api(self) -> Any:
        """The docker SDK's low-level client, created on first use (call inside ``_translate``)."""
        with self._client_lock:
            if self._client is None:
                if self.settings.base_url is None:
                    kwargs: dict[str, Any] = docker.utils.kwargs_from_env()
                else:
                    kwargs = {"base_url": self.settings.base_url}
                # version="auto" asks the engine once, so the client never speaks a newer API than it knows.
                self._client = docker.APIClient(version="auto", max_pool_size=_POOL_SIZE, **kwargs)
                if str(self._client.base_url).startswith("http+docker://"):
                    # A unix socket: no proxy or .netrc applies, and looking them up on every request (requests'
                    # trust_env) was a quarter of each engine call's CPU.
                    self._client.trust_env = False
            return self._client

    def _translate(self, doing: str, *, launch: bool = False, image: str | None = None) -> AbstractContextManager[None]:
        return translate(self._url, doing, launch=launch, image=image)

    def _inspect(self, ref: str) -> dict[str, Any] | None:
        with self._translate(f"inspecting container {ref}"):
            try:
                info: dict[str, Any] = self._api().inspect_container(ref)
            except docker.errors.NotFound:
                return None
        return info

    def _ours(self, info: dict[str, Any]) -> bool:
        labels = (info.get("Config") or {}).get("Labels") or {}
        return bool(labels.get(L_HOME) == self.context.home_id)

    def check(self) -> None:
        """Ping the engine; raise EngineNotRunning with a one-line hint when it does not answer."""
        with self._translate("connecting"):
            self._api().ping()

    def close(self) -> None:
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    # ------------------------------------------------------------ launch

    def launch(self, spec: LaunchSpec) -> LaunchResult:
        """Create, fill and start the container ``spec.name``; return the existing one if it is there."""
        if not _NAME.match(spec.name):
            raise LaunchFailed(f"invalid container name {spec.name!r}", retryable=False)
        if spec.network == "host" or spec.network.startswith("container:"):
            raise LaunchFailed(
                f"network {spec.network!r} would share a namespace with the host or another container; "
                "use 'none', 'bridge' or a named network",
                retryable=False,
            )
        existing = self._existing(spec.name)
        if existing is not None:
            return existing
        task_dir = self.context.work_dir / spec.name
        remove_tree(task_dir)  # a leftover of a launch that crashed before creating its container
        build_task_dir(task_dir, spec, self.context.blobs, self.settings.numeric_user())
        try:
            return self._create_and_start(spec)
        except BaseException:
            remove_tree(task_dir)
            raise

    def _existing(self, name: str) -> LaunchResult | None:
        """The container a previous launch of this attempt left, if it ever started."""
        info = self._inspect(name)
        if info is None:
            return None
        if not self._ours(info):
            raise LaunchFailed(
                f"a container named {name} exists but does not belong to this Mayfly home; "
                f"remove it with 'docker rm -f {name}'",
                retryable=False,
            )
        if (info.get("State") or {}).get("Status") != "created":
            return LaunchResult(make_handle(name, info["Id"]), existing=True)
        # Left by a launch interrupted between create and start: it never ran, so replacing it is safe.
        self._remove_container(info["Id"])
        return None

    def _create_and_start(self, spec: LaunchSpec) -> LaunchResult:
        task_dir = self.context.work_dir / spec.name
        archive = None
        try:
            if self.settings.placement == "archive":
                archive = pack_task_dir(task_dir, self.settings.numeric_user())
                remove_tree(task_dir)
            container_id = self._create(spec)
            if container_id is None:
                # Another launch of the same attempt won the name (the runner's lease makes this rare).
                info = self._inspect(spec.name)
                if info is None:
                    raise LaunchFailed(f"container {spec.name} vanished while being launched", retryable=True)
                return LaunchResult(make_handle(spec.name, info["Id"]), existing=True)
            try:
                with self._translate(f"starting container {spec.name}", launch=True, image=spec.image):
                    if archive is not None:
                        self._api().put_archive(container_id, MOUNT_POINT, archive)
                    self._api().start(container_id)
            except BaseException:
                self._discard(container_id)
                raise
        finally:
            if archive is not None:
                archive.close()
        return LaunchResult(make_handle(spec.name, container_id))

    def _create(self, spec: LaunchSpec) -> str | None:
        """Create the hardened container; None when the name was taken meanwhile."""
        s = self.settings
        labels = {
            **spec.labels,
            L_TASK: spec.task_id,
            L_ATTEMPT: str(spec.attempt),
            L_PROJECT: spec.project,
            L_HOME: self.context.home_id,
            L_TARGET: self.context.target,
        }
        bind = s.placement == "bind"
        with self._translate(f"creating container {spec.name}", launch=True, image=spec.image):
            api = self._api()
            host_config = api.create_host_config(
                mounts=self._mounts(spec) if bind else None,
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                privileged=False,
                pids_limit=s.pids_limit,
                mem_limit=f"{spec.memory_mb}m",
                memswap_limit=f"{spec.memory_mb}m",
                nano_cpus=int(spec.cpu * 1e9) if spec.cpu > 0 else None,
                read_only=True,
                tmpfs={"/tmp": f"size={s.tmpfs_size},mode=1777"},
                restart_policy={"Name": "no"},
                network_mode=spec.network,
                init=s.init,
                # The engine's default on cgroup v1 is the host's cgroup namespace; a task needs none of it.
                cgroupns="private",
                runtime=s.runtime,
                log_config=LogConfig(type="json-file", config={"max-size": s.log_max_size, "max-file": "1"}),
            )
            try:
                created = api.create_container(
                    spec.image,
                    command=list(spec.command) or None,
                    name=spec.name,
                    user=s.user,
                    environment=dict(spec.env),
                    # A ready image without a code package keeps its own working directory.
                    working_dir=TASK_DIR if spec.code is not None else None,
                    labels=labels,
                    volumes=None if bind else [MOUNT_POINT],
                    host_config=host_config,
                )
            except docker.errors.APIError as exc:
                if exc.status_code == 409 and "already in use" in str(exc.explanation):
                    return None
                if bind and "bind source path does not exist" in str(exc.explanation):
                    raise LaunchFailed(
                        f"the engine at {self._url} cannot see the task directory {self.context.work_dir}: "
                        "with placement 'bind' the runner must run on the engine's host (else use 'archive')",
                        retryable=False,
                    ) from exc
                raise
        container_id: str = created["Id"]
        return container_id

    def _mounts(self, spec: LaunchSpec) -> list[Mount]:
        """The task directory at /mayfly and, when the task has secrets, their directory read-only over it."""
        task_dir = self.context.work_dir / spec.name
        mounts = [Mount(MOUNT_POINT, str(task_dir), type="bind")]
        if spec.secrets:
            mounts.append(Mount(SECRETS_PATH, str(task_dir / SECRETS_NAME), type="bind", read_only=True))
        return mounts

    def _remove_container(self, ref: str) -> None:
        with self._exited_lock:
            self._exited.pop(ref, None)
        with self._translate(f"removing container {ref}"):
            try:
                self._api().remove_container(ref, v=True, force=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                if exc.status_code != 409:  # 409: a removal is already in progress
                    raise

    def _discard(self, ref: str) -> None:
        """Best-effort removal after a failed launch; the launch error is what the caller must see."""
        try:
            self._remove_container(ref)
        except (EngineNotRunning, Unavailable) as exc:
            log.warning("could not remove container %s after a failed launch: %s", ref, exc)

    # ------------------------------------------------------------ observe

    def find(self, spec_name: str) -> LaunchResult | None:
        """The container named ``spec_name`` if it exists and belongs to this home."""
        info = self._inspect(spec_name)
        if info is None or not self._ours(info):
            return None
        return LaunchResult(make_handle(spec_name, info["Id"]), existing=True)

    def state(self, handle: str) -> ContainerState:
        """PENDING (created), RUNNING, EXITED (exit code, OOM) or MISSING."""
        ref, _ = parse_handle(handle)
        with self._exited_lock:
            known = self._exited.get(ref)
        if known is not None:
            return known
        info = self._inspect(ref)
        if info is None:
            return ContainerState(ContainerStatus.MISSING)
        name = str(info.get("Name", "")).lstrip("/")
        if may_be_unflagged_oom(info) and self._late_oom(info):
            info = {**info, "State": {**info["State"], "OOMKilled": True}}
        st = self._engine.classify(str(info.get("Id", ref)), name, container_state(info))
        if st.status is ContainerStatus.EXITED:
            # An exited container never runs again (restart policy "no"): the log follower's last look and the
            # watch's need one inspect between them, not one each.
            with self._exited_lock:
                if len(self._exited) > 1024:
                    self._exited.clear()
                self._exited[ref] = st
        return st

    def _late_oom(self, info: dict[str, Any]) -> bool:
        """Whether the engine emitted an ``oom`` event for the container (see :func:`may_be_unflagged_oom`).

        Asked once per container (the answer is kept); waits at most :data:`OOM_EVENT_GRACE`
        seconds for an event still on its way.
        """
        container_id = str(info.get("Id", ""))
        with self._oom_lock:
            if container_id in self._oom_verdicts:
                return self._oom_verdicts[container_id]
        started = _epoch((info.get("State") or {}).get("StartedAt")) or (time.time() - 3600)
        with self._translate(f"reading the engine's events of container {container_id[:12]}"):
            events = self._api().events(
                since=f"{started - 1:.9f}",
                until=f"{time.time() + OOM_EVENT_GRACE:.9f}",
                filters={"container": container_id, "event": "oom"},
                decode=True,
            )
            try:
                oom = any(True for _ in events)
            finally:
                events.close()
        with self._oom_lock:
            if len(self._oom_verdicts) > 1024:
                self._oom_verdicts.clear()
            self._oom_verdicts[container_id] = oom
        return oom

    def wait(self, handle: str, timeout: float) -> ContainerState:
        """Block on the engine's wait API until the container stops or ``timeout`` seconds pass."""
        ref, _ = parse_handle(handle)
        deadline = time.monotonic() + timeout
        last = ContainerState(ContainerStatus.PENDING)
        while True:
            try:
                st = last = self.state(handle)
            except (EngineNotRunning, Unavailable):
                # The engine went away (stopped, restarting): keep waiting for it within the timeout; what
                # it says about the container when it is back tells how the container ended.
                if last.status is ContainerStatus.RUNNING:
                    self._engine.lost_contact(ref)
                left = deadline - time.monotonic()
                if left <= 0:
                    return last
                time.sleep(min(self.poll_interval, left))
                continue
            left = deadline - time.monotonic()
            if st.status in (ContainerStatus.EXITED, ContainerStatus.MISSING) or left <= 0:
                return st
            if st.status is ContainerStatus.PENDING:
                # The wait API returns at once for a created container: poll until it starts.
                time.sleep(min(self.poll_interval, left))
                continue
            try:
                with self._translate(f"waiting for container {ref}"):
                    self._api().wait(ref, timeout=left, condition="not-running")
            except (EngineNotRunning, Unavailable):
                # A timeout, or a dropped connection (the engine stopping): the next state() call tells which.
                pass

    def logs(self, handle: str, *, follow: bool = False) -> Iterator[bytes]:
        """Combined stdout and stderr from the start; with ``follow`` until the container exits."""
        ref, _ = parse_handle(handle)
        return self._log_stream(ref, follow)

    def _log_stream(self, ref: str, follow: bool) -> Iterator[bytes]:
        sent = 0
        while True:
            try:
                for chunk in self._read_log(ref, follow, sent):
                    sent += len(chunk)
                    yield chunk
            except (EngineNotRunning, Unavailable):
                if not follow:
                    raise
                # The stream broke mid-way, or the engine is stopping: wait() below rides out an outage.
            if not follow:
                return
            st = self.wait(ref, 5.0)
            if st.status is ContainerStatus.MISSING:
                return
            if st.status is ContainerStatus.EXITED:
                # NOTE: Docker 20.10 may end a follow stream before the last writes of a task that exits
                # right after printing them reached the log (seen here in 2 runs of 30): read the finished
                # log once more for anything missed.
                yield from self._read_log(ref, False, sent)
                return
            # Still running (or not started yet): follow again from where the stream stopped.

    def _read_log(self, ref: str, follow: bool, skip: int) -> Iterator[bytes]:
        """Yield the log beyond its first ``skip`` bytes."""
        seen = 0
        with self._translate(f"reading the log of container {ref}"):
            stream = self._open_log(ref, follow)
            try:
                for chunk in stream:
                    end = seen + len(chunk)
                    if end > skip:
                        yield chunk[max(0, skip - seen) :]
                    seen = end
            finally:
                stream.close()

    def _open_log(self, ref: str, follow: bool) -> Any:
        """``APIClient.logs(ref, stream=True)`` without the inspect it makes first to learn about a TTY.

        Our containers never have one (``tty`` is off at create), and on a loaded engine that
        inspect cost as much as reading the log itself; the rest is what ``logs()`` does.
        """
        api = self._api()
        params = {"stdout": 1, "stderr": 1, "timestamps": 0, "follow": int(follow), "tail": "all"}
        res = api._get(api._url("/containers/{0}/logs", ref), params=params, stream=True)
        return CancellableStream(api._get_result_tty(True, res, False), res)

    def result(self, handle: str, max_bytes: int) -> bytes | None:
        """What the task wrote to /mayfly/result.json (None when absent or empty), at most ``max_bytes``."""
        ref, name = parse_handle(handle)
        task_dir = self.context.work_dir / name if name else None
        if task_dir is not None and task_dir.is_dir():
            return read_result_file(task_dir / RESULT_NAME, max_bytes)
        with self._translate(f"reading the result of container {ref}"):
            try:
                chunks, stat = self._api().get_archive(ref, RESULT_PATH)
            except docker.errors.NotFound:
                if self._inspect(ref) is None:
                    raise TaskContainerNotFound(f"no container {ref} (removed already?)") from None
                return None
            size = int((stat or {}).get("size", 0))
            if size > max_bytes and not (stat or {}).get("linkTarget"):
                raise result_too_big(size, max_bytes)
            return read_result_tar(chunks, max_bytes)

    # ------------------------------------------------------------ act

    def cancel(self, handle: str, grace_seconds: float) -> None:
        """SIGTERM, then SIGKILL after ``grace_seconds``; returns once the engine reports it stopped.

        A container that was created but never started is removed instead: there is
        nothing to stop, and it must not start later.

        Raises:
            TaskContainerNotFound: the container does not exist (any more).
        """
        ref, _ = parse_handle(handle)
        info = self._inspect(ref)
        if info is None:
            raise TaskContainerNotFound(f"no container {ref} to cancel (removed already?)")
        status = (info.get("State") or {}).get("Status")
        if status == "created":
            self._remove_container(ref)
            return
        if status in _RUNNING:
            with self._translate(f"stopping container {ref}"):
                # docker stop: SIGTERM (forwarded by docker-init), SIGKILL after t seconds, returns once stopped.
                self._api().stop(ref, timeout=max(0, math.ceil(grace_seconds)))
        st = self.wait(handle, _CONFIRM_STOP)
        if st.status is ContainerStatus.RUNNING:
            raise Unavailable(f"container {ref} did not stop after SIGKILL")

    def remove(self, handle: str) -> None:
        """Remove the container, its anonymous volume and its task directory; removing twice is fine.

        A bare attempt name (``mayfly-<task>-<attempt>``) with no container removes its task directory.
        """
        ref, name = parse_handle(handle)
        if name is None:
            info = self._inspect(ref)
            if info is not None:
                name = str(info.get("Name", "")).lstrip("/")
            elif parse_container_name(ref) is not None:
                name = ref
        self._remove_container(ref)
        self._engine.forget(ref)
        # A crash here leaves the task directory without its container: sweep() removes it.
        fault_point("docker.container-removed")
        if name and _NAME.match(name):
            try:
                remove_tree(self.context.work_dir / name)
            except OSError as exc:
                log.warning("could not remove the task directory of %s: %s", name, exc)

    def sweep(self, is_over: Callable[[str, int], bool]) -> int:
        """Remove the containers and task directories of attempts that are over.

        Containers are this home's on this target (by label), running or not; task
        directories are those under the target's work directory whose attempt is over
        and whose container is gone (a runner killed between the two removals).
        """
        filters = {"label": [f"{L_HOME}={self.context.home_id}", f"{L_TARGET}={self.context.target}"]}
        with self._translate("listing containers"):
            found: list[dict[str, Any]] = self._api().containers(all=True, filters=filters)
        names = set()
        removed = 0
        for item in found:
            name = ((item.get("Names") or [""])[0]).lstrip("/")
            names.add(name)
            attempt = parse_container_name(name)
            if attempt is None or not is_over(*attempt):
                continue
            log.info("removing leftover container %s", name)
            self.remove(make_handle(name, item["Id"]))
            removed += 1
        try:
            entries = list(self.context.work_dir.iterdir())
        except FileNotFoundError:
            entries = []
        for path in entries:
            # A task directory, or the staging directory (".<name>.<random>") of a launch that crashed.
            name = path.name[1:].rsplit(".", 1)[0] if path.name.startswith(".") else path.name
            attempt = parse_container_name(name)
            if attempt is None or path.name in names or not path.is_dir() or not is_over(*attempt):
                continue
            log.info("removing leftover task directory %s", path.name)
            try:
                remove_tree(path)
            except OSError as exc:
                log.warning("could not remove the task directory %s: %s", path, exc)
                continue
            removed += 1
        return removed

    def reattach(self) -> list[Attached]:
        """This home's containers on this target, found by their labels."""
        filters = {"label": [f"{L_HOME}={self.context.home_id}", f"{L_TARGET}={self.context.target}"]}
        with self._translate("listing containers"):
            found: list[dict[str, Any]] = self._api().containers(all=True, filters=filters)
        attached = []
        for item in found:
            labels = item.get("Labels") or {}
            names = item.get("Names") or []
            try:
                task_id, attempt = labels[L_TASK], int(labels[L_ATTEMPT])
            except (KeyError, ValueError):
                continue
            handle = make_handle(names[0].lstrip("/"), item["Id"]) if names else item["Id"]
            st = self.state(handle)
            if st.status is not ContainerStatus.MISSING:
                attached.append(Attached(task_id, attempt, handle, st))
        return attached
