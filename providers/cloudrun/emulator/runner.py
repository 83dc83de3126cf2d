"""The Docker side: each task attempt of an execution is one real container on the local engine.

``launch`` starts the execution's tasks (at most ``parallelism`` at once): the
image is found locally (:mod:`.images`), the container created with the task
template's ``command`` (entrypoint), ``args``, ``env`` (plus Cloud Run's
``CLOUD_RUN_JOB``, ``CLOUD_RUN_EXECUTION``, ``CLOUD_RUN_TASK_INDEX``,
``CLOUD_RUN_TASK_ATTEMPT``, ``CLOUD_RUN_TASK_COUNT``), ``workingDir``, and its
``resources.limits`` as hard limits (memory without swap: exceeding it is an OOM
kill). Its stdout and stderr go to the Cloud Logging store line by line. A
poller finishes the attempts whose container exited and stops those past the
task timeout; ``cancel`` stops the containers (SIGTERM, then SIGKILL after the
grace period, as Cloud Run does). A failed attempt is retried while the task has
retries left (``maxRetries``); the execution completes when every task is done.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import docker.errors

from mayfly.providers.cloudrun.emulator import images, resources
from mayfly.providers.cloudrun.emulator.backend import CloudRunBackend
from mayfly.providers.cloudrun.emulator.logstore import LogStore
from mayfly.providers.cloudrun.emulator.model import (
    CANCELLED,
    CONTAINER_MISSING,
    ERROR,
    FAILED,
    NON_ZERO_EXIT_CODE,
    SUCCEEDED,
    Condition,
    Execution,
    TaskRun,
)
from mayfly.providers.emulation import logpump
from mayfly.providers.emulation.containers import OwnedContainers

log = logging.getLogger(__name__)

LABEL = "mayfly.cloudrun-emulator"
POLL_INTERVAL = 0.5
#: Cloud Run sends SIGTERM, then SIGKILL 10 seconds later, when it stops a task.
STOP_GRACE = 10
LOG_DRAIN_TIMEOUT = 30.0
MIB = 1024 * 1024
#: google.rpc.Code values of a failed attempt's status.
CODE_CANCELLED, CODE_UNKNOWN, CODE_DEADLINE_EXCEEDED, CODE_RESOURCE_EXHAUSTED, CODE_NOT_FOUND = 1, 2, 4, 8, 5

_NAME_UNSAFE = re.compile(r"[^a-zA-Z0-9_.-]")


@dataclass
class _Attempt:
    """One running container of a task."""

    task: TaskRun
    attempt: int
    memory_bytes: int
    container_id: str | None = None
    started: float = 0.0
    pumps: list[threading.Thread] = field(default_factory=list)
    timed_out: bool = False
    cancelled: bool = False
    finishing: bool = False


class DockerExecutions:
    """Runs the backend's executions as containers (the backend's launcher)."""

    def __init__(
        self,
        backend: CloudRunBackend,
        client: Any,
        logs: LogStore,
        owned: OwnedContainers,
        *,
        network: str = "bridge",
        rewrites: Mapping[str, str] | None = None,
        extra_hosts: Mapping[str, str] | None = None,
        poll_interval: float = POLL_INTERVAL,
        stop_grace: int = STOP_GRACE,
    ) -> None:
        self.backend = backend
        self.client = client
        self.logs = logs
        self.owned = owned
        self.network = network
        self.rewrites = dict(rewrites or {})
        self.extra_hosts = dict(extra_hosts or {})
        self.poll_interval = poll_interval
        self.stop_grace = stop_grace
        self.host_cpus = float(client.info().get("NCPU") or 1)
        self._attempts: dict[str, _Attempt] = {}  # task name -> running attempt
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="cloudrun-emulator-task")
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self.owned.reap_orphans()
        self._poller = threading.Thread(target=self._poll_loop, name="cloudrun-emulator-poller", daemon=True)
        self._poller.start()

    def close(self) -> None:
        """Stop polling; remove every container of this emulator."""
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=10)
        self.owned.remove_all()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.owned.remove_all()

    # --------------------------------------------------------------- launch

    def launch(self, execution: Execution) -> None:
        self._pool.submit(self._start_more, execution)

    def _start_more(self, execution: Execution) -> None:
        """Start pending tasks up to the parallelism; complete the execution when all are done."""
        with self.backend.lock:
            if execution.done:
                return
            if execution.cancel_requested:
                now = self.backend.clock()
                for task in execution.tasks:
                    if task.outcome is None and task.attempts == 0:
                        task.finish(now, "cancelled", _cancelled_condition(now))
            running = sum(1 for t in execution.tasks if t.outcome is None and t.attempts > 0)
            pending = [t for t in execution.tasks if t.outcome is None and t.attempts == 0]
            starting = pending[: max(execution.parallelism - running, 0)]
            for task in starting:
                task.attempts = 1
            finished = all(t.outcome is not None for t in execution.tasks)
        if finished:
            self._complete(execution)
            return
        for task in starting:
            self._pool.submit(self._run_attempt, task)

    def _run_attempt(self, task: TaskRun) -> None:
        try:
            self._attempt_steps(task)
        except Exception as exc:
            if self._stop.is_set():
                return
            log.exception("task %s could not start", task.name)
            self._task_failed_to_start(task, f"The container could not be started: {exc}", None)

    def _attempt_steps(self, task: TaskRun) -> None:
        execution = task.execution
        container = execution.containers[0]
        cpus, memory = resources.limits(container)
        with self.backend.lock:
            attempt_no = task.attempts - 1
            cancelled = execution.cancel_requested
        if cancelled:
            self._end_attempt(task, "cancelled", None, None)
            return
        try:
            image = images.resolve(self.client, str(container["image"]))
        except images.ImageNotAvailable as exc:
            self._task_failed_to_start(task, str(exc), CONTAINER_MISSING)
            return
        environment = {
            "CLOUD_RUN_JOB": execution.job.id,
            "CLOUD_RUN_EXECUTION": execution.id,
            "CLOUD_RUN_TASK_INDEX": str(task.index),
            "CLOUD_RUN_TASK_ATTEMPT": str(attempt_no),
            "CLOUD_RUN_TASK_COUNT": str(execution.task_count),
            # NOTE: secret references (valueSource) are not emulated: such variables are left unset.
            **{
                str(e["name"]): self._rewrite(str(e.get("value", "")))
                for e in container.get("env") or []
                if "valueSource" not in e
            },
        }
        command = container.get("command")
        args = container.get("args")
        labels = {
            **self.owned.labels(),
            "run.googleapis.com/job": execution.job.name,
            "run.googleapis.com/execution": execution.id,
            "run.googleapis.com/task-index": str(task.index),
            "run.googleapis.com/task-attempt": str(attempt_no),
        }
        name = _NAME_UNSAFE.sub("-", f"cloudrun-{self.owned.instance[:6]}-{task.id}-{attempt_no}")
        import docker.types

        try:
            created = self.client.api.create_container(
                image.reference,
                name=name,
                entrypoint=[self._rewrite(str(a)) for a in command] if command else None,
                command=[self._rewrite(str(a)) for a in args] if args else None,
                environment=environment,
                working_dir=container.get("workingDir") or None,
                labels=labels,
                host_config=self.client.api.create_host_config(
                    mem_limit=memory,
                    memswap_limit=memory,
                    nano_cpus=int(min(cpus, self.host_cpus) * 1e9),
                    network_mode=self.network,
                    extra_hosts=self.extra_hosts or None,
                    log_config=docker.types.LogConfig(type="json-file"),
                ),
            )
        except docker.errors.APIError as exc:
            self._task_failed_to_start(task, f"The container could not be created: {exc.explanation or exc}", None)
            return
        container_id = str(created["Id"])
        attempt = _Attempt(task, attempt_no, memory, container_id)
        with self._lock:
            self._attempts[task.name] = attempt
        if self._stop.is_set():
            self.owned.remove(container_id)
            return
        try:
            self.client.api.start(container_id)
        except docker.errors.APIError as exc:
            with self._lock:
                self._attempts.pop(task.name, None)
            self.owned.remove(container_id)
            self._task_failed_to_start(task, f"The container could not be started: {exc.explanation or exc}", None)
            return
        attempt.started = time.monotonic()
        attempt.pumps = logpump.follow(
            self.client,
            container_id,
            self._sink(task, attempt_no, "stdout"),
            stderr_sink=self._sink(task, attempt_no, "stderr"),
            name="cloudrun-emulator",
        )
        with self.backend.lock:
            now = self.backend.clock()
            if task.started is None:
                task.started = now
            task.updated = now
            if execution.started is None:
                execution.started = now
                execution.set_condition(Condition("ResourcesAvailable", SUCCEEDED, now))
                execution.set_condition(Condition("Started", SUCCEEDED, now))
            stop_now = execution.cancel_requested
        if stop_now:
            attempt.cancelled = True
            self._docker_stop(container_id)

    def _rewrite(self, value: str) -> str:
        for old, new in self.rewrites.items():
            value = value.replace(old, new)
        return value

    def _sink(self, task: TaskRun, attempt: int, stream: str) -> logpump.Sink:
        execution = task.execution

        def sink(timestamp_ms: int, line: str) -> None:
            self.logs.append_run_line(execution, task.index, attempt, stream, timestamp_ms, line)

        return sink

    # --------------------------------------------------------------- cancel

    def cancel(self, execution: Execution) -> None:
        with self._lock:
            attempts = [a for a in self._attempts.values() if a.task.execution is execution]
        for attempt in attempts:
            attempt.cancelled = True
            if attempt.container_id:
                threading.Thread(target=self._docker_stop, args=(attempt.container_id,), daemon=True).start()
        self._pool.submit(self._start_more, execution)

    def _docker_stop(self, container_id: str) -> None:
        try:
            self.client.api.stop(container_id, timeout=self.stop_grace)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError:
            log.warning("docker stop of %s failed", container_id[:12], exc_info=True)

    # --------------------------------------------------------------- finish

    def _poll_loop(self) -> None:
        while not self._stop.wait(self.poll_interval):
            try:
                self._poll()
            except Exception:
                log.warning("polling the Docker engine failed", exc_info=True)

    def _poll(self) -> None:
        with self._lock:
            live = [a for a in self._attempts.values() if a.container_id and a.started and not a.finishing]
        if not live:
            return
        states = self.owned.states()
        now = time.monotonic()
        for attempt in live:
            state = states.get(str(attempt.container_id), "removed")
            if state in ("exited", "dead", "removed"):
                attempt.finishing = True
                self._pool.submit(self._exited, attempt)
            elif not attempt.timed_out and now - attempt.started > attempt.task.execution.timeout:
                attempt.timed_out = True
                threading.Thread(target=self._docker_stop, args=(attempt.container_id,), daemon=True).start()

    def _exited(self, attempt: _Attempt) -> None:
        task = attempt.task
        exit_code: int | None = None
        oom = False
        try:
            state = self.client.api.inspect_container(attempt.container_id)["State"]
            exit_code = int(state.get("ExitCode", 0))
            oom = bool(state.get("OOMKilled"))
        except docker.errors.NotFound:
            exit_code = None
        deadline = time.monotonic() + LOG_DRAIN_TIMEOUT
        for thread in attempt.pumps:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        self.owned.remove(str(attempt.container_id))
        with self._lock:
            self._attempts.pop(task.name, None)
        execution = task.execution
        limit = attempt.memory_bytes // MIB
        if oom:
            message = (
                f"Memory limit of {limit} MiB exceeded with {limit} MiB used. Consider increasing the memory "
                "limit, see https://cloud.google.com/run/docs/configuring/jobs/memory-limits"
            )
            self.logs.append_system(execution, task.index, attempt.attempt, message)
            self._end_attempt(task, "failed", exit_code, {"code": CODE_RESOURCE_EXHAUSTED, "message": message})
        elif attempt.timed_out:
            message = f"Task was stopped because it reached the configured timeout of {execution.timeout:g}s."
            self.logs.append_system(execution, task.index, attempt.attempt, message)
            self._end_attempt(task, "failed", exit_code, {"code": CODE_DEADLINE_EXCEEDED, "message": message})
        elif attempt.cancelled:
            self._end_attempt(task, "cancelled", exit_code, {"code": CODE_CANCELLED, "message": "Task was cancelled."})
        elif exit_code is None:
            message = "The container was removed from the Docker engine outside the emulator."
            self._end_attempt(task, "failed", None, {"code": CODE_UNKNOWN, "message": message})
        elif exit_code == 0:
            self._end_attempt(task, "succeeded", 0, None)
        else:
            message = f"The container exited with an exit code of {exit_code}."
            self._end_attempt(task, "failed", exit_code, {"code": CODE_UNKNOWN, "message": message})

    def _task_failed_to_start(self, task: TaskRun, message: str, reason: int | None) -> None:
        with self.backend.lock:
            now = self.backend.clock()
            task.attempt_status = {"code": CODE_NOT_FOUND if reason == CONTAINER_MISSING else CODE_UNKNOWN}
            task.attempt_status["message"] = message
            task.finish(now, "failed", Condition("Completed", FAILED, now, message, ERROR, reason=reason))
        self._start_more(task.execution)

    def _end_attempt(self, task: TaskRun, outcome: str, exit_code: int | None, status: dict[str, Any] | None) -> None:
        execution = task.execution
        with self.backend.lock:
            now = self.backend.clock()
            task.exit_code = exit_code
            task.attempt_status = status
            task.updated = now
            retry = outcome == "failed" and task.attempts <= execution.max_retries and not execution.cancel_requested
            if retry:
                task.attempts += 1
            elif outcome == "succeeded":
                task.finish(now, outcome, Condition("Completed", SUCCEEDED, now))
            elif outcome == "cancelled":
                task.finish(now, outcome, _cancelled_condition(now))
            else:
                message = (status or {}).get("message") or "The task failed."
                task.finish(
                    now,
                    outcome,
                    Condition("Completed", FAILED, now, message, ERROR, execution_reason=NON_ZERO_EXIT_CODE),
                )
        if retry:
            self._pool.submit(self._run_attempt, task)
        else:
            self._start_more(execution)

    def _complete(self, execution: Execution) -> None:
        with self.backend.lock:
            if execution.done:
                return
            now = self.backend.clock()
            counts = execution.counts()
            if execution.started is None:
                execution.set_condition(Condition("Started", FAILED, now))
            if counts["succeededCount"] == execution.task_count:
                seconds = now - (execution.started or execution.created)
                condition = Condition(
                    "Completed", SUCCEEDED, now, f"Execution completed successfully in {seconds:.0f}s."
                )
            elif execution.cancel_requested or counts["cancelledCount"]:
                condition = Condition(
                    "Completed", FAILED, now, "The execution was cancelled.", ERROR, execution_reason=CANCELLED
                )
            else:
                missing = next(
                    (c for t in execution.tasks for c in t.conditions if c.reason == CONTAINER_MISSING), None
                )
                if missing is not None:
                    execution.set_condition(
                        Condition("ResourcesAvailable", FAILED, now, missing.message, ERROR, reason=CONTAINER_MISSING)
                    )
                    condition = Condition("Completed", FAILED, now, missing.message, ERROR, reason=CONTAINER_MISSING)
                else:
                    failed = next(t for t in execution.tasks if t.outcome == "failed")
                    detail = (failed.attempt_status or {}).get("message", "")
                    condition = Condition(
                        "Completed",
                        FAILED,
                        now,
                        f"Task {failed.id} failed with message: {detail} Execution {execution.id} has failed to "
                        f"complete, {counts['succeededCount']}/{execution.task_count} tasks were a success.",
                        ERROR,
                        execution_reason=NON_ZERO_EXIT_CODE,
                    )
            execution.set_condition(condition)
            execution.completed = now


def _cancelled_condition(now: float) -> Condition:
    return Condition("Completed", FAILED, now, "The task was cancelled.", ERROR, execution_reason=CANCELLED)
