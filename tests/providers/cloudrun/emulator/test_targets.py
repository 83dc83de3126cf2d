"""A target on the session's emulator: queues with dead letters, a bucket, a signing key that works."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def test_a_new_target_has_its_queues_dead_letters_bucket_and_key(gcp_emulator: Any) -> None:
    settings = gcp_emulator.new_target()
    base = f"http://{settings.pubsub_endpoint}/v1/projects/{settings.project}"
    for kind in ("tasks", "control", "events"):
        name = f"{settings.queue_prefix}-{kind}"
        subscription = requests.get(f"{base}/subscriptions/{name}", timeout=10).json()
        assert subscription["topic"] == f"projects/{settings.project}/topics/{name}"
        policy = subscription["deadLetterPolicy"]
        assert policy["deadLetterTopic"] == f"projects/{settings.project}/topics/{name}-dlq"
        assert policy["maxDeliveryAttempts"] == 5
        dead = requests.get(f"{base}/subscriptions/{name}-dlq", timeout=10).json()
        assert dead["topic"] == f"projects/{settings.project}/topics/{name}-dlq"
    bucket = requests.get(f"{settings.storage_endpoint}/storage/v1/b/{settings.bucket}", timeout=10)
    assert bucket.status_code == 200

    from google.oauth2 import service_account

    key = json.loads(Path(settings.credentials_file).read_text())
    assert key["type"] == "service_account"
    credentials = service_account.Credentials.from_service_account_file(settings.credentials_file)
    assert credentials.sign_bytes(b"x")
    # A client that refreshes these credentials gets a token from the emulator itself, not Google.
    import google.auth.transport.requests

    credentials = credentials.with_scopes(["https://www.googleapis.com/auth/cloud-platform"])
    credentials.refresh(google.auth.transport.requests.Request())
    assert credentials.token


def test_a_bad_log_filter_is_refused_with_a_google_error(gcp_emulator: Any) -> None:
    answer = requests.post(
        f"{gcp_emulator.endpoints.logging}/v2/entries:list",
        json={"resourceNames": [f"projects/{gcp_emulator.project}"], "filter": 'textPayload=~"x.*"'},
        timeout=10,
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["status"] == "INVALID_ARGUMENT"
