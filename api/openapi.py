"""The OpenAPI document at ``/openapi.json``: every answer a native route really gives, and no other.

Routes declare their error answers with :func:`errors` (the ``/v1`` router adds the
ones every route can give: 401, 413, 429, 503). FastAPI on its own adds a ``422``
to every route with parameters, but this API answers invalid input with ``400``
and the :class:`ErrorBody` shape, so :func:`install` drops the 422s and their
schemas from the generated document.

The document describes the native API only. IronWorker's ``/2`` API keeps
IronWorker's contract (lenient types, ``{"msg": ...}`` errors), documented in
``docs/ironworker.md``; its routes are left out of the document.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field

#: What each error status means on ``/v1``; the body is always an :class:`ErrorBody`.
_MEANING = {
    400: "Invalid input (code `invalid_input` or a more precise one); nothing was changed.",
    402: "Queueing would pass the project's daily or monthly budget (`budget_exceeded`); nothing was queued.",
    401: "Missing, unknown, expired or revoked token (`unauthorized`).",
    404: "No such object in the caller's project (`*_not_found`).",
    409: "The object's state does not allow this (`conflict`, `task_already_finished`, ...).",
    413: "The request body is larger than the route accepts (`body_too_large`, `upload_too_large`, ...).",
    429: "The project sent more requests than its rate allows (`rate_limited`); retry after `Retry-After`.",
    501: "The target's provider does not offer this (`unsupported`).",
    503: "Something the server depends on is unavailable (`unavailable`, `store_unavailable`, ...).",
}

_RETRY_AFTER = {"Retry-After": {"description": "Whole seconds to wait before retrying.", "schema": {"type": "integer"}}}


class ErrorBody(BaseModel):
    """Every ``/v1`` error: a stable code to match on and one line for a human."""

    code: str = Field(description="Stable error code, e.g. `task_not_found`.")
    message: str = Field(description="One line saying what went wrong.")


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` entries of these error statuses, each with the :class:`ErrorBody` model."""
    found: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"model": ErrorBody, "description": _MEANING[status]}
        if status == 429:
            entry["headers"] = _RETRY_AFTER
        found[status] = entry
    return found


#: What any ``/v1`` route can answer, whatever it does: no token, a body over the cap, the rate, the store.
COMMON = errors(401, 413, 429, 503)


def install(app: FastAPI) -> None:
    """Serve :func:`document` as the app's ``/openapi.json`` (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document of the native routes, without the 422 answers the API never gives."""
    doc = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        description=app.description,
        routes=app.routes,
    )
    paths = doc.get("paths", {})
    for path in [p for p in paths if p.startswith("/2/")]:
        del paths[path]
    for operations in doc.get("paths", {}).values():
        for operation in operations.values():
            operation.get("responses", {}).pop("422", None)
    schemas = doc.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    return doc
