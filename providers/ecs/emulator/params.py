"""Request parameters every ECS action validates alike: tags and ARN-list pagination."""

from __future__ import annotations

import base64
from typing import Any

from mayfly.providers.ecs.emulator.errors import invalid_parameter

MAX_TAGS = 50
#: Listings return at most this many ARNs per page (ECS's maxResults cap).
PAGE_LIMIT = 100


def parse_tags(value: Any) -> dict[str, str]:
    """ECS's ``[{"key", "value"}]`` as a dict, with its limits and the reserved ``aws:`` prefix."""
    if value is None:
        return {}
    if not isinstance(value, list) or len(value) > MAX_TAGS:
        raise invalid_parameter(f"Tags must be a list of at most {MAX_TAGS} key/value pairs.")
    tags: dict[str, str] = {}
    for tag in value:
        key, val = str(tag.get("key", "")), str(tag.get("value", ""))
        if not key:
            raise invalid_parameter("Tag keys must not be empty.")
        if key.lower().startswith("aws:") or val.lower().startswith("aws:"):
            raise invalid_parameter("Tag keys and values that start with 'aws:' are reserved for AWS use.")
        tags[key] = val
    return tags


def page(items: list[str], req: dict[str, Any], key: str) -> dict[str, Any]:
    """One page of an ARN listing as ``{key: [...], "nextToken": ...}`` (ECS's opaque ``nextToken``)."""
    max_results = req.get("maxResults")
    if max_results is not None and not 1 <= max_results <= PAGE_LIMIT:
        raise invalid_parameter(f"maxResults must be between 1 and {PAGE_LIMIT}.")
    start = 0
    if req.get("nextToken"):
        try:
            start = int(base64.urlsafe_b64decode(str(req["nextToken"]).encode()).decode())
        except ValueError:
            raise invalid_parameter("Invalid nextToken.") from None
    size = max_results or PAGE_LIMIT
    doc: dict[str, Any] = {key: items[start : start + size]}
    if start + size < len(items):
        doc["nextToken"] = base64.urlsafe_b64encode(str(start + size).encode()).decode()
    return doc
