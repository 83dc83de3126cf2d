"""boto3 access for the AWS provider: lazily imported clients, and botocore errors as Mayfly errors.

boto3 is an optional dependency (``pip install "mayfly-tasks[aws]"``); nothing
imports it until a client is needed. Every botocore exception is translated at
this boundary by :func:`translate`, so callers only ever see
:class:`~mayfly.core.errors.MayflyError` subclasses.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mayfly.core.errors import (
    AccessDenied,
    CredentialsMissing,
    MayflyError,
    MissingDependency,
    NotFound,
    Throttled,
    Unavailable,
)

INSTALL_HINT = 'AWS support needs boto3: pip install "mayfly-tasks[aws]"'

#: Error codes AWS uses for throttling (retried with backoff by the callers that expect them).
THROTTLING = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "RequestThrottled",
        "SlowDown",
        "ProvisionedThroughputExceededException",
        "KmsThrottled",
        "KMS.ThrottlingException",
    }
)
ACCESS_DENIED = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "KmsAccessDenied",
        "KMS.AccessDeniedException",
    }
)


def boto3_module() -> Any:
    """Import boto3, or raise MissingDependency with the install command."""
    try:
        import boto3
    except ImportError:
        raise MissingDependency(INSTALL_HINT) from None
    return boto3


class Clients:
    """One boto3 session per target, and its clients (thread-safe to create; boto3 clients are thread-safe)."""

    def __init__(self, region: str, endpoint_url: str | None = None) -> None:
        self.region = region
        self.endpoint_url = endpoint_url
        self._lock = threading.Lock()
        self._session: Any = None
        self._clients: dict[str, Any] = {}

    def __call__(self, service: str) -> Any:
        """A boto3 client for ``service`` (``ecs``, ``sqs``, ``s3``, ``logs``, ``sts``, ...)."""
        with self._lock:
            if service not in self._clients:
                boto3 = boto3_module()
                from botocore.config import Config

                if self._session is None:
                    self._session = boto3.session.Session(region_name=self.region)
                config = Config(retries={"max_attempts": 3, "mode": "standard"}, max_pool_connections=64)
                if service == "s3":
                    # Path-style URLs work with every endpoint, the emulator's included.
                    config = config.merge(Config(s3={"addressing_style": "path"}, signature_version="s3v4"))
                self._clients[service] = self._session.client(service, endpoint_url=self.endpoint_url, config=config)
            return self._clients[service]


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError ('' for anything else)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def error_message(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Message", "")) or str(exc)
    return str(exc)


def as_mayfly_error(exc: BaseException, doing: str) -> MayflyError:
    """Translate a botocore/boto3 exception into one clear Mayfly error."""
    from botocore import exceptions as bx

    if isinstance(exc, MayflyError):
        return exc
    if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError):
        return CredentialsMissing(
            f"{doing}: no AWS credentials found (set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
            "or run where an IAM role is attached)"
        )
    if isinstance(exc, bx.NoRegionError):
        return CredentialsMissing(f"{doing}: no AWS region configured")
    if isinstance(exc, bx.EndpointConnectionError | bx.ConnectTimeoutError | bx.ReadTimeoutError):
        return Unavailable(f"{doing}: cannot reach AWS ({exc})")
    code = error_code(exc)
    message = error_message(exc)
    if code in THROTTLING:
        return Throttled(f"{doing}: throttled by AWS ({code})")
    if code in ACCESS_DENIED:
        return AccessDenied(f"{doing}: access denied ({code}: {message})")
    if code in {
        "NoSuchBucket",
        "NoSuchKey",
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
        "ClusterNotFoundException",
        "ResourceNotFoundException",
        "404",
    }:
        return NotFound(f"{doing}: not found ({code}: {message})")
    if code:
        return Unavailable(f"{doing}: {code}: {message}")
    return Unavailable(f"{doing}: {exc}")


@contextmanager
def translate(doing: str) -> Iterator[None]:
    """Run AWS calls; any botocore exception leaves as a MayflyError naming what was being done."""
    try:
        yield
    except MayflyError:
        raise
    except Exception as exc:
        from botocore import exceptions as bx

        if isinstance(exc, bx.BotoCoreError | bx.ClientError):
            raise as_mayfly_error(exc, doing) from exc
        raise
