"""``GET /metrics``: Prometheus text exposition (format 0.0.4).

Families:

* ``mayfly_tasks{project,target,code,status}`` (gauge, from the store);
* ``mayfly_queue_depth{target}`` and ``mayfly_target_capacity{target}`` (gauges);
* ``mayfly_webhook_deliveries_pending`` (gauge, from the store);
* ``mayfly_task_cost_total{project,code,target}`` (counter, USD, from the recorded attempts in the store);
* ``mayfly_task_launch_latency_seconds{target}``, ``mayfly_task_queue_wait_seconds{target}`` and
  ``mayfly_task_run_duration_seconds{target,status}`` (histograms, observed by this process's control plane);
* ``mayfly_webhook_deliveries_total{outcome}`` (counter, counted by this process's deliverer).

Access (decided here): ``/metrics`` needs a token like the rest of the API,
because task counts name codes and projects. A project token sees its own
project's task and webhook gauges; queue depth, capacity and the histograms
describe shared targets and carry no project data, so every token sees them.
``MAYFLY_METRICS_PUBLIC=1`` lets anyone scrape without a token and shows every
project: set it only where the port is reachable by the scraper alone.
"""

from __future__ import annotations

import logging
import math
import os

from fastapi import APIRouter, Request, Response

from mayfly.api.deps import MayflyDep, bearer_secret
from mayfly.core.app import Mayfly
from mayfly.core.errors import MayflyError
from mayfly.core.metrics import Family, Sample

log = logging.getLogger("mayfly.api.metrics")

PUBLIC_ENV = "MAYFLY_METRICS_PUBLIC"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request, mf: MayflyDep) -> Response:
    """The exposition: store gauges for the caller's project (every project when public), process metrics."""
    project_id = None if public() else mf.tokens.authenticate(bearer_secret(request)).project_id
    families = [*store_families(mf, project_id), *mf.metrics.collect()]
    return Response(render(families), media_type=CONTENT_TYPE)


def public() -> bool:
    return os.environ.get(PUBLIC_ENV, "").strip().lower() in ("1", "true", "yes")


def store_families(mf: Mayfly, project_id: str | None) -> list[Family]:
    """Gauges read now: tasks by status, queue depth and capacity per target, pending webhooks."""
    tasks = Family("mayfly_tasks", "gauge", "Tasks in the store by project, target, code and status.")
    pending = Family("mayfly_webhook_deliveries_pending", "gauge", "Webhook attempts waiting to be sent.")
    for row in mf.tasks.census(project_id):
        labels = {"project": row.project, "target": row.target, "code": row.code, "status": row.status}
        tasks.samples.append(Sample("mayfly_tasks", labels, row.count))
    pending.samples.append(Sample(pending.name, {}, mf.webhooks.pending_count(project_id)))
    depth = Family("mayfly_queue_depth", "gauge", "Task messages waiting in each target's task queue.")
    capacity = Family("mayfly_target_capacity", "gauge", "Tasks each target may have preparing or running at once.")
    for target in mf.targets.list():
        capacity.samples.append(Sample(capacity.name, {"target": target.name}, target.capacity))
        try:
            n = mf.queues_for(target.name).get("tasks").depth()
        except MayflyError as exc:  # a cloud queue out of reach: the other targets still report
            log.warning("no queue depth for target %s: %s", target.name, exc.message)
            continue
        depth.samples.append(Sample(depth.name, {"target": target.name}, n))
    cost = Family("mayfly_task_cost_total", "counter", "Cost of ended attempts in USD by project, code and target.")
    for project, code, target_name, amount in mf.costs.totals(project_id):
        labels = {"project": project, "code": code, "target": target_name}
        cost.samples.append(Sample(cost.name, labels, amount))
    return [tasks, depth, capacity, pending, cost]


def render(families: list[Family]) -> str:
    """The Prometheus text format."""
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name} {_escape_help(family.help)}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        for sample in family.samples:
            labels = ",".join(f'{k}="{_escape_label(str(v))}"' for k, v in sample.labels.items())
            lines.append(
                f"{sample.name}{{{labels}}} {_number(sample.value)}"
                if labels
                else f"{sample.name} {_number(sample.value)}"
            )
    return "\n".join(lines) + "\n"


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))
