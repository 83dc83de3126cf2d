"""Azure Resource Manager's HTTP surface for ``Microsoft.ContainerInstance/containerGroups`` (WSGI).

Routes (every path segment but names case-insensitive, as in ARM; ``api-version``
required on every request, a bearer ``Authorization`` header too, never checked):

- ``PUT|GET|PATCH|DELETE /subscriptions/S/resourceGroups/RG/providers/Microsoft.ContainerInstance/containerGroups/N``
- ``POST .../containerGroups/N/stop`` and ``.../restart`` (204), ``.../start`` (202, long-running)
- ``GET .../containerGroups/N/containers/C/logs?tail=N&timestamps=true|false`` -> ``{"content": "..."}``
- ``GET /subscriptions/S[/resourceGroups/RG]/providers/Microsoft.ContainerInstance/containerGroups``
  -> ``{"value": [...]}``
- ``GET /subscriptions/S/providers/Microsoft.ContainerInstance/locations/L/operations/ID`` (operation status)
  and ``.../operationResults/ID`` (the ``Location`` of DELETE and start)

PUT answers 201 (created) or 200 (updated) with the group and an
``Azure-AsyncOperation`` header, or 412 ``PreconditionFailed`` when it carries
``If-None-Match: *`` and the group exists (which is then left untouched); DELETE 202 with ``Azure-AsyncOperation`` and
``Location`` (204 when there is no such group), as ARM does.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.wrappers import Request, Response

from mayfly.providers.aci.emulator.backend import Backend
from mayfly.providers.aci.emulator.errors import ArmError, bad_request
from mayfly.providers.aci.emulator.faults import Faults
from mayfly.providers.aci.emulator.names import API_VERSION, check_api_version
from mayfly.providers.aci.emulator.operations import RETRY_AFTER, Operation

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]

_PROVIDER = r"/subscriptions/(?P<sub>[^/]+)(?:/resourcegroups/(?P<rg>[^/]+))?/providers/microsoft\.containerinstance"
_GROUPS = re.compile(_PROVIDER + r"/containergroups/?$", re.IGNORECASE)
_GROUP = re.compile(
    _PROVIDER + r"/containergroups/(?P<name>[^/]+)(?:/(?P<action>stop|start|restart))?/?$", re.IGNORECASE
)
_LOGS = re.compile(
    _PROVIDER + r"/containergroups/(?P<name>[^/]+)/containers/(?P<container>[^/]+)/logs/?$", re.IGNORECASE
)
_OPERATION = re.compile(
    _PROVIDER + r"/locations/(?P<location>[^/]+)/(?P<kind>operations|operationresults)/(?P<id>[^/]+)/?$", re.IGNORECASE
)


def _json(status: int, body: Any = None, headers: dict[str, str] | None = None) -> Response:
    data = "" if body is None else json.dumps(body)
    response = Response(data, status=status, mimetype="application/json" if body is not None else None)
    response.headers["x-ms-request-id"] = str(uuid.uuid4())
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def _error(error: ArmError) -> Response:
    return _json(error.status, error.body(), {"x-ms-failure-cause": "gateway"} if error.status == 404 else None)


class ArmApi:
    """The WSGI application."""

    def __init__(self, backend: Backend, faults: Faults | None = None) -> None:
        self.backend = backend
        self.faults = faults or Faults()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        try:
            response = self.handle(request)
        except ArmError as error:
            response = _error(error)
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            response = _json(500, {"error": {"code": "InternalServerError", "message": "The emulator failed."}})
        result: Iterable[bytes] = response(environ, start_response)
        return result

    # ---------------------------------------------------------------- routing

    def handle(self, request: Request) -> Response:
        path = request.path
        if not request.headers.get("Authorization"):
            raise ArmError(401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.")
        check_api_version(request.args.get("api-version"))
        if fault := self.faults.take(request.method, path):
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else None
            return _json(fault.status, ArmError(fault.status, fault.code, fault.message).body(), headers)
        if match := _OPERATION.match(path):
            return self._operation(request, match["id"], match["kind"].lower())
        if match := _LOGS.match(path):
            if request.method != "GET" or not match["rg"]:
                raise self._no_route(request)
            return self._logs(request, match["sub"], match["rg"], match["name"], match["container"])
        if match := _GROUPS.match(path):
            if request.method != "GET":
                raise self._no_route(request)
            return _json(200, {"value": self.backend.list(match["sub"], match["rg"])})
        if (match := _GROUP.match(path)) and match["rg"]:
            sub, rg, name, action = match["sub"], match["rg"], match["name"], (match["action"] or "").lower()
            if action:
                if request.method != "POST":
                    raise self._no_route(request)
                return self._action(request, sub, rg, name, action)
            return self._group(request, sub, rg, name)
        raise self._no_route(request)

    @staticmethod
    def _no_route(request: Request) -> ArmError:
        return ArmError(
            404 if request.method == "GET" else 405,
            "NoRegisteredProviderFound" if request.method == "GET" else "MethodNotAllowed",
            f"The Mayfly ACI emulator does not serve {request.method} {request.path}.",
        )

    @staticmethod
    def _body(request: Request) -> Any:
        try:
            return json.loads(request.get_data() or b"null")
        except ValueError:
            raise bad_request(
                "InvalidRequestContent", "The request content was invalid and could not be deserialized."
            ) from None

    @staticmethod
    def _lro_headers(request: Request, operation: Operation, *, location: bool) -> dict[str, str]:
        base = request.host_url.rstrip("/")
        query = f"?api-version={request.args.get('api-version', API_VERSION)}"
        headers = {"Azure-AsyncOperation": base + operation.path() + query, "Retry-After": str(RETRY_AFTER)}
        if location:
            headers["Location"] = base + operation.path("operationResults") + query
        return headers

    # ---------------------------------------------------------------- handlers

    def _group(self, request: Request, sub: str, rg: str, name: str) -> Response:
        if request.method == "GET":
            return _json(200, self.backend.get(sub, rg, name))
        if request.method == "PUT":
            only_if_absent = request.headers.get("If-None-Match", "").strip() == "*"
            body, created, operation = self.backend.put(
                sub, rg, name, self._body(request), only_if_absent=only_if_absent
            )
            return _json(201 if created else 200, body, self._lro_headers(request, operation, location=False))
        if request.method == "PATCH":
            patch = self._body(request)
            if not isinstance(patch, dict) or "tags" not in patch:
                return _json(200, self.backend.get(sub, rg, name))  # nothing else of a group can be patched
            return _json(200, self.backend.update_tags(sub, rg, name, patch["tags"]))
        if request.method == "DELETE":
            deleted = self.backend.delete(sub, rg, name)
            if deleted is None:
                return _json(204)
            _body, operation = deleted
            return _json(202, None, self._lro_headers(request, operation, location=True))
        raise self._no_route(request)

    def _action(self, request: Request, sub: str, rg: str, name: str, action: str) -> Response:
        if action == "stop":
            self.backend.stop(sub, rg, name)
            return _json(204)
        if action == "restart":
            self.backend.start(sub, rg, name)  # ACI answers a restart with 204 and restarts in the background
            return _json(204)
        operation = self.backend.start(sub, rg, name)
        return _json(202, None, self._lro_headers(request, operation, location=True))

    def _logs(self, request: Request, sub: str, rg: str, name: str, container: str) -> Response:
        tail_arg = request.args.get("tail")
        tail: int | None = None
        if tail_arg is not None:
            if not tail_arg.isdigit():
                raise bad_request("InvalidRequestParameter", f"The value '{tail_arg}' of parameter 'tail' is invalid.")
            tail = int(tail_arg)
        timestamps = request.args.get("timestamps", "false").lower() == "true"
        return _json(200, {"content": self.backend.logs(sub, rg, name, container, tail, timestamps)})

    def _operation(self, request: Request, op_id: str, kind: str) -> Response:
        if request.method != "GET":
            raise self._no_route(request)
        operation = self.backend.operations.get(op_id)
        if operation is None:
            raise ArmError(404, "OperationNotFound", f"The operation '{op_id}' could not be found.")
        if kind == "operations":
            return _json(200, operation.to_arm())
        if operation.status == "InProgress":
            return _json(202, None, self._lro_headers(request, operation, location=True))
        if operation.status == "Failed" and operation.error:
            return _json(400, {"error": dict(operation.error)})
        return _json(204)
