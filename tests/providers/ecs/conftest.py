"""Fixtures of the ecs provider's tests: an isolated AWS environment, SQS queues and an S3 store on moto."""

from __future__ import annotations

import os
import random
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from mayfly.core.messages import container_name
from mayfly.core.models import LaunchSpec
from mayfly.core.provider import ProviderContext
from mayfly.providers.ecs.aws import Clients
from mayfly.providers.ecs.emulator import AwsEmulator
from mayfly.providers.ecs.limiter import TokenBucket
from mayfly.providers.ecs.provider import EcsProvider
from mayfly.providers.ecs.s3 import S3BlobStore
from mayfly.providers.ecs.settings import EcsSettings
from mayfly.providers.ecs.sqs import SqsQueueSet

AWS_TEST_REGION = "eu-west-1"
S3_TEST_BUCKET = "mayfly-test-bucket"


def isolate_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *, credentials: bool) -> None:
    """Drop every AWS_* variable and the developer's AWS files; set fake keys when ``credentials``."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    empty = tmp_path / "aws-empty"
    empty.write_text("")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", AWS_TEST_REGION)
    if credentials:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")


@pytest.fixture
def fake_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake AWS credentials and a region; nothing of the developer's own AWS configuration."""
    isolate_aws_env(monkeypatch, tmp_path, credentials=True)


@pytest.fixture
def no_aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An environment where boto3 finds no credentials at all."""
    isolate_aws_env(monkeypatch, tmp_path, credentials=False)


@pytest.fixture
def sqs_queues(fake_aws_env: None) -> Iterator[SqsQueueSet]:
    """The tasks, control and events queues of a target, on moto in-process."""
    with mock_aws():
        clients = Clients(AWS_TEST_REGION)
        sqs = clients("sqs")
        urls = {
            kind: sqs.create_queue(QueueName=f"mayfly-{kind}")["QueueUrl"] for kind in ("tasks", "control", "events")
        }
        yield SqsQueueSet(urls, clients)


@pytest.fixture
def s3_store(fake_aws_env: None) -> Iterator[S3BlobStore]:
    """A blob store under the key prefix ``mayfly/`` of a fresh bucket, on moto in-process."""
    with mock_aws():
        clients = Clients(AWS_TEST_REGION)
        clients("s3").create_bucket(
            Bucket=S3_TEST_BUCKET, CreateBucketConfiguration={"LocationConstraint": AWS_TEST_REGION}
        )
        yield S3BlobStore(S3_TEST_BUCKET, clients, prefix="mayfly")


# ---------------------------------------------------------------- the ecs provider's world (ECS, logs, S3, SQS)

ECS_TEST_CLUSTER = "mayfly-test"
ECS_TEST_LOG_GROUP = "/mayfly/test"
ECS_TEST_TARGET = "aws-test"
ECS_TEST_HOME = "home-a"
ECS_TEST_IMAGE = "mayfly/runtime-shell:1"


class EcsFakeClock:
    """Monotonic time that only moves when someone sleeps: waits and backoffs cost no real time."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
            self.now += max(0.0, seconds)
        time.sleep(0)  # let other threads run, as a real sleep would

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


@dataclass
class EcsTestWorld:
    """A target's AWS resources on moto, and factories of providers and launch specs for it."""

    settings: EcsSettings
    clients: Clients
    blobs: S3BlobStore
    clock: EcsFakeClock

    def provider(
        self,
        *,
        home_id: str = ECS_TEST_HOME,
        target: str = ECS_TEST_TARGET,
        clients: Clients | None = None,
        launch_limiter: TokenBucket | None = None,
        **settings: Any,
    ) -> EcsProvider:
        """A provider of this world; a second one is "another process" (nothing of the first in memory)."""
        context = ProviderContext(blobs=self.blobs, work_dir=Path("/nonexistent"), home_id=home_id, target=target)
        return EcsProvider(
            self.settings.model_copy(update=settings),
            context,
            clients=clients or self.clients,
            launch_limiter=launch_limiter or TokenBucket(20, 100, clock=self.clock, sleep=self.clock.sleep),
            log_limiter=TokenBucket(25, 25, clock=self.clock, sleep=self.clock.sleep),
            clock=self.clock,
            sleep=self.clock.sleep,
            rng=random.Random(7),
        )

    def spec(
        self,
        command: str = "echo hello",
        *,
        task_id: str | None = None,
        attempt: int = 1,
        image: str = ECS_TEST_IMAGE,
        cpu: float = 0.5,
        memory_mb: int = 512,
        env: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
        network: str = "bridge",
    ) -> LaunchSpec:
        """A launch spec as the runner builds it for a runtime image."""
        task_id = task_id or uuid.uuid4().hex[:24]
        return LaunchSpec(
            name=container_name(task_id, attempt),
            task_id=task_id,
            attempt=attempt,
            project="proj1",
            image=image,
            command=("/usr/local/bin/mayfly-boot", command),
            env={"MAYFLY_TASK_ID": task_id, "MAYFLY_ATTEMPT": str(attempt), **(env or {})},
            code=None,
            payload=b'{"n": 7}',
            config=b'{"mode": "test"}',
            cpu=cpu,
            memory_mb=memory_mb,
            timeout=300,
            network=network,
            labels=labels or {"mayfly.code": "hello"},
        )


@pytest.fixture
def ecs_world(fake_aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[EcsTestWorld]:
    """Cluster, default VPC subnet and security group, log group, bucket and queues of a target, on moto.

    NOTE: moto's ECS tasks start RUNNING and advance one state per DescribeTasks call by default; here
    they stay RUNNING until a test stops them (moto runs no containers, so nothing would stop them).
    """
    from moto.moto_api import state_manager

    # moto's EC2 (needed for the tasks' network interfaces) loads thousands of AMIs per test otherwise.
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    with mock_aws():
        state_manager.set_transition(model_name="ecs::task", transition={"progression": "manual", "times": 10**9})
        try:
            clients = Clients(AWS_TEST_REGION)
            ec2 = clients("ec2")
            # NOTE: moto's RunTask needs a subnet of a VPC with DNS hostnames (the default VPC has them) and a
            # security group (AWS falls back to the VPC's default group when none is given).
            subnet = ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"][0]
            group = ec2.describe_security_groups(GroupNames=["default"])["SecurityGroups"][0]["GroupId"]
            clients("ecs").create_cluster(clusterName=ECS_TEST_CLUSTER)
            clients("logs").create_log_group(logGroupName=ECS_TEST_LOG_GROUP)
            clients("s3").create_bucket(
                Bucket=S3_TEST_BUCKET, CreateBucketConfiguration={"LocationConstraint": AWS_TEST_REGION}
            )
            urls = {
                kind: clients("sqs").create_queue(QueueName=f"mayfly-{kind}")["QueueUrl"]
                for kind in ("tasks", "control", "events")
            }
            settings = EcsSettings(
                region=AWS_TEST_REGION,
                cluster=ECS_TEST_CLUSTER,
                subnets=[subnet["SubnetId"]],
                security_groups=[group],
                execution_role_arn="arn:aws:iam::123456789012:role/mayfly-test-execution",
                log_group=ECS_TEST_LOG_GROUP,
                bucket=S3_TEST_BUCKET,
                tasks_queue_url=urls["tasks"],
                control_queue_url=urls["control"],
                events_queue_url=urls["events"],
            )
            yield EcsTestWorld(settings, clients, S3BlobStore(S3_TEST_BUCKET, clients), EcsFakeClock())
        finally:
            state_manager.unset_transition(model_name="ecs::task")


# ---------------------------------------------------------------- moto's server, as a process of its own


@pytest.fixture(scope="session")
def moto_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``moto_server`` in a separate process on a free port (once per session): AWS over real HTTP."""
    import shutil
    import socket
    import subprocess
    import sys

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    exe = shutil.which("moto_server")
    cmd = [exe] if exe else [sys.executable, "-m", "moto.server"]
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([*cmd, "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"moto_server did not start:\n{log.read_text()}")
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


#: Credentials the emulator accepts; set for the module that uses it.
AWS_ENV = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "eu-west-1"}


@pytest.fixture(scope="module")
def aws(docker_client: Any) -> Iterator[AwsEmulator]:
    """The AWS emulator (ECS, SQS, S3, CloudWatch Logs on local Docker), one per test module."""
    saved = {k: os.environ.get(k) for k in AWS_ENV}
    os.environ.update(AWS_ENV)
    with AwsEmulator("127.0.0.1", 0, region="eu-west-1", poll_interval=0.2, log_interval=0.5) as emu:
        yield emu
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
