"""A backlog that cannot start (a paused code, a code at its max concurrency) holds up no other code of its target.

The router looks at a target's queued tasks in priority, then FIFO, order. A code paused
during an incident while its tasks keep arriving, or a code at its max concurrency with a
long queue, must not stand in front of every other code of the same target, however
many of its tasks wait (found by issue 17's scale test: the paused code of its schedules
piles up more queued tasks than one pass of the router used to look at).
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from mayfly.core.router import SCAN_LIMIT

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def _wait_ended(api: httpx.Client, task_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        task: dict[str, Any] = api.get(f"/v1/tasks/{task_id}").json()
        if task["status"] in ("complete", "error", "cancelled", "timeout"):
            return task
        assert time.monotonic() < deadline, f"the task never ran: {task}"
        time.sleep(0.2)


def test_a_paused_codes_backlog_does_not_starve_the_target(
    tmp_path: Any, start_server: Any, busybox_image: str
) -> None:
    with (
        start_server(tmp_path, "backlog") as srv,
        httpx.Client(base_url=srv.url, headers=srv.bearer, timeout=60) as api,
    ):
        for name in ("held", "quick"):
            made = api.post("/v1/codes", json={"name": name, "image": busybox_image, "command": "true"})
            assert made.status_code == 201, made.text
        assert api.post("/v1/codes/held/pause").status_code == 200
        # More of the paused code's tasks than one look of the router takes in, all ahead of the other code's.
        for _ in range(2):
            queued = api.post("/v1/tasks/bulk", json={"code_name": "held", "payloads": [{}] * (SCAN_LIMIT // 2 + 1)})
            assert queued.status_code == 201, queued.text
        quick = api.post("/v1/tasks", json={"code_name": "quick"}).json()["id"]
        task = _wait_ended(api, quick)
        assert (task["status"], task["exit_code"]) == ("complete", 0), task
        held = api.get("/v1/tasks", params={"code_name": "held", "status": "queued", "limit": 1}).json()
        assert held["tasks"], held  # the paused code's tasks still wait
