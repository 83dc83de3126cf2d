"""One endpoint for everything: moto's services next to ECS, the target bootstrap, presigned URLs from containers."""

from __future__ import annotations

import hashlib
import io
import json
import urllib.request
import zipfile
from typing import Any

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.slow]

BOOT = "/usr/local/bin/mayfly-boot"


def zip_bytes(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_bootstrap_creates_the_target_resources(emulator: Any, target: dict[str, Any]) -> None:
    from mayfly.providers.ecs.settings import EcsSettings

    settings = EcsSettings.model_validate(target)
    assert settings.endpoint_url == emulator.endpoint_url
    assert settings.region == "eu-west-1"
    cluster = emulator.client("ecs").describe_clusters(clusters=[settings.cluster])["clusters"][0]
    assert cluster["status"] == "ACTIVE"
    assert set(cluster["capacityProviders"]) == {"FARGATE", "FARGATE_SPOT"}

    sqs = emulator.client("sqs")
    for url in (settings.tasks_queue_url, settings.control_queue_url, settings.events_queue_url):
        assert url.startswith(emulator.endpoint_url)
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        redrive = json.loads(attributes["RedrivePolicy"])
        assert redrive["deadLetterTargetArn"].endswith(url.rsplit("/", 1)[1] + "-dlq")
        assert int(redrive["maxReceiveCount"]) == 5

    emulator.client("s3").head_bucket(Bucket=settings.bucket)
    groups = emulator.client("logs").describe_log_groups(logGroupNamePrefix=settings.log_group)["logGroups"]
    assert [g["logGroupName"] for g in groups] == [settings.log_group]
    role = emulator.client("iam").get_role(RoleName=settings.execution_role_arn.rsplit("/", 1)[1])["Role"]
    assert role["Arn"] == settings.execution_role_arn
    assert settings.subnets
    assert all(s.startswith("subnet-") for s in settings.subnets)

    # Running it again reuses everything.
    assert emulator.bootstrap_target(target["cluster"].removeprefix("mayfly-")) == target


def test_sqs_and_s3_answer_on_the_same_endpoint(emulator: Any, target: dict[str, Any]) -> None:
    sqs = emulator.client("sqs")
    sqs.send_message(QueueUrl=target["tasks_queue_url"], MessageBody='{"task": "t1"}')
    messages = sqs.receive_message(QueueUrl=target["tasks_queue_url"], WaitTimeSeconds=1)["Messages"]
    assert [m["Body"] for m in messages] == ['{"task": "t1"}']

    s3 = emulator.client("s3")
    s3.put_object(Bucket=target["bucket"], Key="a/b.txt", Body=b"hello")
    assert s3.get_object(Bucket=target["bucket"], Key="a/b.txt")["Body"].read() == b"hello"
    url = s3.generate_presigned_url("get_object", Params={"Bucket": target["bucket"], "Key": "a/b.txt"})
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == b"hello"
    # urllib's PUT says "application/x-www-form-urlencoded" unless told otherwise: S3 keeps the body anyway.
    put = s3.generate_presigned_url("put_object", Params={"Bucket": target["bucket"], "Key": "a/put.txt"})
    with urllib.request.urlopen(urllib.request.Request(put, data=b"k=v&raw", method="PUT"), timeout=10) as response:
        assert response.status == 200
    assert s3.get_object(Bucket=target["bucket"], Key="a/put.txt")["Body"].read() == b"k=v&raw"


@pytest.mark.parametrize("via", ["endpoint", "loopback"])
def test_boot_agent_in_a_task_fetches_presigned_urls_and_puts_its_result(
    emulator: Any, tasks: Any, runtime_images: dict[str, str], via: str
) -> None:
    """The cloud path of the container contract: code, payload, config in; result out; all presigned S3 URLs.

    ``loopback``: URLs presigned by a client on 127.0.0.1, which the emulator rewrites for the container.
    """
    assert runtime_images["shell"] == "mayfly/runtime-shell:1"
    bucket = tasks.target["bucket"]
    s3 = emulator.client("s3", local=via == "loopback")
    code = zip_bytes(
        {"main.sh": 'echo "payload=$(cat "$MAYFLY_PAYLOAD_FILE")"\necho \'{"ok": 1}\' > /mayfly/result.json\n'}
    )
    s3.put_object(Bucket=bucket, Key=f"{via}/code.zip", Body=code)
    s3.put_object(Bucket=bucket, Key=f"{via}/payload.json", Body=b'{"n": 7}')
    s3.put_object(Bucket=bucket, Key=f"{via}/config.json", Body=b"{}")

    def get(key: str) -> str:
        return str(s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": f"{via}/{key}"}))

    put = s3.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": f"{via}/result.json", "ContentType": "application/json"}
    )
    # The runtime as the target's image_prefix names it: mapped to the local mayfly/runtime-shell:1.
    image = f"{tasks.target['image_prefix']}:runtime-shell-1"
    definition = tasks.definition(image, entryPoint=[BOOT])
    env = {
        "MAYFLY_TASK_ID": "t-1",
        "MAYFLY_ATTEMPT": "1",
        "MAYFLY_PAYLOAD_FILE": "/mayfly/payload.json",
        "MAYFLY_CONFIG_FILE": "/mayfly/config.json",
        "MAYFLY_CODE_URL": get("code.zip"),
        "MAYFLY_CODE_SHA256": hashlib.sha256(code).hexdigest(),
        "MAYFLY_PAYLOAD_URL": get("payload.json"),
        "MAYFLY_CONFIG_URL": get("config.json"),
        "MAYFLY_RESULT_URL": put,
    }
    overrides = {
        "containerOverrides": [
            {
                "name": "main",
                "command": ["sh main.sh"],
                "environment": [{"name": k, "value": v} for k, v in env.items()],
            }
        ]
    }
    task = tasks.run(definition, overrides=overrides)
    stopped = tasks.wait_status(task["taskArn"], "STOPPED")
    lines = tasks.log_lines(task["taskArn"])
    assert stopped["containers"][0]["exitCode"] == 0, lines
    assert lines == ['payload={"n": 7}']
    result = emulator.client("s3").get_object(Bucket=bucket, Key=f"{via}/result.json")["Body"].read()
    assert json.loads(result) == {"ok": 1}
