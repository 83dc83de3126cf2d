"""``GET /metrics`` after real tasks ran in Docker: parsed with Prometheus' own parser, checked against the store."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from mayfly.api.app import create_app
from mayfly.api.metrics import render
from mayfly.core.app import Mayfly
from mayfly.core.codes import CodeOptions, RuntimeInfo
from mayfly.core.config import Home, Limits
from mayfly.core.errors import RuntimeNotFound
from mayfly.core.metrics import Family, Sample
from mayfly.core.serving import Serving
from mayfly.core.store import schema as s
from mayfly.core.tasks import TaskOptions

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def _no_runtimes(name: str) -> RuntimeInfo:
    raise RuntimeNotFound(f"unknown runtime {name!r}")


@pytest.fixture
def mf(home: Path, busybox_image: str) -> Iterator[Mayfly]:
    app = Mayfly(Home(home, Limits(stop_grace_seconds=1.0)), _no_runtimes)
    pid = app.project_id()
    app.codes.register(pid, "ok", busybox_image, CodeOptions(command="sleep 0.5"))
    app.codes.register(pid, "fails", busybox_image, CodeOptions(command="exit 3"))
    yield app
    app.close()


@pytest.fixture
def serving(mf: Mayfly, docker_client: Any) -> Iterator[Serving]:
    srv = Serving(mf, ["local"])
    srv.start()
    yield srv
    srv.stop()
    for c in docker_client.containers.list(all=True, sparse=True, filters={"label": f"mayfly.home={mf.home_id}"}):
        c.remove(force=True)


def _wait_terminal(mf: Mayfly, ids: list[str], timeout: float = 60.0) -> None:
    pid = mf.project_id()
    deadline = time.monotonic() + timeout
    while not all(mf.tasks.get(pid, i).task_status.terminal for i in ids):
        assert time.monotonic() < deadline, "tasks did not finish"
        time.sleep(0.05)


def _scrape(client: TestClient, token: str | None = None) -> dict[str, Metric]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {f.name: f for f in text_string_to_metric_families(response.text)}


def _value(family: Metric, suffix: str = "", **labels: str) -> float:
    return sum(x.value for x in family.samples if x.name == family.name + suffix and labels.items() <= x.labels.items())


def test_metrics_match_the_store_after_real_tasks(mf: Mayfly, serving: Serving) -> None:
    pid = mf.project_id()
    ran = [t.id for t in mf.tasks.queue_many(pid, "ok", ["{}"] * 3, TaskOptions())]
    ran.append(mf.tasks.queue(pid, "fails", "{}", TaskOptions()).id)
    mf.tasks.queue(pid, "ok", "{}", TaskOptions(delay=3600))  # stays queued
    _wait_terminal(mf, ran)
    deadline = time.monotonic() + 5  # the control plane observes right after its commit
    while sum(mf.metrics.run_duration.count("local", st) for st in ("complete", "error")) < 4:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    _, token = mf.tokens.create(pid)

    families = _scrape(TestClient(create_app(mf)), token)

    with mf.store.read() as conn:
        rows = conn.execute(
            select(s.tasks.c.code_name, s.tasks.c.status, func.count()).group_by(s.tasks.c.code_name, s.tasks.c.status)
        ).all()
    in_store = {(code, status): float(n) for code, status, n in rows}
    assert in_store == {("ok", "complete"): 3, ("fails", "error"): 1, ("ok", "queued"): 1}
    tasks = families["mayfly_tasks"]
    assert tasks.type == "gauge"
    exposed = {(x.labels["code"], x.labels["status"]): x.value for x in tasks.samples}
    assert exposed == in_store
    assert {x.labels["project"] for x in tasks.samples} == {"default"}
    assert {x.labels["target"] for x in tasks.samples} == {"local"}

    depth = families["mayfly_queue_depth"]
    assert _value(depth, target="local") == mf.queues_for("local").get("tasks").depth() == 0
    assert _value(families["mayfly_target_capacity"], target="local") == mf.targets.get("local").capacity

    launch = families["mayfly_task_launch_latency_seconds"]
    assert launch.type == "histogram"
    assert _value(launch, "_count", target="local") == 4
    assert _value(launch, "_bucket", target="local", le="+Inf") == 4
    assert _value(families["mayfly_task_queue_wait_seconds"], "_count", target="local") == 4
    duration = families["mayfly_task_run_duration_seconds"]
    assert _value(duration, "_count", status="complete") == 3
    assert _value(duration, "_count", status="error") == 1
    assert _value(duration, "_sum", status="complete") >= 3 * 0.4
    # Buckets are cumulative: the one at 0.1 s cannot hold a task that slept 0.5 s.
    assert _value(duration, "_bucket", status="complete", le="0.1") == 0
    assert _value(families["mayfly_webhook_deliveries_pending"]) == 0


def test_metrics_need_a_token_unless_public(mf: Mayfly, monkeypatch: pytest.MonkeyPatch) -> None:
    client = TestClient(create_app(mf))
    monkeypatch.delenv("MAYFLY_METRICS_PUBLIC", raising=False)
    response = client.get("/metrics")
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"
    assert client.get("/metrics", headers={"Authorization": "Bearer mfy_nope"}).status_code == 401

    monkeypatch.setenv("MAYFLY_METRICS_PUBLIC", "1")
    assert "mayfly_tasks" in _scrape(client)


def test_a_project_token_sees_only_its_own_tasks(mf: Mayfly, busybox_image: str) -> None:
    other = mf.project_id("other")
    mf.codes.register(other, "theirs", busybox_image, CodeOptions(command="true"))
    mf.tasks.queue(other, "theirs", "{}", TaskOptions(delay=3600))
    mf.tasks.queue(mf.project_id(), "ok", "{}", TaskOptions(delay=3600))
    _, token = mf.tokens.create(mf.project_id())
    tasks = _scrape(TestClient(create_app(mf)), token)["mayfly_tasks"]
    assert [(x.labels["project"], x.labels["code"]) for x in tasks.samples] == [("default", "ok")]


def test_label_values_are_escaped() -> None:
    family = Family("x", "gauge", "help with \\ and\nnewline", [Sample("x", {"code": 'a"b\\c\nd'}, 1.5)])
    [parsed] = text_string_to_metric_families(render([family]))
    assert parsed.documentation == "help with \\ and\nnewline"
    assert parsed.samples[0].labels == {"code": 'a"b\\c\nd'}
    assert parsed.samples[0].value == 1.5
