"""The ECS control plane of the emulator: clusters, task definitions, tasks, in memory.

Every action of the API, with ECS's validation (RegisterTaskDefinition's in
:mod:`.taskdefs`, RunTask's and its clientToken rules in :mod:`.runtask`) and its
results as JSON documents. What it does not do is run anything: RunTask hands
the tasks it creates to a :class:`Launcher` (the Docker side, in
:mod:`mayfly.providers.ecs.emulator.tasks`), and StopTask asks the launcher to
stop the container.

Thread-safe: one re-entrant lock guards all state, including the records the
launcher updates. State is per region, like ECS's.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from mayfly.providers.ecs.emulator import arns, runtask, taskdefs
from mayfly.providers.ecs.emulator.errors import (
    EcsError,
    client_exception,
    cluster_not_found,
    conflict,
    invalid_parameter,
)
from mayfly.providers.ecs.emulator.faults import Faults
from mayfly.providers.ecs.emulator.model import Cluster, Task, TaskDefinition, tag_list
from mayfly.providers.ecs.emulator.params import MAX_TAGS, page, parse_tags

#: ECS keeps stopped tasks describable for at least an hour.
STOPPED_TASK_RETENTION = 3600.0
DEFAULT_STOP_REASON = "Task stopped by user"

_CLUSTER_NAME = re.compile(r"^[A-Za-z0-9_-]{1,255}$")


class Launcher(Protocol):
    """What runs the tasks the backend creates."""

    def launch(self, task: Task) -> None:
        """Start the task's container (asynchronously)."""

    def stop(self, task: Task) -> None:
        """Stop the task's container if it runs (asynchronously); the task's desired status is already STOPPED."""


@dataclass
class _Region:
    clusters: dict[str, Cluster] = field(default_factory=dict)
    families: dict[str, list[TaskDefinition]] = field(default_factory=dict)
    tasks: dict[str, Task] = field(default_factory=dict)
    #: clientToken -> (fingerprint of the request, ARNs of the tasks it created)
    tokens: dict[str, tuple[str, list[str]]] = field(default_factory=dict)


class EcsBackend:
    """All ECS state of the emulator, and the actions on it."""

    def __init__(
        self,
        launcher: Launcher | None = None,
        *,
        stopped_task_retention: float = STOPPED_TASK_RETENTION,
        delete_tags_on_stop: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.lock = threading.RLock()
        self.launcher = launcher
        self.stopped_task_retention = stopped_task_retention
        #: StopTask deletes the task's tags, as the ECS API reference documents.
        self.delete_tags_on_stop = delete_tags_on_stop
        self.clock = clock
        #: Failures a test injected (no capacity, quota, throttling), per cluster: see :mod:`.faults`.
        self.faults = Faults()
        self._regions: dict[str, _Region] = {}

    def _region(self, region: str) -> _Region:
        return self._regions.setdefault(region, _Region())

    def _cluster(self, region: str, ref: str | None) -> Cluster:
        cluster = self._region(region).clusters.get(arns.cluster_name(ref))
        if cluster is None or cluster.status != "ACTIVE":
            raise cluster_not_found()
        return cluster

    def _counts(self, region: str, cluster: Cluster) -> tuple[int, int]:
        running = pending = 0
        for task in self._region(region).tasks.values():
            if task.cluster is cluster:
                running += task.last_status == "RUNNING"
                pending += task.last_status in ("PROVISIONING", "PENDING")
        return running, pending

    # ------------------------------------------------------------- clusters

    def create_cluster(self, region: str, req: dict[str, Any]) -> dict[str, Any]:
        name = req.get("clusterName") or "default"
        if not _CLUSTER_NAME.match(name):
            raise invalid_parameter(
                "Cluster name can have up to 255 letters (uppercase and lowercase), numbers, underscores, and hyphens."
            )
        providers = list(req.get("capacityProviders") or [])
        for provider in providers:
            if provider not in ("FARGATE", "FARGATE_SPOT"):
                raise invalid_parameter(f"The specified capacity provider '{provider}' was not found.")
        strategy = list(req.get("defaultCapacityProviderStrategy") or [])
        for item in strategy:
            if item.get("capacityProvider") not in providers:
                raise invalid_parameter(
                    "The specified capacity provider strategy cannot contain a capacity provider that is not "
                    "associated with the cluster."
                )
        with self.lock:
            regional = self._region(region)
            cluster = regional.clusters.get(name)
            # Like ECS, creating an existing (active) cluster returns it unchanged.
            if cluster is None or cluster.status != "ACTIVE":
                cluster = Cluster(
                    region=region,
                    name=name,
                    arn=arns.cluster_arn(region, name),
                    tags=parse_tags(req.get("tags")),
                    settings=list(req.get("settings") or []),
                    configuration=req.get("configuration"),
                    capacity_providers=providers,
                    default_strategy=strategy,
                )
                regional.clusters[name] = cluster
            running, pending = self._counts(region, cluster)
            return {
                "cluster": cluster.to_json(running=running, pending=pending, include=frozenset({"SETTINGS", "TAGS"}))
            }

    def describe_clusters(self, region: str, req: dict[str, Any]) -> dict[str, Any]:
        include = frozenset(req.get("include") or [])
        refs = req.get("clusters") or ["default"]
        found: list[dict[str, Any]] = []
        failures: list[dict[str, Any]] = []
        with self.lock:
            for ref in refs:
                cluster = self._region(region).clusters.get(arns.cluster_name(ref))
                if cluster is None:
                    failures.append({"arn": arns.cluster_arn(region, arns.cluster_name(ref)), "reason": "MISSING"})
                    continue
                running, pending = self._counts(region, cluster)
                found.append(cluster.to_json(running=running, pending=pending, include=include))
        return {"clusters": found, "failures": failures}

    def list_clusters(self, region: str, req: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            items = [c.arn for c in self._region(region).clusters.values() if c.status == "ACTIVE"]
        return page(items, req, "clusterArns")

    def delete_cluster(self, region: str, req: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            cluster = self._cluster(region, req.get("cluster"))
            running, pending = self._counts(region, cluster)
            if running or pending:
                raise EcsError(
                    "ClusterContainsTasksException",
                    "The Cluster cannot be deleted while Tasks are active.",
                )
            cluster.status = "INACTIVE"
            return {"cluster": cluster.to_json(running=0, pending=0)}

    # ----------------------------------------------------- task definitions

    def register_task_definition(self, region: str, req: dict[str, Any]) -> dict[str, Any]:
        family, body, compatibilities = taskdefs.normalize(req)
        tags = parse_tags(req.get("tags"))
        with self.lock:
            revisions = self._region(region).families.setdefault(family, [])
            revision = len(revisions) + 1
            definition = TaskDefinition(
                region=region,
                family=family,
                revision=revision,
                arn=arns.task_definition_arn(region, family, revision),
                body=body,
                compatibilities=compatibilities,
                registered_at=self.clock(),
                tags=tags,
            )
            revisions.append(definition)
            return {"taskDefinition": definition.to_json(), "tags": tag_list(tags)}

    def _definition(self, region: str, ref: str) -> TaskDefinition | None:
        """``family``, ``family:revision`` or an ARN; a bare family means its latest ACTIVE revision."""
        parsed = arns.resource_of(ref)
        if parsed:
            if parsed[0] != "task-definition":
                return None
            ref = parsed[1]
        family, _, revision = ref.partition(":")
        revisions = self._region(region).families.get(family, [])
        if not revision:
            active = [d for d in revisions if d.status == "ACTIVE"]
            return active[-1] if active else None
        if not revision.isdigit() or not 1 <= int(revision) <= len(revisions):
            return None
        return revisions[int(revision) - 1]

    def describe_task_definition(self, region: str, req: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            definition = self._definition(region, str(req.get("taskDefinition", "")))
            if definition is None:
                raise client_exception("Unable to describe task definition.")
            doc: dict[str, Any] = {"taskDefinition": definition.to_json()}
            if "TAGS" in (req.get("include") or []):
                doc["tags"] = tag_list(definition.tags)
            return doc

    def deregister_task_definition(self, region: str, req: dict[str, Any]) -> dict[str, Any]:
        ref = str(req.get("taskDefinition", ""))
        with self.lock:
            definition = self._definition(region, ref) if ":" in ref else None
            if definition is None:
                raise client_exception("The specified task definition does not exist.")
            if definition.status == "ACTIVE":
                definition.status = "INACTIVE"
                definition.deregistered_at = self.clock()
            return {"taskDefinition": definition.to_json()}

    def list_task_definitions(self, region: str, req: dict[str, Any]) -> dict[str, Any]:
        status = req.get("status") or "ACTIVE"
        family = req.get("familyPrefix")
        with self.lock:
            items = [
                d.arn
                for name, revisions in sorted(self._region(region).families.items())
                if family is None or name == family
                for d in revisions
                if d.status == status
            ]
        if req.get("sort") == "DESC":
            items.reverse()
        return page(items, req, "taskDefinitionArns")

    # ----------------------------------------------------------------- tasks

    def run_task(self, region: str, req: dict[str, Any]) -> dict[str, Any]:
        """RunTask: validate, create the tasks (PROVISIONING) and hand them to the launcher."""
        token = req.get("clientToken")
        runtask.check_client_token(token)
        fault = self.faults.take("RunTask", arns.cluster_name(req.get("cluster")))
        if fault is not None:
            if fault.code is not None:
                raise EcsError(fault.code, fault.message or f"{fault.code} (injected)", status=fault.status)
            name = arns.cluster_name(req.get("cluster"))
            failure = {"arn": arns.cluster_arn(region, name), "reason": fault.reason or "", "detail": fault.detail}
            return {"tasks": [], "failures": [{k: v for k, v in failure.items() if v is not None}]}
        fingerprint = runtask.fingerprint(req)
        with self.lock:
            regional = self._region(region)
            if token is not None and token in regional.tokens:
                seen, task_arns = regional.tokens[token]
                if seen != fingerprint:
                    raise conflict(
                        f"The clientToken '{token}' is already in use with a different RunTask request.", task_arns
                    )
                # Same token, same request: the same tasks, nothing new is launched.
                return {
                    "tasks": [regional.tasks[a].to_json(include_tags=True) for a in task_arns if a in regional.tasks],
                    "failures": [],
                }
            cluster = self._cluster(region, req.get("cluster"))
            ref = req.get("taskDefinition")
            if not isinstance(ref, str) or not ref:
                raise invalid_parameter("taskDefinition can not be blank.")
            definition = self._definition(region, ref)
            if definition is None:
                raise client_exception("TaskDefinition not found.")
            if definition.status != "ACTIVE":
                raise client_exception("TaskDefinition is inactive")
            tasks, failures = runtask.new_tasks(region, cluster, definition, req, self.clock())
            for task in tasks:
                regional.tasks[task.arn] = task
            if token is not None:
                regional.tokens[token] = (fingerprint, [t.arn for t in tasks])
            docs = [t.to_json(include_tags=True) for t in tasks]
        if self.launcher is not None:
            for task in tasks:
                self.launcher.launch(task)
        return {"tasks": docs, "failures": failures}

    def _task(self, region: str, cluster: Cluster, ref: str) -> Task | None:
        task = self._region(region).tasks.get(arns.task_arn(region, cluster.name, arns.task_id(ref)))
        return task if task is not None and task.cluster is cluster else None

    def describe_tasks(self, region: str, req: dict[str, Any]) -> dict[str, Any]:
        refs = req.get("tasks")
        if not isinstance(refs, list) or not refs:
            raise invalid_parameter("Tasks cannot be empty.")
        if len(refs) > 100:
            raise invalid_parameter("Tasks cannot contain more than 100 tasks.")
        include_tags = "TAGS" in (req.get("include") or [])
        found: list[dict[str, Any]] = []
        failures: list[dict[str, Any]] = []
        with self.lock:
            self._expire(region)
            cluster = self._cluster(region, req.get("cluster"))
            for ref in refs:
                task = self._task(region, cluster, str(ref))
                if task is None:
                    failures.append({"arn": str(ref), "reason": "MISSING"})
                else:
                    found.append(task.to_json(include_tags=include_tags))
        return {"tasks": found, "failures": failures}

    def stop_task(self, region: str, req: dict[str, Any]) -> dict[str, Any]:
        reason = req.get("reason") or DEFAULT_STOP_REASON
        with self.lock:
            cluster = self._cluster(region, req.get("cluster"))
            task = self._task(region, cluster, str(req.get("task", "")))
            if task is None:
                raise invalid_parameter("The referenced task was not found.")
            asked = task.request_stop(self.clock(), "UserInitiated", str(reason))
            if asked and self.delete_tags_on_stop:
                # NOTE: ECS's StopTask reference: "Stops a running task. Any tags associated with the task
                # will be deleted." Tags added afterwards (TagResource) stay.
                task.tags.clear()
            doc = task.to_json(include_tags=False)
        if asked and self.launcher is not None:
            self.launcher.stop(task)
        return {"task": doc}

    def list_tasks(self, region: str, req: dict[str, Any]) -> dict[str, Any]:
        started_by = req.get("startedBy")
        family = req.get("family")
        desired = req.get("desiredStatus") or "RUNNING"
        launch_type = req.get("launchType")
        if req.get("serviceName") or req.get("containerInstance") or req.get("daemonName"):
            # Neither services nor container instances exist here: nothing matches.
            return {"taskArns": []}
        if started_by is not None and (family is not None or launch_type is not None):
            raise invalid_parameter("startedBy cannot be combined with the family or launchType filters.")
        with self.lock:
            self._expire(region)
            cluster = self._cluster(region, req.get("cluster"))
            items = [
                t.arn
                for t in self._region(region).tasks.values()
                if t.cluster is cluster
                and t.desired_status == desired
                and (started_by is None or t.started_by == started_by)
                and (family is None or t.definition.family == family)
                and (launch_type is None or t.launch_type == launch_type)
            ]
        return page(items, req, "taskArns")

    def _expire(self, region: str) -> None:
        """Forget tasks stopped longer than the retention (and their client tokens)."""
        regional = self._region(region)
        horizon = self.clock() - self.stopped_task_retention
        gone = {a for a, t in regional.tasks.items() if t.stopped_at is not None and t.stopped_at < horizon}
        if not gone:
            return
        for arn in gone:
            del regional.tasks[arn]
        for token, (_, task_arns) in list(regional.tokens.items()):
            if set(task_arns) <= gone:
                del regional.tokens[token]

    # ------------------------------------------------------------------ tags

    def _tagged(self, region: str, arn: str) -> dict[str, str]:
        parsed = arns.resource_of(arn)
        regional = self._region(region)
        if parsed is not None:
            kind, rest = parsed
            if kind == "cluster" and rest in regional.clusters:
                return regional.clusters[rest].tags
            if kind == "task" and arn in regional.tasks:
                return regional.tasks[arn].tags
            if kind == "task-definition":
                definition = self._definition(region, rest)
                if definition is not None and ":" in rest:
                    return definition.tags
        raise EcsError("ResourceNotFoundException", "The specified resource is not found.")

    def tag_resource(self, region: str, req: dict[str, Any]) -> dict[str, Any]:
        tags = parse_tags(req.get("tags"))
        with self.lock:
            current = self._tagged(region, str(req.get("resourceArn", "")))
            if len({**current, **tags}) > MAX_TAGS:
                raise invalid_parameter(f"A resource can have at most {MAX_TAGS} tags.")
            current.update(tags)
        return {}

    def untag_resource(self, region: str, req: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            current = self._tagged(region, str(req.get("resourceArn", "")))
            for key in req.get("tagKeys") or []:
                current.pop(key, None)
        return {}

    def list_tags_for_resource(self, region: str, req: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            return {"tags": tag_list(self._tagged(region, str(req.get("resourceArn", ""))))}

    def actions(self) -> dict[str, Callable[[str, dict[str, Any]], dict[str, Any]]]:
        """ECS action name -> handler ``(region, request) -> response``."""
        return {
            "CreateCluster": self.create_cluster,
            "DescribeClusters": self.describe_clusters,
            "ListClusters": self.list_clusters,
            "DeleteCluster": self.delete_cluster,
            "RegisterTaskDefinition": self.register_task_definition,
            "DescribeTaskDefinition": self.describe_task_definition,
            "DeregisterTaskDefinition": self.deregister_task_definition,
            "ListTaskDefinitions": self.list_task_definitions,
            "RunTask": self.run_task,
            "DescribeTasks": self.describe_tasks,
            "StopTask": self.stop_task,
            "ListTasks": self.list_tasks,
            "TagResource": self.tag_resource,
            "UntagResource": self.untag_resource,
            "ListTagsForResource": self.list_tags_for_resource,
        }
