"""The CLI's remote mode: the services commands use, over a Mayfly server's ``/v1`` API.

With ``MAYFLY_URL`` and ``MAYFLY_TOKEN`` set, :func:`mayfly.cli.context.open_app`
returns a :class:`RemoteMayfly` instead of a local :class:`~mayfly.core.app.Mayfly`.
It offers the same attributes and method signatures the commands call
(``codes.push``, ``tasks.queue_many``, ``schedules.create``, ...), returns the same
record types (rebuilt by :mod:`mayfly.cli.rebuild`) and raises the same
:class:`~mayfly.core.errors.MayflyError` subclasses, found by the error ``code``
the API answers with. So every command prints the same lines and exits with the
same codes whether it runs against a home or a server.

The project is the token's: ``project_id()`` ignores no ``--project`` silently, it
refuses one that names another project. The token is sent in the
``Authorization`` header only and never printed.
"""

from __future__ import annotations

import builtins
import contextlib
import datetime as dt
import io
import json
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any, BinaryIO
from urllib.parse import quote

import httpx

from mayfly.api.errors import RateLimited
from mayfly.cli import rebuild
from mayfly.cli.terminal import Writable
from mayfly.core import archive
from mayfly.core.codes import CodeOptions
from mayfly.core.costs import Attempt
from mayfly.core.errors import (
    Conflict,
    InvalidArchive,
    InvalidInput,
    MayflyError,
    NotFound,
    Unavailable,
    Unsupported,
)
from mayfly.core.pricing import Price
from mayfly.core.records import Code, Delivery, EventRecord, Revision, Target, Task
from mayfly.core.schedules import Schedule, ScheduleNotFound, ScheduleSpec
from mayfly.core.tasks import TaskFilter, TaskOptions
from mayfly.core.tokens import Unauthorized

#: How often a rate-limited request is tried again, and the longest wait honoured.
RATE_RETRIES = 3
MAX_RETRY_WAIT = 10.0

_BY_STATUS: dict[int, type[MayflyError]] = {
    400: InvalidInput,
    401: Unauthorized,
    404: NotFound,
    409: Conflict,
    413: InvalidInput,
    429: RateLimited,
    501: Unsupported,
}


def error_classes() -> dict[str, type[MayflyError]]:
    """Every loaded MayflyError subclass by its ``code`` (a parent wins over a child that kept its code)."""
    found: dict[str, type[MayflyError]] = {}
    pending: list[type[MayflyError]] = [MayflyError]
    while pending:
        cls = pending.pop(0)
        found.setdefault(cls.code, cls)
        pending.extend(cls.__subclasses__())
    return found


# The classes named here are imported so that their codes are in the map.
_KNOWN = (ScheduleNotFound, Unauthorized, RateLimited)


def error_from(response: httpx.Response) -> MayflyError:
    """The MayflyError an API error response stands for."""
    try:
        body = response.json()
        code, message = str(body["code"]), str(body["message"])
    except (ValueError, KeyError, TypeError):
        return Unavailable(f"the server answered {response.status_code} {response.reason_phrase} (not a Mayfly API?)")
    cls = error_classes().get(code) or _BY_STATUS.get(response.status_code) or Unavailable
    try:
        return cls(message)
    except TypeError:  # a subclass with extra required arguments
        return (_BY_STATUS.get(response.status_code) or Unavailable)(message)


class Http:
    """One connection pool to the server; JSON in, JSON out, API errors raised as MayflyErrors."""

    def __init__(self, url: str, token: str, *, transport: httpx.BaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self.client = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}", "User-Agent": "mayfly-cli"},
            timeout=httpx.Timeout(60.0, connect=10.0, write=600.0),
            transport=transport,
        )

    def send(
        self, method: str, path: str, *, stream: bool = False, retry: bool = True, **kwargs: Any
    ) -> httpx.Response:
        """Send a request; wait and retry when rate-limited; raise the API's error as a MayflyError."""
        for attempt in range(RATE_RETRIES + 1):
            try:
                request = self.client.build_request(method, path, **kwargs)
                response = self.client.send(request, stream=stream)
            except httpx.TransportError as exc:
                raise Unavailable(f"cannot reach the Mayfly server at {self.url}: {exc}") from None
            if response.is_success:
                return response
            if stream:
                response.read()
                response.close()
            wait = _retry_after(response)
            if response.status_code == 429 and retry and attempt < RATE_RETRIES and wait <= MAX_RETRY_WAIT:
                time.sleep(wait)
                continue
            raise error_from(response)
        raise AssertionError("unreachable")  # the loop returns or raises

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """The decoded JSON body of a successful request."""
        return self.send(method, path, **kwargs).json()

    def close(self) -> None:
        self.client.close()


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(0.0, float(response.headers.get("retry-after", "1")))
    except ValueError:
        return 1.0


def _code_path(name: str, suffix: str = "") -> str:
    return f"/v1/codes/{quote(name, safe='/')}{suffix}"


def _task_path(task_id: str, suffix: str = "") -> str:
    return f"/v1/tasks/{quote(task_id, safe='')}{suffix}"


def _set(values: Mapping[str, Any]) -> dict[str, Any]:
    """The options a command set (``None`` means "the server's default"); secret values as the API's text."""
    out = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in values.items() if v is not None}
    if "secrets" in out:
        out["secrets"] = {name: _secret_text(name, value) for name, value in out["secrets"].items()}
    return out


def _secret_text(name: str, value: bytes) -> str:
    try:
        return value.decode()
    except UnicodeDecodeError:
        raise InvalidInput(
            f"secret {name!r} is not UTF-8 text: the API carries text (push it on the server's host)"
        ) from None


# ---------------------------------------------------------------- services


class RemoteCodes:
    """``CodeService`` over the API."""

    def __init__(self, http: Http) -> None:
        self.http = http

    def push(
        self, project_id: str, name: str, source: Path | BinaryIO, *, runtime: str, options: CodeOptions
    ) -> tuple[Code, Revision]:
        """Zip a directory here if need be, then upload (the server validates the zip)."""
        data = json.dumps({"name": name, "runtime": runtime, **_set(asdict(options))})
        with _zip_of(source) as zf:
            files = {"file": ("code.zip", zf, "application/zip")}
            doc = self.http.json("POST", "/v1/codes", files=files, data={"data": data}, retry=False)
        return _code_and_latest(doc)

    def register(self, project_id: str, name: str, image: str, options: CodeOptions) -> tuple[Code, Revision]:
        doc = self.http.json("POST", "/v1/codes", json={"name": name, "image": image, **_set(asdict(options))})
        return _code_and_latest(doc)

    def get(self, project_id: str, name: str) -> tuple[Code, Revision]:
        return _code_and_latest(self.http.json("GET", _code_path(name)))

    def list(self, project_id: str) -> builtins.list[tuple[Code, Revision]]:
        return [_code_and_latest(doc) for doc in self.http.json("GET", "/v1/codes")["codes"]]

    def revisions(self, project_id: str, name: str) -> builtins.list[Revision]:
        code, _ = self.get(project_id, name)
        docs = self.http.json("GET", _code_path(name, "/revisions"))["revisions"]
        return [rebuild.revision(doc, code.id) for doc in docs]

    def download(self, project_id: str, name: str, rev: int | None = None) -> tuple[Revision, BinaryIO]:
        """The revision and its zip, streamed from the server as it is read."""
        params = {"revision": rev} if rev is not None else {}
        response = self.http.send("GET", _code_path(name, "/download"), params=params, stream=True)
        try:
            number = int(response.headers["x-mayfly-revision"])
            found = next(r for r in self.revisions(project_id, name) if r.rev == number)
        except BaseException:
            response.close()
            raise
        return found, io.BufferedReader(_ResponseReader(response))

    def set_paused(self, project_id: str, name: str, paused: bool) -> Code:
        doc = self.http.json("POST", _code_path(name, "/pause" if paused else "/resume"))
        return rebuild.code(doc)[0]

    def delete(self, project_id: str, name: str) -> int:
        doc = self.http.json("DELETE", _code_path(name))
        return int(doc["cancelled_tasks"])


def _code_and_latest(doc: Mapping[str, Any]) -> tuple[Code, Revision]:
    code, latest = rebuild.code(doc)
    if latest is None:
        raise Unavailable(f"the server sent code {code.name!r} without its latest revision")
    return code, latest


@contextlib.contextmanager
def _zip_of(source: Path | BinaryIO) -> Iterator[IO[bytes]]:
    """A zip file to upload: a stream as is, a zip file opened, a directory zipped (as locally)."""
    if not isinstance(source, Path):
        yield source
        return
    if source.is_dir():
        with tempfile.TemporaryFile() as tmp:
            try:
                archive.zip_directory(source, tmp)
            except archive.ArchiveError as exc:
                raise InvalidArchive(f"cannot package {source}: {exc}") from None
            tmp.seek(0)
            yield tmp
        return
    if not source.is_file():
        raise InvalidInput(f"{source}: no such file or directory")
    with source.open("rb") as fh:
        yield fh


class _ResponseReader(io.RawIOBase):
    """A streaming HTTP response body as a readable raw file."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._chunks = response.iter_bytes()
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = chunk
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def close(self) -> None:
        self.response.close()
        super().close()


class RemoteTasks:
    """``TaskService`` over the API, plus :meth:`follow` (the streaming log)."""

    def __init__(self, http: Http) -> None:
        self.http = http

    def queue(self, project_id: str, code_name: str, payload: str, opts: TaskOptions) -> Task:
        return self.queue_many(project_id, code_name, [payload], opts)[0]

    def queue_many(
        self, project_id: str, code_name: str, payloads: builtins.list[str], opts: TaskOptions
    ) -> builtins.list[Task]:
        options = _set(asdict(opts))
        if len(payloads) == 1:
            doc = self.http.json("POST", "/v1/tasks", json={"code_name": code_name, "payload": payloads[0], **options})
            return [rebuild.task(doc)]
        body = {"code_name": code_name, "payloads": payloads, **options}
        return [rebuild.task(t) for t in self.http.json("POST", "/v1/tasks/bulk", json=body)["tasks"]]

    def get(self, project_id: str, task_id: str) -> Task:
        return rebuild.task(self.http.json("GET", _task_path(task_id)))

    def list(self, project_id: str, flt: TaskFilter) -> builtins.list[Task]:
        params: dict[str, Any] = {"status": builtins.list(flt.status), "limit": flt.limit}
        params.update(_set({"code": flt.code_name, "label": flt.label, "before": flt.before}))
        return [rebuild.task(t) for t in self.http.json("GET", "/v1/tasks", params=params)["tasks"]]

    def events(self, project_id: str, task_id: str) -> builtins.list[EventRecord]:
        docs = self.http.json("GET", _task_path(task_id, "/events"))["events"]
        return [rebuild.event(doc, task_id) for doc in docs]

    def log(self, project_id: str, task_id: str, attempt: int | None = None) -> Iterator[bytes]:
        """The stored log; the request is made (and a 404 raised) before the first chunk is asked for."""
        params = {"attempt": attempt} if attempt is not None else {}
        return _body(self.http.send("GET", _task_path(task_id, "/log"), params=params, stream=True))

    def follow(self, task_id: str, out: Writable) -> Task:
        """Write the log to ``out`` as the server streams it; return the task once it has ended."""
        response = self.http.send(
            "GET", _task_path(task_id, "/log"), params={"follow": "true"}, stream=True, timeout=httpx.Timeout(None)
        )
        for chunk in _body(response):
            out.write(chunk)
            out.flush()
        task = self.get("", task_id)
        if not task.task_status.terminal:
            raise Unavailable(f"the log stream ended before task {task_id} did (server stopped?)")
        return task

    def cancel(self, project_id: str, task_id: str) -> Task:
        return rebuild.task(self.http.json("POST", _task_path(task_id, "/cancel")))

    def cancel_all(self, project_id: str, code_name: str) -> tuple[int, int]:
        doc = self.http.json("POST", _code_path(code_name, "/cancel_all"))
        return int(doc["cancelled"]), int(doc["stopping"])

    def retry(self, project_id: str, task_id: str, delay: int = 0) -> Task:
        return rebuild.task(self.http.json("POST", _task_path(task_id, "/retry"), json={"delay": delay}))

    def count_by_target(self) -> dict[str, dict[str, int]]:
        """Unfinished tasks per target and status, as the server counts them (statuses with none left out)."""
        out: dict[str, dict[str, int]] = {}
        for doc in self.http.json("GET", "/v1/targets")["targets"]:
            counts = {s: int(doc.get(s, 0)) for s in ("queued", "preparing", "running") if doc.get(s)}
            if counts:
                out[str(doc["name"])] = counts
        return out


def _body(response: httpx.Response) -> Iterator[bytes]:
    try:
        yield from response.iter_bytes()
    finally:
        response.close()


class RemoteSchedules:
    """``ScheduleService`` over the API."""

    def __init__(self, http: Http) -> None:
        self.http = http

    def create(self, project_id: str, code_name: str, spec: ScheduleSpec) -> Schedule:
        body = {"code_name": code_name, **_set(asdict(spec))}
        # IronWorker's any-text payload flag (/2 only): /v1 takes JSON, and no CLI command sets it.
        body.pop("text_payload", None)
        return rebuild.schedule(self.http.json("POST", "/v1/schedules", json=body))

    def list(self, project_id: str, status: str | None = None) -> builtins.list[Schedule]:
        params = {"status": status} if status is not None else {}
        return [rebuild.schedule(s) for s in self.http.json("GET", "/v1/schedules", params=params)["schedules"]]

    def details(self, project_id: str, schedule_id: str) -> dict[str, Any]:
        doc: dict[str, Any] = self.http.json("GET", f"/v1/schedules/{quote(schedule_id, safe='')}")
        return doc

    def _action(self, schedule_id: str, verb: str) -> Schedule:
        return rebuild.schedule(self.http.json("POST", f"/v1/schedules/{quote(schedule_id, safe='')}/{verb}"))

    def pause(self, project_id: str, schedule_id: str) -> Schedule:
        return self._action(schedule_id, "pause")

    def resume(self, project_id: str, schedule_id: str) -> Schedule:
        return self._action(schedule_id, "resume")

    def cancel(self, project_id: str, schedule_id: str) -> Schedule:
        return self._action(schedule_id, "cancel")


class RemoteTargets:
    """The read-only part of ``TargetService`` (targets are managed on the server's home)."""

    def __init__(self, http: Http) -> None:
        self.http = http

    def list(self) -> builtins.list[Target]:
        return [rebuild.target(doc) for doc in self.http.json("GET", "/v1/targets")["targets"]]

    def get(self, name: str) -> Target:
        return rebuild.target(self.http.json("GET", f"/v1/targets/{quote(name, safe='')}"))

    def breakers(self) -> dict[str, dict[str, Any]]:
        """Every target's circuit breaker, as ``/v1/targets`` shows it."""
        docs = self.http.json("GET", "/v1/targets")["targets"]
        return {doc["name"]: doc.get("breaker") or {"state": "closed", "failures": 0} for doc in docs}


class RemoteWebhooks:
    """A task's completion webhook deliveries."""

    def __init__(self, http: Http) -> None:
        self.http = http

    def deliveries(self, project_id: str, task_id: str) -> builtins.list[Delivery]:
        doc = self.http.json("GET", _task_path(task_id, "/deliveries"))
        return [rebuild.delivery(d, task_id, str(doc.get("url") or "")) for d in doc["deliveries"]]


class RemoteCosts:
    """``mf.costs`` over ``/v1``: a task's attempts, task costs, the project's cost summary, a target's price."""

    def __init__(self, http: Http) -> None:
        self.http = http

    def attempts(self, task_id: str) -> builtins.list[Attempt]:
        doc = self.http.json("GET", _task_path(task_id))
        return [Attempt(task_id=task_id, **a) for a in doc.get("attempts") or []]

    def cost_of(self, task_ids: builtins.list[str], project_id: str | None = None) -> dict[str, float]:
        if not task_ids:
            return {}
        doc = self.http.json("GET", "/v1/cost/tasks", params={"id": task_ids})
        return {k: float(v) for k, v in doc["costs"].items()}

    def summary(self, project_id: str, since: float) -> builtins.list[dict[str, Any]]:
        doc = self.http.json("GET", "/v1/cost", params={"since": dt.datetime.fromtimestamp(since, dt.UTC).isoformat()})
        rows: builtins.list[dict[str, Any]] = doc["rows"]
        return rows

    def get(self, target: str) -> Price:
        doc = dict(self.http.json("GET", f"/v1/targets/{quote(target, safe='')}/price"))
        doc.pop("target", None)
        doc.pop("vcpu_hour", None)
        doc.pop("gb_hour", None)
        return Price(**doc)


class RemoteMayfly:
    """What commands use of :class:`~mayfly.core.app.Mayfly`, served by a remote server."""

    def __init__(self, url: str, token: str, *, transport: httpx.BaseTransport | None = None) -> None:
        self.http = Http(url, token, transport=transport)
        self.codes = RemoteCodes(self.http)
        self.tasks = RemoteTasks(self.http)
        self.schedules = RemoteSchedules(self.http)
        self.targets = RemoteTargets(self.http)
        self.webhooks = RemoteWebhooks(self.http)
        self.costs = RemoteCosts(self.http)
        self._project: dict[str, Any] | None = None

    @property
    def url(self) -> str:
        return self.http.url

    def project(self) -> dict[str, Any]:
        """The token's project as the server describes it (fetched once)."""
        if self._project is None:
            self._project = self.http.json("GET", "/v1/project")
        return self._project

    def project_id(self, name: str | None = None) -> str:
        """The token's project id; a ``--project`` naming another project is an error, not ignored."""
        project = self.project()
        if name is not None and name != project["name"]:
            raise InvalidInput(
                f"the token is bound to project {project['name']!r}; --project {name!r} needs a token of that project"
            )
        return str(project["id"])

    def close(self) -> None:
        self.http.close()
