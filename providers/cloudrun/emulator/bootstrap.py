"""A target on the emulator: its Pub/Sub topics and subscriptions, its bucket, a throwaway key file.

What ``mayfly emulator gcp --target NAME`` creates, as a stack would in Google
Cloud: topics and pull subscriptions ``mayfly-NAME-tasks``, ``-control`` and
``-events``, each with a ``-dlq`` dead-letter topic and subscription and
``max_delivery_attempts``; the bucket ``mayfly-NAME``; and a service-account key
file (a fresh RSA key) for V4 signed URLs. Its ``token_uri`` is the emulator's
own ``/token``, which hands out a dummy access token, so a Google client that
refreshes these credentials never leaves the machine. All of it is idempotent:
existing topics, subscriptions and buckets are kept.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import requests

from mayfly.core.errors import InvalidInput, Unavailable

KINDS = ("tasks", "control", "events")
MAX_DELIVERY_ATTEMPTS = 5
ACK_DEADLINE = 10
_TARGET = re.compile(r"^[a-z][a-z0-9-]{0,40}$")


def resource_prefix(target: str) -> str:
    """``mayfly-TARGET``: Pub/Sub ids, bucket and job names of the target (InvalidInput for a bad name)."""
    if not _TARGET.match(target):
        raise InvalidInput(
            f"target name {target!r} cannot name Google Cloud resources: use lowercase letters, digits and "
            "hyphens, starting with a letter, at most 41 characters"
        )
    return f"mayfly-{target}"


def _put(url: str, body: dict[str, Any]) -> None:
    response = requests.put(url, json=body, timeout=30)
    if response.status_code not in (200, 409):
        raise Unavailable(f"the Pub/Sub emulator refused PUT {url}: {response.status_code} {response.text[:300]}")


def create_queues(pubsub_host: str, project: str, prefix: str) -> None:
    """Topics and subscriptions ``PREFIX-KIND`` with ``PREFIX-KIND-dlq`` dead letters (REST on the emulator)."""
    base = f"http://{pubsub_host}/v1/projects/{project}"
    for kind in KINDS:
        name = f"{prefix}-{kind}"
        _put(f"{base}/topics/{name}-dlq", {})
        _put(f"{base}/subscriptions/{name}-dlq", {"topic": f"projects/{project}/topics/{name}-dlq"})
        _put(f"{base}/topics/{name}", {})
        _put(
            f"{base}/subscriptions/{name}",
            {
                "topic": f"projects/{project}/topics/{name}",
                "ackDeadlineSeconds": ACK_DEADLINE,
                "deadLetterPolicy": {
                    "deadLetterTopic": f"projects/{project}/topics/{name}-dlq",
                    "maxDeliveryAttempts": MAX_DELIVERY_ATTEMPTS,
                },
            },
        )


def create_bucket(storage_endpoint: str, project: str, bucket: str) -> None:
    """The bucket on the Cloud Storage emulator (kept when it exists)."""
    response = requests.post(
        f"{storage_endpoint}/storage/v1/b", params={"project": project}, json={"name": bucket}, timeout=30
    )
    if response.status_code not in (200, 409):
        raise Unavailable(
            f"the Cloud Storage emulator refused bucket {bucket}: {response.status_code} {response.text[:300]}"
        )


def write_key_file(path: Path, project: str, token_uri: str) -> Path:
    """A service-account key file with a fresh 2048-bit RSA key (mode 0600)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    doc = {
        "type": "service_account",
        "project_id": project,
        "private_key_id": uuid.uuid4().hex,
        "private_key": pem,
        "client_email": f"mayfly-emulator@{project}.iam.gserviceaccount.com",
        "client_id": str(uuid.uuid4().int)[:21],
        "auth_uri": token_uri,
        "token_uri": token_uri,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2))
    tmp.chmod(0o600)
    tmp.replace(path)
    return path
