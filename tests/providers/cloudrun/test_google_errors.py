"""Google API errors become Mayfly's typed errors (with stable codes) at the provider's boundary."""

from __future__ import annotations

import pytest
from google.api_core import exceptions as gx
from google.auth import exceptions as ax

from mayfly.core.errors import (
    AccessDenied,
    CredentialsMissing,
    InvalidInput,
    MayflyError,
    NotFound,
    Throttled,
    Unavailable,
)
from mayfly.providers.cloudrun.google import as_mayfly_error, translate
from mayfly.providers.cloudrun.pubsub import PubSubQueueSet


@pytest.mark.parametrize(
    ("exc", "kind", "code"),
    [
        (ax.DefaultCredentialsError("no ADC"), CredentialsMissing, "credentials_missing"),
        (ax.RefreshError("token expired"), CredentialsMissing, "credentials_missing"),
        (gx.PermissionDenied("caller lacks pubsub.topics.publish"), AccessDenied, "access_denied"),
        (gx.Unauthenticated("bad token"), AccessDenied, "access_denied"),
        (gx.NotFound("Resource not found (resource=t)"), NotFound, "not_found"),
        (gx.ResourceExhausted("quota"), Throttled, "throttled"),
        (gx.InvalidArgument("Invalid [topics] name"), InvalidInput, "invalid_input"),
        (gx.FailedPrecondition("bad state"), InvalidInput, "invalid_input"),
        (gx.ServiceUnavailable("connection refused"), Unavailable, "unavailable"),
        (gx.DeadlineExceeded("too slow"), Unavailable, "unavailable"),
        (gx.RetryError("gave up", cause=None), Unavailable, "unavailable"),
    ],
)
def test_google_errors_map_to_typed_errors(exc: Exception, kind: type[MayflyError], code: str) -> None:
    with pytest.raises(kind) as caught, translate("publishing to topic t"):
        raise exc
    assert caught.value.code == code
    assert caught.value.message.startswith("publishing to topic t: ")
    assert caught.value.__cause__ is exc


def test_mayfly_errors_and_other_exceptions_pass_through() -> None:
    mine = NotFound("already typed")
    assert as_mayfly_error(mine, "x") is mine
    with pytest.raises(KeyError), translate("x"):
        raise KeyError("a bug stays a bug")


def test_a_queue_set_needs_its_three_queues() -> None:
    with pytest.raises(InvalidInput, match="missing: control, events"):
        PubSubQueueSet({"tasks": ("projects/p/topics/t", "projects/p/subscriptions/t")})
    with pytest.raises(InvalidInput, match="unknown queue kind 'jobs'"):
        PubSubQueueSet.named("p", "x").get("jobs")
