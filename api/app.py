"""The FastAPI application: error bodies, request size caps, and the routers of each API."""

from __future__ import annotations

import logging

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from mayfly.api import openapi
from mayfly.api.methods import allowed_methods
from mayfly.api.validation import validation_message
from mayfly.core import __version__
from mayfly.core.app import Mayfly
from mayfly.core.errors import MayflyError

#: Bodies larger than this are refused with 413 before they are read whole (code uploads have their own cap).
MAX_JSON_BODY = 1024 * 1024


def error_body(path: str, code: str, message: str) -> dict[str, object]:
    """Native errors are ``{"code", "message"}``; IronWorker's API answers ``{"msg": ...}``."""
    if path.startswith("/2/"):
        return {"msg": message}
    return {"code": code, "message": message}


log = logging.getLogger("mayfly.api")

#: Stable codes of the errors the framework answers itself (no route, wrong method).
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


def create_app(mf: Mayfly) -> FastAPI:
    """The app serving one Mayfly home."""
    app = FastAPI(title="Mayfly", version=__version__, docs_url="/docs", redoc_url=None)
    app.state.mayfly = mf

    @app.exception_handler(MayflyError)
    async def mayfly_error(request: Request, exc: MayflyError) -> JSONResponse:
        headers = {}
        retry_after = exc.details.get("retry_after") if exc.details else None
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        return JSONResponse(
            error_body(request.url.path, exc.code, exc.message), status_code=exc.http_status, headers=headers
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        message = validation_message(exc)
        return JSONResponse(error_body(request.url.path, "invalid_input", message), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # Unknown paths and methods under the APIs get their error shape too; other paths keep FastAPI's answer.
        path = request.url.path
        if not (path.startswith("/v1/") or path.startswith("/2/")):
            return await http_exception_handler(request, exc)
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        message = {
            404: f"no route {request.method} {path}",
            405: f"method {request.method} is not allowed on {path}",
        }.get(exc.status_code, str(exc.detail))
        body = error_body(path, code, message)
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            # Starlette names only the methods of the first route that matched the path; name them all.
            headers = {**(headers or {}), "Allow": ", ".join(allowed_methods(request.app.routes, request.scope))}
        return JSONResponse(body, status_code=exc.status_code, headers=headers)

    @app.exception_handler(ClientDisconnect)
    async def client_gone(request: Request, exc: ClientDisconnect) -> Response:
        # A client that hangs up mid-request (an upload cancelled, a dropped link) is normal: one line, no traceback.
        client = request.client.host if request.client else "?"
        log.info("client %s disconnected before sending all of %s %s", client, request.method, request.url.path)
        return Response(status_code=400)  # nobody reads it; nothing was stored

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> Response:
        # A bug, not a client error: the API's shape with no detail (the traceback goes to the server's log).
        path = request.url.path
        if not (path.startswith("/v1/") or path.startswith("/2/")):
            return PlainTextResponse("Internal Server Error", status_code=500)
        return JSONResponse(error_body(path, "internal_error", "internal server error"), status_code=500)

    for router in _routers():
        app.include_router(router)
    openapi.install(app)
    return app


def _routers() -> list[APIRouter]:
    """The routers of every API part that is installed (each module exposes ``router``)."""
    import importlib

    found: list[APIRouter] = []
    for name in ("mayfly.api.v1", "mayfly.api.ironworker", "mayfly.api.metrics", "mayfly.api.dashboard"):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        found.append(module.router)
    return found
