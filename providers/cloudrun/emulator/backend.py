"""The Cloud Run Admin API v2 state: jobs, executions, tasks and operations, and the calls on them.

Each method is one API call taking the path's parts and the JSON body or query
and returning the JSON answer (or raising :class:`~.errors.ApiError`). The
:class:`Launcher` (:mod:`.runner`) runs what ``RunJob`` creates and reports back
through :meth:`CloudRunBackend.lock` and the model's setters.
"""

from __future__ import annotations

import copy
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from mayfly.providers.cloudrun.emulator import names, resources
from mayfly.providers.cloudrun.emulator.errors import (
    ApiError,
    already_exists,
    failed_precondition,
    invalid_argument,
    not_found,
)
from mayfly.providers.cloudrun.emulator.model import (
    CANCELLING,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    PENDING,
    Condition,
    Execution,
    Job,
    Operation,
    TaskRun,
    parse_duration,
)

RESERVED_LABEL_PREFIXES = (
    "run.googleapis.com",
    "cloud.googleapis.com",
    "serving.knative.dev",
    "autoscaling.knative.dev",
)
MAX_PAGE = 1000


class Launcher(Protocol):
    """Runs executions (the Docker side)."""

    def launch(self, execution: Execution) -> None: ...

    def cancel(self, execution: Execution) -> None: ...


def _page(items: list[Any], query: dict[str, str], key: str) -> dict[str, Any]:
    try:
        size = int(query.get("pageSize") or 0) or 100
        start = int(query.get("pageToken") or 0)
    except ValueError:
        raise invalid_argument("Invalid page token or page size.") from None
    size = min(size, MAX_PAGE)
    chunk = items[start : start + size]
    doc: dict[str, Any] = {key: [i.to_json() for i in chunk]}
    if start + size < len(items):
        doc["nextPageToken"] = str(start + size)
    return doc


def _labels(doc: dict[str, Any], what: str) -> dict[str, str]:
    labels = {str(k): str(v) for k, v in (doc.get(what) or {}).items()}
    for key in labels:
        if key.split("/", 1)[0].endswith(RESERVED_LABEL_PREFIXES):
            raise invalid_argument(f"The {what[:-1]} '{key}' uses a reserved namespace and is not supported.")
    return labels


def _check_template(template: dict[str, Any]) -> None:
    """INVALID_ARGUMENT for an execution template Cloud Run would refuse."""
    task = template.get("template") or {}
    containers = task.get("containers") or []
    if not containers:
        raise invalid_argument("template.template.containers: a job must have exactly one container.")
    seen: set[str] = set()
    for index, container in enumerate(containers):
        if not container.get("image"):
            raise invalid_argument(f"template.template.containers[{index}].image: Image must be specified.")
        name = container.get("name") or ""
        if name in seen:
            raise invalid_argument(f"template.template.containers[{index}].name: duplicate container name '{name}'.")
        seen.add(name)
        try:
            resources.limits(container)
        except ValueError as exc:
            raise invalid_argument(f"template.template.containers[{index}].resources.limits: {exc}") from None
    try:
        timeout = parse_duration(task.get("timeout", f"{DEFAULT_TIMEOUT}s"), "template.template.timeout")
    except ValueError as exc:
        raise invalid_argument(str(exc)) from None
    if not 0 < timeout <= 7 * 86400:
        raise invalid_argument("template.template.timeout: must be between 1s and 168h.")
    retries = task.get("maxRetries", DEFAULT_MAX_RETRIES)
    if not isinstance(retries, int) or not 0 <= retries <= 10:
        raise invalid_argument("template.template.max_retries: must be between 0 and 10.")
    count = template.get("taskCount", 1)
    if not isinstance(count, int) or not 1 <= count <= 10000:
        raise invalid_argument("template.task_count: must be between 1 and 10000.")


def _execution_token(job_id: str, body: dict[str, Any]) -> tuple[str, str] | None:
    """``(field, token)`` of a job's startExecutionToken / runExecutionToken (INVALID_ARGUMENT when bad)."""
    given = [(k, str(body[k])) for k in ("startExecutionToken", "runExecutionToken") if body.get(k)]
    if not given:
        return None
    if len(given) > 1:
        raise invalid_argument("Only one of start_execution_token and run_execution_token may be set.")
    field, token = given[0]
    if len(job_id) + len(token) >= 63 or not names.JOB_ID.match(f"{job_id}-{token}"):
        raise invalid_argument(
            f"Invalid {field} '{token}': lowercase letters, digits and dashes, and the job name and token "
            "together fewer than 63 characters."
        )
    return field, token


class CloudRunBackend:
    """Jobs, executions and operations of every project and location (in memory)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.lock = threading.RLock()
        self.launcher: Launcher | None = None
        self.jobs: dict[str, Job] = {}
        self.executions: dict[str, Execution] = {}
        self.operations: dict[str, Operation] = {}

    # ------------------------------------------------------------- helpers

    def _operation(
        self, parent: names.Parent, kind: str, subject: Job | Execution, *, finished: bool = True
    ) -> Operation:
        op = Operation(parent.project, parent.location, str(uuid.uuid4()), kind, subject, finished=finished)
        self.operations[op.name] = op
        return op

    def _job(self, parent: names.Parent, job_id: str) -> Job:
        job = self.jobs.get(f"{parent.name}/jobs/{job_id}")
        if job is None:
            raise not_found(
                f"Resource '{job_id}' of kind 'JOB' in region '{parent.location}' in project '{parent.project}' "
                "does not exist."
            )
        return job

    def _execution(self, parent: names.Parent, job_id: str, execution_id: str) -> Execution:
        execution = self.executions.get(f"{parent.name}/jobs/{job_id}/executions/{execution_id}")
        if execution is None or execution.deleted is not None:
            raise not_found(
                f"Resource '{execution_id}' of kind 'EXECUTION' in region '{parent.location}' in project "
                f"'{parent.project}' does not exist."
            )
        return execution

    # ----------------------------------------------------------------- jobs

    def create_job(self, parent: names.Parent, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        job_id = names.check_job_id(query.get("jobId", ""))
        if body.get("name") and body["name"] != f"{parent.name}/jobs/{job_id}":
            raise invalid_argument("job.name must be empty or match the parent and job_id.")
        template = copy.deepcopy(body.get("template") or {})
        _check_template(template)
        labels, annotations = _labels(body, "labels"), _labels(body, "annotations")
        token = _execution_token(job_id, body)
        with self.lock:
            name = f"{parent.name}/jobs/{job_id}"
            if name in self.jobs:
                raise already_exists(f"Resource '{job_id}' already exists.")
            job = Job(
                parent.project,
                parent.location,
                job_id,
                template,
                labels,
                annotations,
                self.clock(),
                client=body.get("client"),
                client_version=body.get("clientVersion"),
                token=token,
            )
            if query.get("validateOnly") == "true":
                return self._operation(parent, "Job", job).to_json()
            self.jobs[name] = job
            return self._job_operation(parent, job)

    def _job_operation(self, parent: names.Parent, job: Job) -> dict[str, Any]:
        """The operation of a create or update; with an execution token, its execution is started first."""
        op = self._operation(parent, "Job", job)
        if job.token is not None:
            kind, token = job.token
            name = f"{job.name}/executions/{job.id}-{token}"
            execution = self.executions.get(name)
            if execution is None:
                execution = self._new_execution(job, {}, execution_id=f"{job.id}-{token}")
                job.execution_count += 1
                job.latest = execution
                self.executions[name] = execution
                if self.launcher is not None:
                    self.launcher.launch(execution)
            op.waits_for = execution
            op.until_started = kind == "startExecutionToken"
        return op.to_json()

    def update_job(
        self, parent: names.Parent, job_id: str, query: dict[str, str], body: dict[str, Any]
    ) -> dict[str, Any]:
        """UpdateJob (``PATCH``): a new template and labels; ``allowMissing=true`` creates a missing job."""
        names.check_job_id(job_id)
        template = copy.deepcopy(body.get("template") or {})
        _check_template(template)
        labels, annotations = _labels(body, "labels"), _labels(body, "annotations")
        token = _execution_token(job_id, body)
        with self.lock:
            name = f"{parent.name}/jobs/{job_id}"
            job = self.jobs.get(name)
            if job is None:
                if query.get("allowMissing") != "true":
                    self._job(parent, job_id)  # NOT_FOUND
                return self.create_job(parent, {**query, "jobId": job_id}, body)
            if query.get("validateOnly") == "true":
                return self._operation(parent, "Job", job).to_json()
            job.template, job.labels, job.annotations = template, labels, annotations
            job.generation += 1
            job.updated = self.clock()
            job.token = token
            return self._job_operation(parent, job)

    def get_job(self, parent: names.Parent, job_id: str) -> dict[str, Any]:
        with self.lock:
            return self._job(parent, job_id).to_json()

    def list_jobs(self, parent: names.Parent, query: dict[str, str]) -> dict[str, Any]:
        with self.lock:
            jobs = [j for j in self.jobs.values() if (j.project, j.location) == (parent.project, parent.location)]
            return _page(sorted(jobs, key=lambda j: j.id), query, "jobs")

    def delete_job(self, parent: names.Parent, job_id: str, query: dict[str, str]) -> dict[str, Any]:
        with self.lock:
            job = self._job(parent, job_id)
            if query.get("validateOnly") == "true":
                return self._operation(parent, "Job", job).to_json()
            job.deleted = self.clock()
            del self.jobs[job.name]
            doomed = [e for e in self.executions.values() if e.job is job]
            for execution in doomed:
                execution.deleted = job.deleted
                execution.cancel_requested = True
                del self.executions[execution.name]
        # Deleting a job deletes its executions; running ones are stopped.
        for execution in doomed:
            if not execution.done and self.launcher is not None:
                self.launcher.cancel(execution)
        with self.lock:
            return self._operation(parent, "Job", job).to_json()

    # ------------------------------------------------------------------ run

    def run_job(self, parent: names.Parent, job_id: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            job = self._job(parent, job_id)
            execution = self._new_execution(job, body.get("overrides") or {})
            if body.get("validateOnly"):
                return self._operation(parent, "Execution", execution).to_json()
            job.execution_count += 1
            job.latest = execution
            self.executions[execution.name] = execution
            op = self._operation(parent, "Execution", execution, finished=False)
            doc = op.to_json()
        if self.launcher is not None:
            self.launcher.launch(execution)
        return doc

    def _new_execution(self, job: Job, overrides: dict[str, Any], *, execution_id: str | None = None) -> Execution:
        template = copy.deepcopy(job.template)
        task = template.get("template") or {}
        containers = [copy.deepcopy(c) for c in task.get("containers") or []]
        for override in overrides.get("containerOverrides") or []:
            target_name = override.get("name") or ""
            matches = [c for c in containers if (c.get("name") or "") == target_name]
            if not matches and not target_name and len(containers) == 1:
                matches = containers
            if not matches:
                raise invalid_argument(f"overrides.container_overrides: no container named '{target_name}'.")
            container = matches[0]
            if override.get("clearArgs"):
                container.pop("args", None)
            if override.get("args"):
                container["args"] = list(override["args"])
            if override.get("env"):
                env = {e.get("name"): e for e in container.get("env") or []}
                for item in override["env"]:
                    if not item.get("name"):
                        raise invalid_argument("overrides.container_overrides.env: name must not be empty.")
                    env[item["name"]] = dict(item)
                container["env"] = list(env.values())
        try:
            timeout = parse_duration(
                overrides.get("timeout") or task.get("timeout") or f"{DEFAULT_TIMEOUT}s", "overrides.timeout"
            )
        except ValueError as exc:
            raise invalid_argument(str(exc)) from None
        if not 0 < timeout <= 7 * 86400:
            raise invalid_argument("overrides.timeout: must be between 1s and 168h.")
        task_count = overrides.get("taskCount") or template.get("taskCount") or 1
        if not isinstance(task_count, int) or not 1 <= task_count <= 10000:
            raise invalid_argument("overrides.task_count: must be between 1 and 10000.")
        now = self.clock()
        task_template = {**task, "containers": containers, "timeout": f"{timeout:g}s"}
        execution = Execution(
            job=job,
            id=execution_id or names.execution_id(job.id),
            created=now,
            template=task_template,
            containers=containers,
            task_count=task_count,
            parallelism=int(template.get("parallelism") or 0) or task_count,
            timeout=timeout,
            max_retries=int(task.get("maxRetries", DEFAULT_MAX_RETRIES)),
            labels={**job.labels, **(template.get("labels") or {})},
            annotations=dict(template.get("annotations") or {}),
        )
        execution.tasks = [TaskRun(execution, index, now) for index in range(task_count)]
        for kind in ("Completed", "ResourcesAvailable", "Started"):
            execution.set_condition(Condition(kind, PENDING, now))
        return execution

    # ----------------------------------------------------------- executions

    def get_execution(self, parent: names.Parent, job_id: str, execution_id: str) -> dict[str, Any]:
        with self.lock:
            return self._execution(parent, job_id, execution_id).to_json()

    def list_executions(self, parent: names.Parent, job_id: str, query: dict[str, str]) -> dict[str, Any]:
        with self.lock:
            if job_id != "-":
                self._job(parent, job_id)
            found = [
                e
                for e in self.executions.values()
                if (e.job.project, e.job.location) == (parent.project, parent.location)
                and (job_id == "-" or e.job.id == job_id)
                and e.deleted is None
            ]
            return _page(sorted(found, key=lambda e: -e.created), query, "executions")

    def cancel_execution(self, parent: names.Parent, job_id: str, execution_id: str) -> dict[str, Any]:
        with self.lock:
            execution = self._execution(parent, job_id, execution_id)
            if execution.done:
                raise failed_precondition(f"Execution '{execution_id}' has already completed and cannot be cancelled.")
            first = not execution.cancel_requested
            execution.cancel_requested = True
            now = self.clock()
            execution.set_condition(
                Condition("Completed", PENDING, now, "The execution is being cancelled.", execution_reason=CANCELLING)
            )
            doc = self._operation(parent, "Execution", execution).to_json()
        if first and self.launcher is not None:
            self.launcher.cancel(execution)
        return doc

    def delete_execution(self, parent: names.Parent, job_id: str, execution_id: str) -> dict[str, Any]:
        with self.lock:
            execution = self._execution(parent, job_id, execution_id)
            execution.deleted = self.clock()
            running = not execution.done
            execution.cancel_requested = True
            doc = self._operation(parent, "Execution", execution).to_json()
            del self.executions[execution.name]
        if running and self.launcher is not None:
            self.launcher.cancel(execution)
        return doc

    # ---------------------------------------------------------------- tasks

    def list_tasks(self, parent: names.Parent, job_id: str, execution_id: str, query: dict[str, str]) -> dict[str, Any]:
        with self.lock:
            execution = self._execution(parent, job_id, execution_id)
            return _page(list(execution.tasks), query, "tasks")

    def get_task(self, parent: names.Parent, job_id: str, execution_id: str, task_id: str) -> dict[str, Any]:
        with self.lock:
            execution = self._execution(parent, job_id, execution_id)
            for task in execution.tasks:
                if task.id == task_id:
                    return task.to_json()
            raise not_found(
                f"Resource '{task_id}' of kind 'TASK' in region '{parent.location}' in project '{parent.project}' "
                "does not exist."
            )

    # ----------------------------------------------------------- operations

    def get_operation(self, parent: names.Parent, operation_id: str) -> dict[str, Any]:
        with self.lock:
            op = self.operations.get(f"{parent.name}/operations/{operation_id}")
            if op is None:
                raise not_found(f"Operation '{operation_id}' not found.")
            return op.to_json()

    def wait_operation(self, parent: names.Parent, operation_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """``:wait``: the operation once done, or when ``timeout`` (default 60 s) passes."""
        try:
            timeout = parse_duration(body.get("timeout") or "60s", "timeout")
        except ValueError as exc:
            raise invalid_argument(str(exc)) from None
        deadline = time.monotonic() + min(timeout, 600)
        while True:
            doc = self.get_operation(parent, operation_id)
            if doc["done"] or time.monotonic() >= deadline:
                return doc
            time.sleep(0.2)

    def delete_operation(self, parent: names.Parent, operation_id: str) -> dict[str, Any]:
        with self.lock:
            if self.operations.pop(f"{parent.name}/operations/{operation_id}", None) is None:
                raise not_found(f"Operation '{operation_id}' not found.")
            return {}


__all__ = ["ApiError", "CloudRunBackend", "Launcher"]
