"""A runner killed between removing a container and its task directory: the next runner sweeps the directory."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def _until(what: str, check: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _down(url: str) -> bool:
    try:
        httpx.get(url, timeout=1)
    except httpx.TransportError:
        return True
    return False


def test_kill_9_after_the_container_is_removed_leaves_a_directory_the_next_runner_sweeps(
    start_server: Any, busybox_image: str, docker_client: Any, tmp_path: Path
) -> None:
    faults = {"MAYFLY_FAULTS": "docker.container-removed"}
    with start_server(tmp_path, "sweep", env=faults) as srv:
        with httpx.Client(base_url=srv.url, headers=srv.bearer, timeout=30) as api:
            code = {"name": "hello", "image": busybox_image, "command": "echo hi", "network": "none"}
            assert api.post("/v1/codes", json=code).status_code == 201
            task_id = api.post("/v1/tasks", json={"code_name": "hello", "payload": {}}).json()["id"]
        # SIGKILLed at the fault point: the container is gone, its task directory is not.
        _until("the server to be killed at the fault point", lambda: _down(srv.url))
    name = f"mayfly-{task_id}-1"
    task_dir = srv.home / "run" / "local" / name
    assert task_dir.is_dir()
    assert docker_client.containers.list(all=True, filters={"name": name}) == []

    with (
        start_server(tmp_path, "sweep") as again,
        httpx.Client(base_url=again.url, headers=again.bearer, timeout=30) as api,
    ):
        _until("the directory to be swept", lambda: not task_dir.exists())
        done = _until("the task to end", lambda: (t := api.get(f"/v1/tasks/{task_id}").json())["end_time"] and t)
        assert (done["status"], done["attempt"]) == ("complete", 1)
        assert "hi" in api.get(f"/v1/tasks/{task_id}/log").text
