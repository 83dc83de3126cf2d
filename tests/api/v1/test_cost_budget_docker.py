"""Cost and budgets through a real server: a task's attempts and cost on /v1 and /metrics, the 80 % alert
webhook, and queueing past the budget refused with nothing stored (/v1 one and bulk, and /2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = [pytest.mark.docker, pytest.mark.slow]

#: 0.01 USD per vCPU-second and nothing for memory: a 1-vCPU task costs 0.01 USD per billed second.
RATE = 0.01


@pytest.fixture
def alerts() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A webhook receiver on this machine: its URL and the (event header, body) of each POST."""
    got: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            got.append({"event": self.headers["X-Mayfly-Event"], "body": body})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/alerts", got
    server.shutdown()
    server.server_close()


def _cli(home: Path, *args: str, remote: dict[str, str] | None = None) -> str:
    env = {**os.environ, "MAYFLY_HOME": str(home), "MAYFLY_WEBHOOK_ALLOW_PRIVATE": "1"}
    env.pop("MAYFLY_URL", None)
    env.pop("MAYFLY_DATABASE_URL", None)
    env.update(remote or {})
    done = subprocess.run([sys.executable, "-m", "mayfly.cli", *args], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _until(check: Any, what: str, timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.2)


def test_cost_on_v1_and_metrics_then_the_alert_and_refusals(
    tmp_path: Path, start_server: Any, busybox_image: str, alerts: tuple[str, list[dict[str, Any]]]
) -> None:
    url, got = alerts
    with (
        start_server(tmp_path, "shop", env={"MAYFLY_WEBHOOK_ALLOW_PRIVATE": "1"}) as srv,
        httpx.Client(base_url=srv.url, headers=srv.bearer, timeout=30) as api,
    ):
        made = api.post("/v1/codes", json={"name": "nap", "image": busybox_image, "command": "sleep 1", "cpu": 1})
        assert made.status_code == 201, made.text
        _cli(srv.home, "target", "price", "local", "--set", f"vcpu_second={RATE}", "--set", "gb_second=0")
        # The first task is estimated at one billed second (no history yet): 0.01 of 0.012 fits.
        _cli(srv.home, "project", "budget", "shop", "--daily", "0.012usd", "--alert-url", url)

        queued = api.post("/v1/tasks", json={"code_name": "nap"})
        assert queued.status_code == 201, queued.text
        task_id = queued.json()["id"]
        task = _until(lambda: (t := api.get(f"/v1/tasks/{task_id}").json())["status"] == "complete" and t, "complete")
        (attempt,) = task["attempts"]
        assert (attempt["target"], attempt["provider"], attempt["cpu"]) == ("local", "docker", 1.0)
        billed = attempt["billed_seconds"]
        assert billed >= 1
        assert task["cost"] == pytest.approx(billed * RATE)
        listed = api.get("/v1/tasks").json()["tasks"]
        assert [(t["id"], t["cost"]) for t in listed] == [(task_id, pytest.approx(billed * RATE))]
        summary = api.get("/v1/cost", params={"since": "1d"}).json()
        assert summary["rows"] == [
            {
                "code": "nap",
                "target": "local",
                "attempts": 1,
                "billed_seconds": billed,
                "cost": pytest.approx(billed * RATE),
            }
        ]
        # The CLI against the server shows the same attempt and sum.
        remote = {"MAYFLY_URL": srv.url, "MAYFLY_TOKEN": srv.token}
        shown = json.loads(_cli(tmp_path, "task", "show", task_id, "--json", remote=remote))
        assert shown["attempts"] == task["attempts"]
        assert json.loads(_cli(tmp_path, "cost", "--json", remote=remote))["total"] == pytest.approx(billed * RATE)
        assert json.loads(_cli(tmp_path, "task", "list", "--json", remote=remote))["tasks"][0]["cost"] == task["cost"]
        metrics = api.get("/metrics").text
        line = f'mayfly_task_cost_total{{project="shop",code="nap",target="local"}} {billed * RATE!r}'
        assert line in metrics.splitlines()

        # 0.01 spent of 0.012 is past 80 %: one signed alert, with the budget's figures.
        alert = _until(lambda: [a for a in got if a["event"] == "budget.80"], "the 80 % alert")[0]
        assert alert["body"]["period"] == "daily"
        assert alert["body"]["limit"] == 0.012
        assert alert["body"]["spent"] == pytest.approx(billed * RATE)

        # Spent plus one more typical run passes the limit: refused, nothing stored, on every queueing route.
        one = api.post("/v1/tasks", json={"code_name": "nap"})
        assert one.status_code == 402
        assert one.json()["code"] == "budget_exceeded"
        assert "over the daily budget of 0.012 USD" in one.json()["message"]
        bulk = api.post("/v1/tasks/bulk", json={"code_name": "nap", "payloads": [{}, {}]})
        assert (bulk.status_code, bulk.json()["code"]) == (402, "budget_exceeded")
        iron = httpx.post(srv.path("tasks"), headers=srv.auth, json={"tasks": [{"code_name": "nap", "payload": "{}"}]})
        assert iron.status_code == 400
        assert "over the daily budget" in iron.json()["msg"]
        assert [t["id"] for t in api.get("/v1/tasks").json()["tasks"]] == [task_id]
        assert api.get("/v1/budget").json()["budget"]["daily"] == 0.012
