"""Admission over HTTP on a real ``mayfly server``: /v1 and IronWorker's /2 refuse what a target cannot run.

Each refusal answers 400 with the one line of :class:`TargetUnsupported` (in the
native error body on /v1, in IronWorker's ``{"msg"}`` on /2) and stores nothing.
The ECS target is registered in the server's home and never called: admission
needs only its provider's declarations.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from mayfly.cli.context import resolve_runtime
from mayfly.core.app import Mayfly
from mayfly.core.codes import zip_bytes
from mayfly.core.config import Home
from mayfly.testing.targets import UNCALLED_ECS_SETTINGS

ECS_SETTINGS = UNCALLED_ECS_SETTINGS
ECS_NONE = (
    "target aws-dev (ecs) does not support network none: every Fargate task gets a network interface in the "
    "target's subnets (awsvpc); restrict it with a security group without egress rules instead"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, start_server: Any) -> Iterator[Any]:
    with start_server(tmp_path_factory.mktemp("admission"), "adm") as srv:
        mf = Mayfly(Home(srv.home), resolve_runtime)
        mf.targets.add("aws-dev", "ecs", ECS_SETTINGS, embedded_runner=False)
        mf.close()
        yield srv


@pytest.fixture(scope="module")
def v1(server: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=server.bearer, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def offline(v1: httpx.Client) -> str:
    """A code with ``network: none`` on local (Docker offers it); ECS does not."""
    made = v1.post("/v1/codes", json={"name": "offline", "image": "busybox:1", "command": "true", "network": "none"})
    assert made.status_code == 201, made.text
    return "offline"


def _refused(resp: httpx.Response, message: str) -> None:
    assert resp.status_code == 400, resp.text
    assert resp.json() == {"code": "target_unsupported", "message": message}


def test_v1_code_with_network_host_is_refused_and_not_stored(v1: httpx.Client) -> None:
    image = v1.post("/v1/codes", json={"name": "hosty", "image": "busybox:1", "command": "true", "network": "host"})
    assert image.status_code == 400
    assert image.json()["code"] == "target_unsupported"
    assert image.json()["message"].startswith("target local (docker) does not allow network host: the task would")
    package = zip_bytes({"main.sh": "echo hi\n"})
    data = {"name": "hosty", "runtime": "shell", "network": "host"}
    zipped = v1.post(
        "/v1/codes", files={"file": ("c.zip", package, "application/zip")}, data={"data": json.dumps(data)}
    )
    assert (zipped.status_code, zipped.json()["code"]) == (400, "target_unsupported")
    assert v1.get("/v1/codes/hosty").status_code == 404


def test_v1_code_on_an_ecs_target_with_network_none_is_refused(v1: httpx.Client) -> None:
    body = {"name": "ecs-none", "image": "busybox:1", "network": "none", "target": "aws-dev"}
    _refused(v1.post("/v1/codes", json=body), ECS_NONE)
    assert v1.get("/v1/codes/ecs-none").status_code == 404


def test_v1_tasks_and_schedules_on_a_refusing_target_store_nothing(v1: httpx.Client, offline: str) -> None:
    _refused(v1.post("/v1/tasks", json={"code_name": offline, "target": "aws-dev"}), ECS_NONE)
    bulk = {"code_name": offline, "target": "aws-dev", "payloads": [{}, {}]}
    _refused(v1.post("/v1/tasks/bulk", json=bulk), ECS_NONE)
    _refused(v1.post("/v1/schedules", json={"code_name": offline, "every": "5m", "target": "aws-dev"}), ECS_NONE)
    assert v1.get("/v1/tasks", params={"code": offline}).json()["tasks"] == []
    assert v1.get("/v1/schedules").json()["schedules"] == []


def test_ironworker_tasks_webhook_and_schedules_on_a_refusing_cluster(
    server: Any, v1: httpx.Client, offline: str
) -> None:
    """IronWorker's ``cluster`` is a Mayfly target: one that cannot run the code answers 400 in /2's shape."""
    queue = {"tasks": [{"code_name": offline, "payload": "{}", "cluster": "aws-dev"}]}
    resp = httpx.post(server.path("tasks"), headers=server.auth, json=queue)
    assert (resp.status_code, resp.json()) == (400, {"msg": ECS_NONE})

    hook = httpx.post(
        server.path("tasks/webhook"),
        headers=server.auth,
        params={"code_name": offline, "cluster": "aws-dev"},
        content=b"raw body",
    )
    assert (hook.status_code, hook.json()) == (400, {"msg": ECS_NONE})

    sched = {"schedules": [{"code_name": offline, "payload": "{}", "run_every": 3600, "cluster": "aws-dev"}]}
    resp = httpx.post(server.path("schedules"), headers=server.auth, json=sched)
    assert (resp.status_code, resp.json()) == (400, {"msg": ECS_NONE})

    assert httpx.get(server.path("tasks"), headers=server.auth).json()["tasks"] == []
    assert httpx.get(server.path("schedules"), headers=server.auth).json()["schedules"] == []
    assert v1.get("/v1/tasks").json()["tasks"] == []


def test_v1_takes_fallback_targets_as_a_list_or_a_comma_string_and_skips_those_that_cannot_run_it(
    server: Any, v1: httpx.Client, offline: str
) -> None:
    """Admission keeps the targets that can run the task, in order, and records why it skipped the others."""
    for target in (["aws-dev", "local"], "aws-dev,local"):
        made = v1.post("/v1/tasks", json={"code_name": offline, "target": target, "delay": 3600})
        assert made.status_code == 201, made.text
        body = made.json()
        assert (body["target"], body["targets"], body["skipped_targets"]) == ("local", ["local"], {"aws-dev": ECS_NONE})
        assert v1.post(f"/v1/tasks/{body['id']}/cancel").status_code == 200
    # None can: the one-line refusal names each reason; nothing is stored.
    none_can = v1.post("/v1/codes", json={"name": "fat", "image": "busybox:1", "cpu": 32, "target": ["aws-dev"]})
    assert (none_can.status_code, none_can.json()["code"]) == (400, "target_unsupported")
    # An unknown name in the list is refused as with one target.
    unknown = v1.post("/v1/tasks", json={"code_name": offline, "target": ["local", "nope"]})
    assert (unknown.status_code, unknown.json()["code"]) == (404, "target_not_found")
    # IronWorker's /2 keeps one cluster per task.
    queue = {"tasks": [{"code_name": offline, "payload": "{}", "cluster": "aws-dev,local"}]}
    resp = httpx.post(server.path("tasks"), headers=server.auth, json=queue)
    assert resp.status_code == 400
    assert "unknown cluster" in resp.json()["msg"]
    assert [t["status"] for t in v1.get("/v1/tasks", params={"code": offline}).json()["tasks"]] == ["cancelled"] * 2
