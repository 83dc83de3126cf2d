"""``mayfly emulator gcp``: it prints the endpoints and a valid target line, serves, and cleans up on Ctrl-C.

Run as a subprocess (it must keep serving until a signal); the printed settings are then
used as a target would: a Cloud Run job on ``run_endpoint``, a blob in ``bucket`` on
``storage_endpoint``, and a V4 signed URL made with ``credentials_file`` that a task
container fetches.
"""

from __future__ import annotations

import json
import os
import queue
import shlex
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mayfly.cli.emulator import app
from mayfly.providers.cloudrun.settings import CloudRunSettings

pytestmark = [pytest.mark.docker, pytest.mark.slow]

LAUNCH = "from mayfly.cli.emulator import app; app(prog_name='mayfly emulator')"


class Running:
    """The emulator command in a subprocess, its stdout read line by line."""

    def __init__(self, home: Path, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", LAUNCH, "gcp", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "MAYFLY_HOME": str(home)},
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def until(self, prefix: str, limit: float = 120.0) -> list[str]:
        """Every line up to the first one starting with ``prefix``."""
        seen: list[str] = []
        deadline = time.monotonic() + limit
        while not seen or not seen[-1].startswith(prefix):
            try:
                seen.append(self.lines.get(timeout=max(0.1, deadline - time.monotonic())))
            except queue.Empty:
                stderr = self.process.stderr.read() if self.process.poll() is not None and self.process.stderr else ""
                pytest.fail(f"no line starting with {prefix!r} within {limit:.0f} s: {seen} {stderr}")
        return seen


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Any]:
    started: list[Running] = []

    def start(*args: str) -> Running:
        started.append(Running(tmp_path, *args))
        return started[-1]

    yield start
    for proc in started:
        if proc.process.poll() is None:
            proc.process.kill()
            proc.process.wait()


def test_prints_a_working_target_line_and_removes_its_containers_on_ctrl_c(
    running: Any, busybox_image: str, docker_client: Any
) -> None:
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import run_v2, storage
    from google.oauth2 import service_account

    from mayfly.providers.cloudrun.emulator.processes import gcs_emulator_binary, pubsub_emulator_binary

    if pubsub_emulator_binary() is None or gcs_emulator_binary() is None:
        pytest.skip("the Pub/Sub or Cloud Storage emulator is not installed (CI machines have both)")
    emulator = running("--port", "0", "--target", "cli-test", "--region", "us-central1")
    lines = emulator.until("Ctrl-C")
    argv = shlex.split(next(line for line in lines if line.startswith("mayfly target add ")))
    assert argv[:7] == ["mayfly", "target", "add", "cli-test", "--provider", "cloudrun", "--settings"]
    settings = CloudRunSettings.model_validate(json.loads(argv[7]))
    assert settings.region == "us-central1"
    assert settings.run_endpoint
    assert settings.storage_endpoint
    assert settings.credentials_file

    # The bucket exists; a V4 URL signed with the printed key file is fetched by a task container.
    gcs = storage.Client(
        project=settings.project,
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": settings.storage_endpoint},
    )
    blob = gcs.bucket(settings.bucket).blob("code/hello.txt")
    blob.upload_from_string(b"signed hello")
    signer = service_account.Credentials.from_service_account_file(settings.credentials_file)
    url = blob.generate_signed_url(
        version="v4", expiration=300, method="GET", credentials=signer, api_access_endpoint=settings.storage_endpoint
    )

    jobs = run_v2.JobsClient(
        transport="rest",
        client_options=ClientOptions(api_endpoint=settings.run_endpoint),
        credentials=AnonymousCredentials(),
    )
    container = run_v2.Container(image=busybox_image, command=["sh", "-c", 'wget -qO- "$URL"; echo; sleep 300'])
    template = run_v2.TaskTemplate(containers=[container], max_retries=0)
    job = run_v2.Job(template=run_v2.ExecutionTemplate(template=template))
    parent = f"projects/{settings.project}/locations/{settings.region}"
    name = jobs.create_job(parent=parent, job=job, job_id=f"cli-{uuid.uuid4().hex[:6]}").result(timeout=30).name
    override = run_v2.RunJobRequest.Overrides.ContainerOverride(env=[run_v2.EnvVar(name="URL", value=url)])
    operation = jobs.run_job(
        request=run_v2.RunJobRequest(
            name=name, overrides=run_v2.RunJobRequest.Overrides(container_overrides=[override])
        )
    )
    execution_id = operation.metadata.name.rsplit("/", 1)[-1]
    label = {"label": f"run.googleapis.com/execution={execution_id}"}

    from google.cloud import logging as cloud_logging

    logs = cloud_logging.Client(
        project=settings.project,
        credentials=AnonymousCredentials(),
        _use_grpc=False,
        client_options={"api_endpoint": settings.logging_endpoint},
    )
    log_filter = f'labels."run.googleapis.com/execution_name"="{execution_id}"'
    deadline = time.monotonic() + 60
    payloads: list[Any] = []
    while "signed hello" not in payloads:
        assert time.monotonic() < deadline, f"the task never printed the signed URL's content: {payloads}"
        time.sleep(0.3)
        payloads = [entry.payload for entry in logs.list_entries(filter_=log_filter)]
    assert docker_client.containers.list(filters=label)

    emulator.process.send_signal(signal.SIGINT)
    assert emulator.process.wait(timeout=60) == 0
    assert docker_client.containers.list(all=True, filters=label) == []


def test_a_target_name_google_cannot_use_is_refused_before_anything_starts() -> None:
    result = CliRunner().invoke(app, ["gcp", "--target", "Bad_Name"])
    assert result.exit_code == 2
    assert "cannot name Google Cloud resources" in result.output


def test_without_the_pubsub_emulator_it_says_what_to_install_in_one_line(tmp_path: Path) -> None:
    # No java on PATH: the Pub/Sub emulator cannot run.
    env = {**os.environ, "MAYFLY_HOME": str(tmp_path), "PATH": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", LAUNCH, "gcp", "--port", "0"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, done.stderr
    assert "google-cloud-cli-pubsub-emulator" in errors[0]
    assert "Java" in errors[0]
