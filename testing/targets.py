"""Target settings for tests that need a target whose provider is never called.

Admission, placement and the router read only a provider's declarations and a target's
row, so an ECS target pointing at a closed port is enough for them.
"""

from __future__ import annotations

from typing import Any

#: Settings of an ECS target that is never called (its endpoint is a closed local port).
UNCALLED_ECS_SETTINGS: dict[str, Any] = {
    "region": "eu-west-1",
    "endpoint_url": "http://127.0.0.1:9",
    "cluster": "mayfly",
    "subnets": ["subnet-1"],
    "execution_role_arn": "arn:aws:iam::000000000000:role/exec",
    "log_group": "/mayfly/tasks",
    "bucket": "mayfly-blobs",
    "tasks_queue_url": "http://127.0.0.1:9/000000000000/tasks",
    "control_queue_url": "http://127.0.0.1:9/000000000000/control",
    "events_queue_url": "http://127.0.0.1:9/000000000000/events",
}
