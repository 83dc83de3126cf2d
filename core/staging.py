"""What a cloud container needs to fetch its inputs: payload and config in the blob store, signed URLs.

Local containers get their files placed before they start. A container in a cloud
fetches them instead: the boot script reads ``MAYFLY_CODE_URL`` (+ ``MAYFLY_CODE_SHA256``),
``MAYFLY_PAYLOAD_URL`` and ``MAYFLY_CONFIG_URL``, and PUTs ``/mayfly/result.json`` to
``MAYFLY_RESULT_URL`` (sending ``MAYFLY_RESULT_HEADERS`` too, when the store needs headers)
when the command ends. URLs expire after the task's timeout plus a margin.
"""

from __future__ import annotations

import json

from mayfly.core.blobs import BlobStore
from mayfly.core.errors import Unsupported
from mayfly.core.messages import run_key
from mayfly.core.models import LaunchSpec

#: Signed URLs outlive the task by this much (image pulls, slow starts).
URL_MARGIN_SECONDS = 3600


def result_key(task_id: str, attempt: int) -> str:
    """Where the boot script uploads ``/mayfly/result.json``."""
    return run_key(task_id, attempt, "result.json")


def stage_inputs(spec: LaunchSpec, blobs: BlobStore, *, max_result_bytes: int | None = None) -> dict[str, str]:
    """Upload the payload and config of ``spec`` and return the boot script's fetch environment.

    Raises:
        Unsupported: the blob store cannot sign URLs.
    """
    expires = spec.timeout + URL_MARGIN_SECONDS
    payload_key = run_key(spec.task_id, spec.attempt, "payload.json")
    config_key = run_key(spec.task_id, spec.attempt, "config.json")
    blobs.put(payload_key, spec.payload)
    blobs.put(config_key, spec.config)
    env: dict[str, str] = {}

    def sign(key: str, method: str) -> str:
        url = blobs.url_for(key, method=method, expires=expires)
        if url is None:
            raise Unsupported(f"blob store {type(blobs).__name__} cannot sign URLs for containers to fetch from")
        return url

    if spec.code is not None:
        env["MAYFLY_CODE_URL"] = sign(spec.code.key, "GET")
        env["MAYFLY_CODE_SHA256"] = spec.code.sha256
    env["MAYFLY_PAYLOAD_URL"] = sign(payload_key, "GET")
    env["MAYFLY_CONFIG_URL"] = sign(config_key, "GET")
    env["MAYFLY_RESULT_URL"] = sign(result_key(spec.task_id, spec.attempt), "PUT")
    if blobs.upload_headers:  # Azure: a PUT through a SAS URL must name the blob type
        env["MAYFLY_RESULT_HEADERS"] = json.dumps(dict(blobs.upload_headers), sort_keys=True)
    if max_result_bytes is not None:
        env["MAYFLY_RESULT_MAX_BYTES"] = str(max_result_bytes)
    return env


def read_result(blobs: BlobStore, task_id: str, attempt: int, max_bytes: int) -> bytes | None:
    """What the boot script uploaded, or None; raises InvalidInput when it is over ``max_bytes``."""
    from mayfly.core.errors import InvalidInput

    try:
        data = blobs.get(result_key(task_id, attempt))
    except KeyError:
        return None
    if len(data) > max_bytes:
        raise InvalidInput(f"result.json is {len(data)} bytes; the limit is {max_bytes} bytes")
    return data or None
