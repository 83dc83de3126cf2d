"""The HTTP side: Cloud Run Admin API v2 and Cloud Logging v2 ``entries:list`` as one WSGI application.

Paths (https://cloud.google.com/run/docs/reference/rest/v2/projects.locations.jobs and
https://cloud.google.com/logging/docs/reference/v2/rest/v2/entries/list), all under ``/v2``:

=======  ======================================================  =====================
POST     ``projects/P/locations/L/jobs?jobId=J``                 CreateJob (operation)
GET      ``projects/P/locations/L/jobs[/J]``                     ListJobs, GetJob
DELETE   ``projects/P/locations/L/jobs/J``                       DeleteJob (operation)
PATCH    ``projects/P/locations/L/jobs/J[?allowMissing=true]``   UpdateJob (operation)
POST     ``.../jobs/J:run``                                      RunJob (operation)
GET      ``.../jobs/J/executions[/E]``                           List/GetExecution
DELETE   ``.../jobs/J/executions/E``                             DeleteExecution (operation)
POST     ``.../jobs/J/executions/E:cancel``                      CancelExecution (operation)
GET      ``.../jobs/J/executions/E/tasks[/T]``                   List/GetTask
GET      ``projects/P/locations/L/operations/O``                 GetOperation
POST     ``.../operations/O:wait``                               WaitOperation
DELETE   ``.../operations/O``                                    DeleteOperation
POST     ``entries:list``                                        Cloud Logging
=======  ======================================================  =====================

``POST /token`` (outside ``/v2``) answers any OAuth token request with a dummy
access token: the token URI of the emulator's key files.

Errors are Google's JSON error bodies (:mod:`.errors`); an unknown path answers 404.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.wrappers import Request, Response

from mayfly.providers.cloudrun.emulator import names
from mayfly.providers.cloudrun.emulator.backend import CloudRunBackend
from mayfly.providers.cloudrun.emulator.errors import ApiError, invalid_argument, not_found
from mayfly.providers.cloudrun.emulator.logstore import LogStore

log = logging.getLogger(__name__)

_SEG = r"([^/:]+)"
_BASE = rf"^/v2/projects/{_SEG}/locations/{_SEG}"
Handler = Callable[..., dict[str, Any]]
TOKEN = {"access_token": "mayfly-emulator-token", "token_type": "Bearer", "expires_in": 3600}


class CloudRunApi:
    """WSGI application of the Cloud Run Admin API v2 and Cloud Logging's ``entries:list``."""

    def __init__(self, backend: CloudRunBackend, logs: LogStore) -> None:
        self.backend = backend
        self.logs = logs
        b = backend
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = [
            ("POST", re.compile(r"^/v2/entries:list$"), lambda req: logs.list_entries(_body(req))),
            # The token URI of the emulator's throwaway service-account keys (see .bootstrap).
            ("POST", re.compile(r"^/token$"), lambda req: dict(TOKEN)),
            ("GET", re.compile(rf"{_BASE}/jobs$"), lambda req, p: b.list_jobs(p, _query(req))),
            ("POST", re.compile(rf"{_BASE}/jobs$"), lambda req, p: b.create_job(p, _query(req), _body(req))),
            ("GET", re.compile(rf"{_BASE}/jobs/{_SEG}$"), lambda req, p, j: b.get_job(p, j)),
            ("DELETE", re.compile(rf"{_BASE}/jobs/{_SEG}$"), lambda req, p, j: b.delete_job(p, j, _query(req))),
            (
                "PATCH",
                re.compile(rf"{_BASE}/jobs/{_SEG}$"),
                lambda req, p, j: b.update_job(p, j, _query(req), _body(req)),
            ),
            ("POST", re.compile(rf"{_BASE}/jobs/{_SEG}:run$"), lambda req, p, j: b.run_job(p, j, _body(req))),
            (
                "GET",
                re.compile(rf"{_BASE}/jobs/{_SEG}/executions$"),
                lambda req, p, j: b.list_executions(p, j, _query(req)),
            ),
            (
                "GET",
                re.compile(rf"{_BASE}/jobs/{_SEG}/executions/{_SEG}$"),
                lambda req, p, j, e: b.get_execution(p, j, e),
            ),
            (
                "DELETE",
                re.compile(rf"{_BASE}/jobs/{_SEG}/executions/{_SEG}$"),
                lambda req, p, j, e: b.delete_execution(p, j, e),
            ),
            (
                "POST",
                re.compile(rf"{_BASE}/jobs/{_SEG}/executions/{_SEG}:cancel$"),
                lambda req, p, j, e: b.cancel_execution(p, j, e),
            ),
            (
                "GET",
                re.compile(rf"{_BASE}/jobs/{_SEG}/executions/{_SEG}/tasks$"),
                lambda req, p, j, e: b.list_tasks(p, j, e, _query(req)),
            ),
            (
                "GET",
                re.compile(rf"{_BASE}/jobs/{_SEG}/executions/{_SEG}/tasks/{_SEG}$"),
                lambda req, p, j, e, t: b.get_task(p, j, e, t),
            ),
            ("GET", re.compile(rf"{_BASE}/operations/{_SEG}$"), lambda req, p, o: b.get_operation(p, o)),
            ("DELETE", re.compile(rf"{_BASE}/operations/{_SEG}$"), lambda req, p, o: b.delete_operation(p, o)),
            (
                "POST",
                re.compile(rf"{_BASE}/operations/{_SEG}:wait$"),
                lambda req, p, o: b.wait_operation(p, o, _body(req)),
            ),
        ]

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        try:
            doc = self.dispatch(request)
            response = Response(json.dumps(doc), status=200, mimetype="application/json")
        except ApiError as err:
            response = Response(json.dumps(err.body()), status=err.http_status, mimetype="application/json")
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            internal = ApiError("INTERNAL", "Internal error in the Mayfly Cloud Run emulator.")
            response = Response(json.dumps(internal.body()), status=500, mimetype="application/json")
        result: Iterable[bytes] = response(environ, start_response)
        return result

    def dispatch(self, request: Request) -> dict[str, Any]:
        path = request.path
        allowed = False
        for method, pattern, handler in self.routes:
            match = pattern.match(path)
            if not match:
                continue
            allowed = True
            if method != request.method:
                continue
            groups = list(match.groups())
            if path.startswith("/v2/projects/"):
                parent = names.parent(groups[0], groups[1])
                return handler(request, parent, *groups[2:])
            return handler(request)
        if allowed:
            raise ApiError("UNIMPLEMENTED", f"Method {request.method} is not supported on {path}.")
        raise not_found(f"The requested URL {path} was not found on this server.")


def _query(request: Request) -> dict[str, str]:
    return {k: v for k, v in request.args.items()}


def _body(request: Request) -> dict[str, Any]:
    raw = request.get_data()
    if not raw:
        return {}
    try:
        doc = json.loads(raw)
    except ValueError:
        raise invalid_argument("Invalid JSON payload received.") from None
    if not isinstance(doc, dict):
        raise invalid_argument("Invalid JSON payload received: an object is expected.")
    return doc
