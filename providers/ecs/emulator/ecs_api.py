"""ECS's wire protocol: JSON 1.1 over HTTP POST, the action in ``X-Amz-Target``.

A WSGI application in front of :class:`~mayfly.providers.ecs.emulator.backend.EcsBackend`:
it reads ``AmazonEC2ContainerServiceV20141113.<Action>`` and the JSON body,
takes the region from the SigV4 credential scope (signatures are not checked),
and answers with the action's JSON or an error document (``__type`` +
``message``), as botocore expects.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from mayfly.providers.ecs.emulator.arns import region_of
from mayfly.providers.ecs.emulator.backend import EcsBackend
from mayfly.providers.ecs.emulator.errors import EcsError, serialization, unknown_operation

TARGET_PREFIX = "AmazonEC2ContainerServiceV20141113."
CONTENT_TYPE = "application/x-amz-json-1.1"

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]


def is_ecs_request(environ: dict[str, Any]) -> bool:
    """Whether a WSGI request is an ECS API call."""
    return str(environ.get("HTTP_X_AMZ_TARGET", "")).startswith(TARGET_PREFIX)


class EcsApi:
    """The ECS endpoint as a WSGI application."""

    def __init__(self, backend: EcsBackend, default_region: str) -> None:
        self.backend = backend
        self.default_region = default_region
        self._actions = backend.actions()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        request_id = str(uuid.uuid4())
        try:
            status, doc = 200, self.handle(environ)
        except EcsError as err:
            status, doc = err.status, err.body()
            log.debug("ECS %s -> %s", environ.get("HTTP_X_AMZ_TARGET"), err)
        except Exception:
            log.exception("ECS %s failed", environ.get("HTTP_X_AMZ_TARGET"))
            status, doc = 500, {"__type": "ServerException", "message": "Internal error of the ECS emulator."}
        body = json.dumps(doc).encode()
        headers = [
            ("Content-Type", CONTENT_TYPE),
            ("Content-Length", str(len(body))),
            ("x-amzn-RequestId", request_id),
        ]
        if status != 200:
            headers.append(("x-amzn-ErrorType", f"{doc['__type']}:"))
        reasons = {200: "OK", 400: "Bad Request", 500: "Internal Server Error", 503: "Service Unavailable"}
        reason = reasons.get(status, "Error")
        start_response(f"{status} {reason}", headers)
        return [body]

    def handle(self, environ: dict[str, Any]) -> dict[str, Any]:
        """Run one action; raises EcsError for the client's mistakes."""
        if environ.get("REQUEST_METHOD") != "POST":
            raise serialization("ECS actions are HTTP POST requests.")
        action = str(environ["HTTP_X_AMZ_TARGET"])[len(TARGET_PREFIX) :]
        handler = self._actions.get(action)
        if handler is None:
            raise unknown_operation(action)
        request = self._body(environ)
        region = region_of(environ.get("HTTP_AUTHORIZATION"), self.default_region)
        return handler(region, request)

    @staticmethod
    def _body(environ: dict[str, Any]) -> dict[str, Any]:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        raw = environ["wsgi.input"].read(length) if length > 0 else b""
        if not raw.strip():
            return {}
        try:
            doc = json.loads(raw)
        except ValueError:
            raise serialization("The request body is not valid JSON.") from None
        if not isinstance(doc, dict):
            raise serialization("The request body must be a JSON object.")
        return doc
