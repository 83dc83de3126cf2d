"""SQS queues and the S3 blob store pass the queue and blob store suites, on moto's server process."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from mayfly.core.blobs import BlobStore
from mayfly.core.queues import Queue
from mayfly.providers.ecs.aws import Clients
from mayfly.providers.ecs.s3 import S3BlobStore
from mayfly.providers.ecs.sqs import MAX_BODY_BYTES, SqsQueue
from mayfly.testing import BlobStoreConformance, QueueConformance

REGION = "eu-west-1"
pytestmark = pytest.mark.usefixtures("fake_aws_env")


class TestSqsQueue(QueueConformance):
    max_body_bytes = MAX_BODY_BYTES
    dead_letter_after = 3

    @pytest.fixture
    def queue(self, moto_server_url: str) -> Iterator[Queue]:
        """A queue with its dead-letter queue, as the stacks create them (redrive after a few receives)."""
        clients = Clients(REGION, endpoint_url=moto_server_url)
        sqs = clients("sqs")
        name = f"mayfly-{uuid.uuid4().hex[:12]}-tasks"
        dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(self.dead_letter_after)})
        url = sqs.create_queue(QueueName=name, Attributes={"RedrivePolicy": redrive})["QueueUrl"]
        yield SqsQueue(url, clients)
        sqs.delete_queue(QueueUrl=url)
        sqs.delete_queue(QueueUrl=dlq_url)


class TestS3BlobStore(BlobStoreConformance):
    # NOTE: moto serves a presigned URL past its X-Amz-Expires; AWS answers 403 (not exercised here).
    checks_url_expiry = False

    @pytest.fixture
    def store(self, moto_server_url: str) -> BlobStore:
        clients = Clients(REGION, endpoint_url=moto_server_url)
        bucket = f"mayfly-{uuid.uuid4().hex[:12]}"
        clients("s3").create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        return S3BlobStore(bucket, clients, prefix="mayfly")
