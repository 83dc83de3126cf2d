"""``/v1/codes``: create revisions (zip upload or ready image), read, download, pause, resume, cancel all.

Code names may contain ``/``, so routes take ``{name:path}``. Sub-resources are
matched first: a ``GET`` of a code whose name ends in ``/revisions`` or
``/download`` reaches that sub-resource of the shorter name (documented in
``docs/api.md``). ``POST`` suffixes are unambiguous: there is no ``POST`` on a
bare code name.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, BinaryIO

from fastapi import Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from mayfly.api.openapi import errors
from mayfly.api.v1.deps import CallerDep, MayflyDep
from mayfly.api.v1.models import CodeImage, CodeUpload, parse_body
from mayfly.api.v1.routing import upload, v1_router
from mayfly.core.app import Mayfly
from mayfly.core.errors import InvalidInput

router = v1_router("codes")

#: Largest ``data`` field of an upload (the options are small; the config inside is capped at 64 KB by core).
MAX_DATA = 256 * 1024

_CREATE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "data"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "The code package (zip)."},
                        "data": {
                            "type": "string",
                            "description": "JSON: " + ", ".join(CodeUpload.model_fields),
                        },
                    },
                }
            },
            "application/json": {"schema": CodeImage.model_json_schema()},
        },
    }
}


@router.post("/codes", status_code=201, openapi_extra=_CREATE_BODY, responses=errors(400, 404, 501))
@upload
async def create_code(request: Request, caller: CallerDep, mf: MayflyDep) -> dict[str, Any]:
    """New revision of a code: a zip as ``multipart/form-data`` (``file`` + ``data``), or JSON naming an ``image``."""
    kind = request.headers.get("content-type", "").lower()
    if kind.startswith("multipart/form-data"):
        return await _push(request, caller.project_id, mf)
    if kind.startswith("application/json"):
        body = parse_body(CodeImage, await request.body())
        code, rev = await run_in_threadpool(mf.codes.register, caller.project_id, body.name, body.image, body.options())
        return code.to_json(rev)
    raise InvalidInput("send multipart/form-data (file + data) to upload a zip, or JSON with an image to register one")


async def _push(request: Request, project_id: str, mf: Mayfly) -> dict[str, Any]:
    try:
        form = await request.form(max_files=2, max_fields=2, max_part_size=MAX_DATA)
    except HTTPException as exc:  # Starlette's answer to a malformed multipart body
        raise InvalidInput(f"invalid multipart body: {exc.detail}") from None
    try:
        unknown = sorted(set(form.keys()) - {"file", "data"})
        if unknown:
            raise InvalidInput(f"unknown form field {unknown[0]!r} (send 'file' and 'data')")
        file, data = form.get("file"), form.get("data")
        if not isinstance(file, UploadFile):
            raise InvalidInput("missing form field 'file' (the zip)")
        if data is None:
            raise InvalidInput("missing form field 'data' (JSON with name and runtime)")
        raw = await data.read(MAX_DATA + 1) if isinstance(data, UploadFile) else data
        if len(raw) > MAX_DATA:
            raise InvalidInput(f"form field 'data' is larger than {MAX_DATA} bytes")
        body = parse_body(CodeUpload, raw, "form field 'data'")
        code, rev = await run_in_threadpool(
            mf.codes.push, project_id, body.name, file.file, runtime=body.runtime, options=body.options()
        )
    finally:
        await form.close()
    return code.to_json(rev)


@router.get("/codes")
def list_codes(caller: CallerDep, mf: MayflyDep) -> dict[str, Any]:
    """Every code of the project with its latest revision."""
    return {"codes": [code.to_json(rev) for code, rev in mf.codes.list(caller.project_id)]}


@router.get("/codes/{name:path}/revisions", responses=errors(400, 404))
def list_revisions(name: str, caller: CallerDep, mf: MayflyDep) -> dict[str, Any]:
    """Every revision of a code, newest first."""
    return {"name": name, "revisions": [r.to_json() for r in mf.codes.revisions(caller.project_id, name)]}


_ZIP_RESPONSE = {
    "description": "The revision's zip.",
    "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
    "headers": {
        "X-Mayfly-Revision": {"description": "The revision number.", "schema": {"type": "integer"}},
        "X-Mayfly-Sha256": {"description": "SHA-256 of the zip.", "schema": {"type": "string"}},
    },
}


@router.get(
    "/codes/{name:path}/download",
    response_class=StreamingResponse,
    responses={200: _ZIP_RESPONSE, **errors(400, 404)},
)
def download(
    name: str,
    caller: CallerDep,
    mf: MayflyDep,
    revision: Annotated[int | None, Query(ge=1, description="Revision number (default: latest).")] = None,
) -> StreamingResponse:
    """The zip of a revision (an image revision has none: 400)."""
    rev, stream = mf.codes.download(caller.project_id, name, revision)
    headers = {
        "Content-Disposition": f'attachment; filename="{name.replace("/", "_")}_{rev.rev}.zip"',
        "Content-Length": str(rev.size),
        "X-Mayfly-Revision": str(rev.rev),
        "X-Mayfly-Sha256": rev.sha256 or "",
    }
    return StreamingResponse(_chunks(stream), media_type="application/zip", headers=headers)


def _chunks(stream: BinaryIO, size: int = 64 * 1024) -> Iterator[bytes]:
    try:
        while block := stream.read(size):
            yield block
    finally:
        stream.close()


@router.post("/codes/{name:path}/pause", responses=errors(400, 404))
def pause(name: str, caller: CallerDep, mf: MayflyDep) -> dict[str, Any]:
    """Hold the code's queued tasks (running ones carry on)."""
    return mf.codes.set_paused(caller.project_id, name, True).to_json()


@router.post("/codes/{name:path}/resume", responses=errors(400, 404))
def resume(name: str, caller: CallerDep, mf: MayflyDep) -> dict[str, Any]:
    """Release the code's queued tasks."""
    return mf.codes.set_paused(caller.project_id, name, False).to_json()


@router.post("/codes/{name:path}/cancel_all", responses=errors(400, 404))
def cancel_all(name: str, caller: CallerDep, mf: MayflyDep) -> dict[str, Any]:
    """Cancel every queued task of the code now and ask the runners to stop its running ones."""
    cancelled, stopping = mf.tasks.cancel_all(caller.project_id, name)
    return {"code": name, "cancelled": cancelled, "stopping": stopping}


@router.delete("/codes/{name:path}", responses=errors(400, 404))
def delete_code(name: str, caller: CallerDep, mf: MayflyDep) -> dict[str, Any]:
    """Delete the code: its queued tasks are cancelled and its schedules end; finished tasks keep their history."""
    return {"name": name, "deleted": True, "cancelled_tasks": mf.codes.delete(caller.project_id, name)}


@router.get("/codes/{name:path}", responses=errors(400, 404))
def get_code(name: str, caller: CallerDep, mf: MayflyDep) -> dict[str, Any]:
    """A code and its latest revision."""
    code, rev = mf.codes.get(caller.project_id, name)
    return code.to_json(rev)
