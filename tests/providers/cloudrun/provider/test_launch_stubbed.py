"""Launch paths the emulator does not take, over real HTTP: quota refusals, restarts, a launcher that died.

A small stand-in answers the Cloud Run Admin API v2 REST calls the provider makes (the
run_v2 client parses every answer strictly), counts RunJob calls and can refuse them
with Cloud Run's 429; the launch records live in fake-gcs-server. Time is the test's:
the provider sleeps through a recorder, so backoff is checked without waiting.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mayfly.core.errors import LaunchFailed
from mayfly.core.messages import container_name
from mayfly.core.models import LaunchSpec
from mayfly.core.provider import ProviderContext
from mayfly.providers.cloudrun.gcs import GcsBlobStore
from mayfly.providers.cloudrun.limiter import TokenBucket
from mayfly.providers.cloudrun.provider import ATTEMPT_ENV, CloudRunProvider
from mayfly.providers.cloudrun.records import LaunchRecords
from mayfly.providers.cloudrun.settings import CloudRunSettings

PARENT = "projects/mayfly-test/locations/europe-west1"
QUOTA = (
    "Quota exceeded for quota metric 'Job run requests' and limit 'Job run requests per minute per region' "
    "of service 'run.googleapis.com' for consumer 'project_number:123'."
)


class _CloudRun(BaseHTTPRequestHandler):
    """Just enough of Cloud Run Admin API v2 for launches."""

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, state: str, message: str) -> None:
        self._send(status, {"error": {"code": status, "status": state, "message": message}})

    def do_GET(self) -> None:
        api: Any = self.server
        path = self.path.split("?", 1)[0].removeprefix("/v2/")
        if m := re.fullmatch(r"(.+/jobs/[^/]+)/executions", path):
            api.lists += 1
            found = [e for e in api.executions.values() if e["name"].startswith(m.group(1) + "/")]
            self._send(200, {"executions": found})
        elif path in api.executions:
            api.gets += 1
            self._send(200, api.executions[path])
        elif path.endswith("/tasks"):
            self._send(200, {"tasks": []})
        elif "/jobs/" in path and "/executions/" not in path:
            self._send(200, {"name": path})  # every job exists
        else:
            self._error(404, "NOT_FOUND", f"{path} not found")

    def do_POST(self) -> None:
        api: Any = self.server
        path = self.path.split("?", 1)[0].removeprefix("/v2/")
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        if path.endswith(":run"):
            api.runs += 1
            if api.refusals > 0:
                api.refusals -= 1
                self._error(429, "RESOURCE_EXHAUSTED", QUOTA)
                return
            job = path.removesuffix(":run")
            name = f"{job}/executions/{job.rsplit('/', 1)[-1]}-{uuid.uuid4().hex[:5]}"
            container = body["overrides"]["containerOverrides"][0]
            execution = {
                "name": name,
                "createTime": "2026-12-07T10:00:00Z",
                "template": {"containers": [{"name": "task", "args": container["args"], "env": container["env"]}]},
            }
            api.executions[name] = execution
            metadata = {"@type": "type.googleapis.com/google.cloud.run.v2.Execution", **execution}
            self._send(200, {"name": f"{PARENT}/operations/{uuid.uuid4()}", "metadata": metadata})
        else:
            self._error(404, "NOT_FOUND", f"{path} not found")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def cloud_run() -> Iterator[Any]:
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), _CloudRun)
    server.executions = {}
    server.runs = 0
    server.lists = 0
    server.gets = 0
    server.refusals = 0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def make_provider(cloud_run: Any, gcs_endpoint: str, sa_key: tuple[Path, Any], tmp_path: Path) -> Any:
    bucket = f"mayfly-{uuid.uuid4().hex[:12]}"
    settings = CloudRunSettings(
        project="mayfly-test",
        region="europe-west1",
        queue_prefix="mayfly",
        bucket=bucket,
        job_prefix="mayfly-stub",
        credentials_file=str(sa_key[0]),
        storage_endpoint=gcs_endpoint,
        run_endpoint=f"http://127.0.0.1:{cloud_run.server_address[1]}",
    )
    blobs = GcsBlobStore.from_settings(settings)
    blobs.client.create_bucket(bucket)
    made: list[CloudRunProvider] = []

    def make(sleeps: list[float] | None = None) -> CloudRunProvider:
        context = ProviderContext(blobs=blobs, work_dir=tmp_path, home_id="home1", target="gcp-stub")
        recorder = sleeps if sleeps is not None else []
        provider = CloudRunProvider(settings, context, launch_limiter=TokenBucket(1000.0, 1000), sleep=recorder.append)
        made.append(provider)
        return provider

    yield make
    for p in made:
        p.close()


def spec(task_id: str = "t1", attempt: int = 1) -> LaunchSpec:
    return LaunchSpec(
        name=container_name(task_id, attempt),
        task_id=task_id,
        attempt=attempt,
        project="p",
        image="busybox:1.36",
        command=("sh", "-c", "echo hi"),
        env={"MAYFLY_TASK_ID": task_id},
        code=None,
        payload=b"{}",
        config=b"{}",
        cpu=0.5,
        memory_mb=64,
        timeout=60,
    )


def test_quota_refusals_back_off_then_launch(make_provider: Any, cloud_run: Any) -> None:
    sleeps: list[float] = []
    provider = make_provider(sleeps)
    cloud_run.refusals = 2
    result = provider.launch(spec())
    assert not result.existing
    assert cloud_run.runs == 3
    assert len(sleeps) == 2  # one backoff per refusal
    assert list(cloud_run.executions) == [result.handle]


def test_quota_refusing_every_time_is_a_retryable_launch_failure(make_provider: Any, cloud_run: Any) -> None:
    cloud_run.refusals = 100
    with pytest.raises(LaunchFailed, match="quota") as failure:
        make_provider().launch(spec())
    assert failure.value.retryable is True
    assert cloud_run.runs == 7
    assert cloud_run.executions == {}
    # Nothing started, so the claim went with it: the next try of the attempt launches at once.
    cloud_run.refusals = 0
    sleeps: list[float] = []
    assert not make_provider(sleeps).launch(spec()).existing
    assert (cloud_run.runs, sleeps) == (8, [])


def test_a_restarted_runner_or_redelivered_message_launches_nothing(make_provider: Any, cloud_run: Any) -> None:
    first = make_provider().launch(spec())
    again = make_provider().launch(spec())  # a new process: nothing in memory, only the record in the bucket
    assert again.existing
    assert again.handle == first.handle
    assert cloud_run.runs == 1
    assert make_provider().find(container_name("t1", 1)) is not None
    # Another attempt of the same task is another execution.
    assert make_provider().launch(spec(attempt=2)).handle != first.handle
    assert cloud_run.runs == 2


def test_a_launcher_that_died_after_runjob_is_found_by_its_env(make_provider: Any, cloud_run: Any) -> None:
    provider = make_provider()
    records = provider.records
    job = f"{PARENT}/jobs/mayfly-stub-abc"
    # It claimed the attempt and ran the job, then died before writing the execution down.
    generation = records.claim("t1", 1, job, "dead-runner")
    assert generation is not None
    name = f"{job}/executions/mayfly-stub-abc-zzz"
    env = [{"name": ATTEMPT_ENV, "value": "home1/gcp-stub/t1/1"}]
    cloud_run.executions[name] = {"name": name, "template": {"containers": [{"name": "task", "env": env}]}}
    found = make_provider().find(container_name("t1", 1))
    assert found is not None
    assert found.handle == name
    assert records.get("t1", 1).execution == name  # written down now
    assert make_provider().launch(spec()).handle == name
    assert cloud_run.runs == 0


def test_a_launch_in_progress_elsewhere_is_waited_for_not_repeated(make_provider: Any, cloud_run: Any) -> None:
    sleeps: list[float] = []
    provider = make_provider(sleeps)
    LaunchRecords(provider.records.store).claim("t1", 1, f"{PARENT}/jobs/mayfly-stub-abc", "other-runner")
    clock = iter(range(0, 10_000, 10))
    provider._clock = lambda: float(next(clock))  # each look takes 10 s of the test's time
    with pytest.raises(LaunchFailed, match="another runner") as failure:
        provider.launch(spec())
    assert failure.value.retryable is True
    assert cloud_run.runs == 0
    assert sleeps  # it waited for the other launch


def test_an_abandoned_claim_is_taken_over(make_provider: Any, cloud_run: Any) -> None:
    provider = make_provider()
    store = provider.records.store
    stale = json.dumps({"job": f"{PARENT}/jobs/x", "execution": None, "owner": "dead", "at": time.time() - 3600})
    store.create(LaunchRecords.key("t1", 1), stale.encode())
    result = provider.launch(spec())
    assert not result.existing
    assert cloud_run.runs == 1
    assert provider.records.get("t1", 1).execution == result.handle


def test_watching_many_executions_costs_one_list_per_job_and_interval(make_provider: Any, cloud_run: Any) -> None:
    provider = make_provider()
    handles = [provider.launch(spec(f"t{i}")).handle for i in range(5)]
    now = [1000.0]
    provider._clock = provider.poller._clock = lambda: now[0]
    cloud_run.lists = cloud_run.gets = 0
    states = [provider.state(h).status.value for h in handles]
    assert states == ["pending"] * 5
    assert (cloud_run.lists, cloud_run.gets) == (1, 0)  # one ListExecutions answered all five
    now[0] += provider.settings.status_poll_seconds + 0.1
    assert {provider.state(h).status.value for h in handles} == {"pending"}
    assert (cloud_run.lists, cloud_run.gets) == (2, 0)
