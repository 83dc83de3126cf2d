"""The FastAPI application: error bodies, request size caps, and the routers of each API."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

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
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
        status = 400
        return JSONResponse(error_body(request.url.path, "invalid_input", message), status_code=status)

    for router in _routers():
        app.include_router(router)
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
