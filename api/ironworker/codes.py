"""Code packages: upload (multipart ``data`` + ``file``), list, info, revisions, download, pause/resume, delete.

Every upload is a new revision of the code named in ``data.name``. Codes created
here run in IronWorker mode (``PAYLOAD_FILE``, ``CONFIG_FILE``, ``TASK_ID``,
``TASK_DIR`` and ``-payload -config -id -d``), so worker programs written for
IronWorker run unchanged. IronWorker addresses codes by id; Mayfly's services
address them by name, so the id is looked up first (``CodeService.by_id``).
"""

from __future__ import annotations

import io
import json
from _codecs import escape_decode  # the C decoder of Python's bytes-literal escapes
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from typing import Annotated, Any, BinaryIO

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException

from mayfly.api.deps import MayflyDep, get_mayfly
from mayfly.api.ironworker.auth import ProjectId
from mayfly.api.ironworker.body import Fields
from mayfly.api.ironworker.errors import IronRoute, MissingField, body_cap
from mayfly.api.ironworker.mapping import code_json, command_for, page_window, revision_json
from mayfly.api.ironworker.runtimes import RUNTIME_HELP, RuntimeChoice, choice_of, choose_runtime
from mayfly.api.ironworker.stats import task_stats, window
from mayfly.api.v1.routing import UPLOAD_OVERHEAD
from mayfly.core.app import Mayfly
from mayfly.core.codes import UNLIMITED, CodeOptions, human_size
from mayfly.core.config import Limits
from mayfly.core.errors import (
    CodeNotFound,
    InvalidArchive,
    InvalidInput,
    MayflyError,
    RuntimeNotFound,
    UploadTooLarge,
)
from mayfly.core.records import Code, Revision

router = APIRouter(route_class=IronRoute, tags=["ironworker"])


#: IronWorker's Python client uploads ``str(zip_bytes)`` (a ``b'PK\x03...'`` literal, up to 4 bytes per byte).
_REPR_EXPANSION = 4


# ------------------------------------------------------------------ lookups


def code_by_id(mf: Mayfly, project_id: str, code_id: str) -> tuple[Code, Revision]:
    """The code with this id in the project, and its latest revision; 404 "Code not found" otherwise."""
    try:
        return mf.codes.by_id(project_id, code_id)
    except CodeNotFound:
        raise CodeNotFound("Code not found") from None


# ------------------------------------------------------------------ upload


@dataclass(frozen=True)
class Upload:
    """The parts of a code upload: ``data`` (JSON) and the optional zip."""

    data: Fields
    file: BinaryIO | None


#: The ``User-Agent`` of IronWorker's Python client, whose uploads are up to :data:`_REPR_EXPANSION` times the zip.
PYTHON_CLIENT_AGENT = "iron_worker_python"


def upload_cap(request: Request) -> tuple[int, MayflyError]:
    """Largest request body of a code upload: the zip cap plus room for ``data`` and the multipart framing.

    The same as the native API's, except for IronWorker's Python client (told by
    its ``User-Agent``), which sends the zip as a Python bytes literal: its
    bodies may be :data:`_REPR_EXPANSION` times larger. The zip itself is
    capped again once decoded (:func:`zip_stream`).
    """
    limits = get_mayfly(request).limits
    zip_cap = limits.max_upload_bytes
    if request.headers.get("user-agent", "").startswith(PYTHON_CLIENT_AGENT):
        zip_cap *= _REPR_EXPANSION
    error = UploadTooLarge(f"code package is larger than the {human_size(limits.max_upload_bytes)} upload limit")
    return zip_cap + UPLOAD_OVERHEAD, error


async def upload_form(request: Request) -> AsyncIterator[Upload]:
    """Parse the multipart upload (capped by the route); the parts stay open until the response is done."""
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise MissingField("a code upload is multipart/form-data with a 'data' part (JSON) and a 'file' part (zip)")
    try:
        form = await request.form(max_files=1, max_fields=10)
    except MultiPartException as exc:
        raise InvalidInput(f"invalid multipart upload: {exc.message}") from None
    try:
        part = form.get("data")
        if part is None:
            raise MissingField("data is required: a JSON object with at least 'name'")
        text = (await part.read()).decode("utf-8", "replace") if isinstance(part, UploadFile) else part
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InvalidInput(f"data is not valid JSON: {exc}") from None
        file = form.get("file")
        if isinstance(file, str):
            raise InvalidInput("file must be a file part (with a filename) holding the zip")
        yield Upload(Fields(data, "data"), file.file if file is not None else None)
    finally:
        await form.close()


def zip_stream(file: BinaryIO, limits: Limits) -> BinaryIO:
    """The zip of a file part, undoing the Python client's ``str(bytes)`` encoding when it was used.

    ``iron_worker.IronWorker.postCode`` builds its multipart body as text and
    writes the zip as ``str(file_contents)``, which on Python 3 is the literal
    ``b'PK\\x03\\x04...'``. A real zip starts with ``PK``, never with ``b'``, so
    the two cannot be confused.
    """
    file.seek(0)
    head = file.read(2)
    file.seek(0)
    if head not in (b"b'", b'b"'):
        return file
    cap = limits.max_upload_bytes * _REPR_EXPANSION + 3
    text = file.read(cap + 1)
    if len(text) > cap:
        raise UploadTooLarge(f"code package is larger than the {human_size(limits.max_upload_bytes)} upload limit")
    quote = text[1:2]
    if len(text) < 3 or text[-1:] != quote:
        raise InvalidArchive("invalid code package: the file part is neither a zip nor a Python bytes literal")
    try:
        data, _ = escape_decode(text[2:-1])
    except ValueError as exc:
        raise InvalidArchive(f"invalid code package: undecodable Python bytes literal ({exc})") from None
    return io.BytesIO(data)


def code_options(d: Fields) -> CodeOptions:
    """IronWorker's per-code settings as Mayfly code options (unset fields keep the latest revision's)."""
    env = d.object_or_none("env_vars")
    if env is not None and not all(isinstance(v, str) for v in env.values()):
        raise InvalidInput("env_vars values must be strings (IronWorker: base64-encode anything else)")
    config: Any = d.raw("config")
    if config is not None and not isinstance(config, str):
        config = json.dumps(config)
    max_concurrency = d.int_or_none("max_concurrency")
    if max_concurrency is not None and max_concurrency < 0:
        max_concurrency = None  # ironcli's "not given" (-1): keep the current limit, do not wipe it
    elif max_concurrency == 0:
        max_concurrency = UNLIMITED
    return CodeOptions(
        env={str(k): str(v) for k, v in env.items()} if env is not None else None,
        config=config,
        max_concurrency=max_concurrency,
        retries=d.int_or_none("retries"),
        retries_delay=d.int_or_none("retries_delay"),
        timeout=d.int_or_none("timeout"),
        default_priority=d.int_or_none("default_priority"),
        ironworker=True,
    )


def _check_runtime(mf: Mayfly, choice: RuntimeChoice) -> None:
    try:
        mf.resolve_runtime(choice.runtime)
    except RuntimeNotFound:
        raise InvalidInput(f"runtime {choice.runtime!r} is not available; use {RUNTIME_HELP}") from None


def _choice(mf: Mayfly, d: Fields, image: str | None, latest: Revision | None) -> RuntimeChoice:
    """The runtime of a zip upload; a re-upload that names none keeps the code's runtime."""
    runtime, stack = d.str_or_none("runtime"), d.str_or_none("stack")
    if runtime is None and stack is None and image is None and latest is not None and latest.runtime:
        choice = choice_of(latest.runtime)
    else:
        choice = choose_runtime(runtime, stack, image)
    _check_runtime(mf, choice)
    return choice


def _latest(mf: Mayfly, project_id: str, name: str) -> Revision | None:
    try:
        return mf.codes.get(project_id, name)[1]
    except CodeNotFound:
        return None


@router.post("/codes")
@body_cap(upload_cap)
def upload_code(pid: ProjectId, upload: Annotated[Upload, Depends(upload_form)], mf: MayflyDep) -> dict[str, Any]:
    """Upload a code package (a new revision): a zip on a runtime, or a Docker image; or update its settings."""
    d = upload.data
    name = d.required_str("name")
    image = d.str_or_none("image")
    options = code_options(d)
    latest = _latest(mf, pid, name)
    if upload.file is None and image is not None:
        code, rev = mf.codes.register(pid, name, image, replace(options, command=d.str_or_none("command")))
    elif upload.file is None:
        # IronWorker let a code's settings change without a new zip: the latest zip gets a new revision.
        if latest is None:
            raise MissingField("Code package zip file required if no image specified")
        if latest.kind == "image":
            command = d.str_or_none("command")
            code, rev = mf.codes.register(pid, name, latest.image, replace(options, command=command))
        else:
            choice = _choice(mf, d, None, latest)
            command = command_for(choice, d.str_or_none("command"), d.str_or_none("file_name"))
            _, stream = mf.codes.download(pid, name, latest.rev)
            with stream:
                code, rev = mf.codes.push(
                    pid, name, stream, runtime=choice.runtime, options=replace(options, command=command)
                )
    else:
        choice = _choice(mf, d, image, latest)
        command = command_for(choice, d.str_or_none("command"), d.str_or_none("file_name"))
        stream = zip_stream(upload.file, mf.limits)
        code, rev = mf.codes.push(pid, name, stream, runtime=choice.runtime, options=replace(options, command=command))
    return {"msg": "Upload successful.", **code_json(code, rev)}


# ------------------------------------------------------------------ read


@router.get("/codes")
def list_codes(pid: ProjectId, mf: MayflyDep, page: int | None = None, per_page: int | None = None) -> dict[str, Any]:
    """The project's code packages by name, one page."""
    offset, limit = page_window(page, per_page)
    codes = mf.codes.list(pid, offset=offset, limit=limit)
    return {"codes": [code_json(code, rev) for code, rev in codes]}


@router.get("/codes/{code_id}")
def get_code(pid: ProjectId, code_id: str, mf: MayflyDep) -> dict[str, Any]:
    """One code package with its latest revision's settings."""
    return code_json(*code_by_id(mf, pid, code_id))


@router.get("/codes/{code_id}/revisions")
def list_revisions(
    pid: ProjectId, code_id: str, mf: MayflyDep, page: int | None = None, per_page: int | None = None
) -> dict[str, Any]:
    """The code's revisions, oldest first as IronWorker listed them, one page."""
    offset, limit = page_window(page, per_page)
    code, _ = code_by_id(mf, pid, code_id)
    revisions = sorted(mf.codes.revisions(pid, code.name), key=lambda r: r.rev)[offset : offset + limit]
    return {"revisions": [revision_json(code, rev) for rev in revisions]}


def _chunks(stream: BinaryIO, size: int = 1 << 20) -> Iterator[bytes]:
    try:
        while block := stream.read(size):
            yield block
    finally:
        stream.close()


def download_name(name: str, rev: int) -> str:
    """``name_rev.zip`` with only characters that need no quoting in a header."""
    safe = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in name)
    return f"{safe}_{rev}.zip"


@router.get("/codes/{code_id}/download")
def download_code(pid: ProjectId, code_id: str, mf: MayflyDep, revision: int | None = None) -> StreamingResponse:
    """The zip of a revision (the latest by default), as ``name_rev.zip``."""
    code, _ = code_by_id(mf, pid, code_id)
    rev, stream = mf.codes.download(pid, code.name, revision)
    headers = {
        "Content-Disposition": f"attachment; filename={download_name(code.name, rev.rev)}",
        "Content-Length": str(rev.size),
    }
    return StreamingResponse(_chunks(stream), media_type="application/zip", headers=headers)


# ------------------------------------------------------------------ control


@router.post("/codes/{code_id}/pause_task_queue")
def pause_code(pid: ProjectId, code_id: str, mf: MayflyDep) -> dict[str, Any]:
    """Keep the code's queued tasks queued until resumed."""
    code, _ = code_by_id(mf, pid, code_id)
    mf.codes.set_paused(pid, code.name, True)
    return {"msg": "Paused"}


@router.post("/codes/{code_id}/resume_task_queue")
def resume_code(pid: ProjectId, code_id: str, mf: MayflyDep) -> dict[str, Any]:
    """Let the code's queued tasks run again (each keeps the revision it was queued with)."""
    code, _ = code_by_id(mf, pid, code_id)
    mf.codes.set_paused(pid, code.name, False)
    return {"msg": "Resumed"}


@router.post("/codes/{code_id}/cancel_all")
def cancel_all(pid: ProjectId, code_id: str, mf: MayflyDep) -> dict[str, Any]:
    """Cancel every queued and running task of the code; finished tasks stay."""
    code, _ = code_by_id(mf, pid, code_id)
    cancelled, stopping = mf.tasks.cancel_all(pid, code.name)
    return {"msg": "Cancelled all", "cancelled_count": cancelled + stopping}


@router.get("/codes/{code_id}/stats")
def code_stats(
    pid: ProjectId, code_id: str, mf: MayflyDep, start_date: str | None = None, end_date: str | None = None
) -> dict[str, Any]:
    """Task counts of the code by status, over a window (``start_date``, ``end_date``; default the last 24 h)."""
    code, _ = code_by_id(mf, pid, code_id)
    start, end = window(start_date, end_date)
    return task_stats(mf, pid, start, end, code_id=code.id)


@router.delete("/codes/{code_id}")
def delete_code(pid: ProjectId, code_id: str, mf: MayflyDep) -> dict[str, Any]:
    """Delete a code package: its queued tasks are cancelled, its schedules end, finished tasks stay."""
    code, _ = code_by_id(mf, pid, code_id)
    mf.codes.delete(pid, code.name)
    return {"msg": "Deleted"}
