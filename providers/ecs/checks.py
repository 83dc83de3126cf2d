"""``mayfly target check`` for an ecs target: is every resource there, and may we use it?

Each step makes the cheapest read call on one resource the runner uses, in the
order a broken setup usually fails: credentials, cluster, queues, bucket, log
group. The first problem raises one line that names the resource, the AWS
permission involved and, for access denied, the identity that was refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mayfly.core.errors import AccessDenied, CredentialsMissing, NotFound, Unavailable
from mayfly.providers.ecs import sdk
from mayfly.providers.ecs.aws import ACCESS_DENIED, Clients, as_mayfly_error, error_code, error_message
from mayfly.providers.ecs.settings import EcsSettings

#: Error codes that mean the credentials themselves are bad (not just not allowed).
_BAD_CREDENTIALS = frozenset(
    {
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "UnrecognizedClientException",
    }
)
_MISSING = frozenset(
    {
        "404",
        "NoSuchBucket",
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
        "ClusterNotFoundException",
        "ResourceNotFoundException",
    }
)


class _Check:
    """Runs the steps, knowing who we are once STS answered."""

    def __init__(self, settings: EcsSettings, clients: Clients) -> None:
        self.s = settings
        self.clients = clients
        self.identity = "these credentials"

    @contextmanager
    def step(self, what: str, permission: str, missing: str) -> Iterator[None]:
        """Turn an AWS error of one step into a one-line MayflyError."""
        bx = sdk.errors()
        try:
            yield
        except bx.ClientError as exc:
            code, message = error_code(exc), error_message(exc)
            if code in _BAD_CREDENTIALS:
                raise CredentialsMissing(f"AWS rejected the credentials ({code}): {message}") from exc
            if code in ACCESS_DENIED or code == "403":
                raise AccessDenied(f"access denied to {what} ({permission}) for {self.identity}") from exc
            if code in _MISSING:
                raise NotFound(missing) from exc
            raise Unavailable(f"checking {what}: {code}: {message}") from exc
        except bx.BotoCoreError as exc:
            raise as_mayfly_error(exc, f"checking {what}") from exc

    def run(self) -> None:
        """Every step, in order; the first problem raises."""
        s = self.s
        with self.step("STS", "sts:GetCallerIdentity", "STS is not available"):
            self.identity = str(self.clients("sts").get_caller_identity().get("Arn") or self.identity)
        self.cluster()
        for role, url in (
            ("tasks", s.tasks_queue_url),
            ("control", s.control_queue_url),
            ("events", s.events_queue_url),
        ):
            missing = f"SQS {role} queue {url} does not exist"
            with self.step(f"the {role} queue {url}", "sqs:GetQueueAttributes", missing):
                self.clients("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        with self.step(f"S3 bucket {s.bucket}", "s3:ListBucket", f"S3 bucket {s.bucket} does not exist"):
            self.clients("s3").head_bucket(Bucket=s.bucket)
        self.log_group()

    def cluster(self) -> None:
        """The cluster exists and is ACTIVE."""
        s = self.s
        missing = f"ECS cluster {s.cluster} not found in {s.region}"
        with self.step(f"ECS cluster {s.cluster}", "ecs:DescribeClusters", missing):
            found: dict[str, Any] = self.clients("ecs").describe_clusters(clusters=[s.cluster])
        clusters = found.get("clusters") or []
        if not clusters:
            raise NotFound(missing)
        status = clusters[0].get("status")
        if status != "ACTIVE":
            raise Unavailable(f"ECS cluster {s.cluster} is {status}, not ACTIVE")

    def log_group(self) -> None:
        """The log group exists (DescribeLogGroups matches prefixes: look for the exact name)."""
        s = self.s
        group = s.log_group
        with self.step(f"CloudWatch log group {group}", "logs:DescribeLogGroups", f"log group {group} not found"):
            pages = self.clients("logs").get_paginator("describe_log_groups").paginate(logGroupNamePrefix=group)
            names = {g.get("logGroupName") for page in pages for g in page.get("logGroups") or []}
        if group not in names:
            raise NotFound(f"CloudWatch log group {group} does not exist in {s.region}")


def check_target(settings: EcsSettings, clients: Clients) -> None:
    """Raise a one-line MayflyError naming the first resource that is missing or not allowed."""
    _Check(settings, clients).run()
