"""Clusters and stacks: IronWorker's names for Mayfly's targets and runtimes, read-only.

IronWorker's ``cluster`` of a task is a Mayfly target (``local``, or one the
operator added with ``mayfly target add``), so ``GET /clusters`` lists the
targets and ``GET /clusters/{id}`` shows one. Creating, changing, sharing or
terminating clusters (IronWorker's autoscaled AWS clusters) is the operator's
job on a Mayfly server, not a tenant's: those routes answer 501 with the
reason. ``GET /stacks`` lists the runtimes a zip can run on.

Clusters and stacks sit outside ``/projects/{id}`` in IronWorker's API; they
are served there and, for clients that put them under the project, there too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends

from mayfly.api.deps import MayflyDep
from mayfly.api.ironworker.auth import caller, project
from mayfly.api.ironworker.errors import IronRoute
from mayfly.api.ironworker.runtimes import LEGACY_RUNTIMES
from mayfly.core.app import Mayfly
from mayfly.core.errors import NotFound, TargetNotFound, Unsupported
from mayfly.core.models import TaskStatus
from mayfly.core.records import Target, iso

#: ``/2/clusters``, ``/2/stacks``: any valid token.
root = APIRouter(prefix="/2", route_class=IronRoute, tags=["ironworker"])
#: The same under ``/2/projects/{project_id}``.
scoped = APIRouter(route_class=IronRoute, tags=["ironworker"])

#: Why the cluster management routes are not served (501).
MANAGED = (
    "clusters are Mayfly targets, managed by the server's operator (mayfly target add/remove); "
    "this API lists them (GET /clusters) and routes tasks to them (cluster)"
)


def cluster_json(target: Target) -> dict[str, Any]:
    """A target as IronWorker's cluster object: ``id`` and ``name`` are the target's name."""
    return {
        "id": target.name,
        "name": target.name,
        "provider": target.provider,
        "runners_max": target.capacity,
        "created_at": iso(target.created_at),
    }


def _target(mf: Mayfly, cluster_id: str) -> Target:
    try:
        return mf.targets.get(cluster_id)
    except TargetNotFound:
        raise NotFound("Cluster not found") from None


def _stats(mf: Mayfly, project_id: str, target: Target) -> dict[str, Any]:
    """The caller's own unfinished tasks on the target (other projects' load is not shown)."""
    counts = mf.tasks.count_by_status(project_id, target=target.name)
    return {
        "id": target.name,
        "runners_total": target.capacity,
        "queued": counts.get(TaskStatus.QUEUED.value, 0),
        "preparing": counts.get(TaskStatus.PREPARING.value, 0),
        "running": counts.get(TaskStatus.RUNNING.value, 0),
    }


def stacks() -> list[str]:
    """The shipped runtimes' names, then IronWorker's legacy ``runtime`` names that map onto them."""
    from mayfly.runtimes import catalog

    names = [rt.name for rt in catalog()]
    return names + sorted(name for name, (rt, _) in LEGACY_RUNTIMES.items() if rt in names)


def _not_served(reason: str) -> Callable[[], dict[str, Any]]:
    def endpoint() -> dict[str, Any]:
        raise Unsupported(reason)

    return endpoint


def _routes(router: APIRouter, who: Callable[..., str]) -> None:
    """Register the cluster and stack routes on ``router``, authenticated by ``who``."""
    dep = Depends(who)

    @router.get("/clusters")
    def list_clusters(mf: MayflyDep, pid: str = dep) -> dict[str, Any]:
        """Every target, as a cluster."""
        return {"clusters": [cluster_json(t) for t in mf.targets.list()]}

    @router.get("/clusters/shared")
    def shared_clusters(mf: MayflyDep, pid: str = dep) -> dict[str, Any]:
        """Clusters shared with this user: every target is shared by every project of the server."""
        return {"clusters": [cluster_json(t) for t in mf.targets.list()]}

    @router.get("/clusters/{cluster_id}")
    def get_cluster(cluster_id: str, mf: MayflyDep, pid: str = dep) -> dict[str, Any]:
        """One target, as a cluster."""
        return {"cluster": cluster_json(_target(mf, cluster_id))}

    @router.get("/clusters/{cluster_id}/stats")
    def cluster_stats(cluster_id: str, mf: MayflyDep, pid: str = dep) -> dict[str, Any]:
        """The target's capacity and the caller's unfinished tasks on it."""
        return _stats(mf, pid, _target(mf, cluster_id))

    @router.get("/stacks")
    def list_stacks(pid: str = dep) -> list[str]:
        """The runtimes a zip can name as ``stack`` (or ``runtime``)."""
        return stacks()

    refused = [
        ("POST", "/clusters"),
        ("PUT", "/clusters/{cluster_id}"),
        ("DELETE", "/clusters/{cluster_id}"),
        ("POST", "/clusters/{cluster_id}/terminate"),
        ("GET", "/clusters/{cluster_id}/credentials"),
        ("POST", "/clusters/{cluster_id}/share"),
        ("POST", "/clusters/{cluster_id}/unshare/{user_id}"),
    ]
    for method, path in refused:
        router.add_api_route(path, _not_served(MANAGED), methods=[method], dependencies=[dep], response_model=None)


_routes(root, caller)
_routes(scoped, project)
