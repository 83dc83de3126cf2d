"""Codes: named, versioned code packages (a zip on a runtime) or ready images, and their defaults.

Every push or register is a new revision. Options left unset inherit from the
latest revision, so re-pushing code never silently drops its max concurrency or
retries (an IronWorker CLI complaint). Zips are validated entry by entry before
anything is stored, then stored content-addressed by sha256.
"""

from __future__ import annotations

import builtins
import io
import json
import re
import shlex
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import Connection, bindparam, insert, select, update

from mayfly.core import archive, options, placement
from mayfly.core.admission import Requirements
from mayfly.core.blobs import BlobStore, code_key, sha256_file
from mayfly.core.config import LOCAL_TARGET, Limits
from mayfly.core.errors import (
    CodeNotFound,
    InvalidArchive,
    InvalidInput,
    RevisionNotFound,
    Unsupported,
    UploadTooLarge,
)
from mayfly.core.ids import new_id
from mayfly.core.lifecycle import cancel_queued_of_code
from mayfly.core.records import Code, Revision
from mayfly.core.secrets import SecretBox, dump_sealed, load_sealed, validate_secrets
from mayfly.core.store import Store, now
from mayfly.core.store import schema as s
from mayfly.core.webhook_urls import validate_url

#: Codes joined with their latest revision (codes' columns first).
_WITH_LATEST = select(s.codes, s.code_revisions).join(
    s.code_revisions,
    (s.code_revisions.c.code_id == s.codes.c.id) & (s.code_revisions.c.rev == s.codes.c.latest_rev),
)
#: One live code by name, with its latest revision. Built once: constructing it cost more than running it.
_LATEST = _WITH_LATEST.where(
    s.codes.c.project_id == bindparam("project_id"), s.codes.c.name == bindparam("name"), s.codes.c.deleted_at.is_(None)
)
_CODE_COLUMNS = [c.name for c in s.codes.columns]
_REVISION_COLUMNS = [c.name for c in s.code_revisions.columns]


def _code_with_revision(row: Sequence[Any]) -> tuple[Code, Revision]:
    """A row of :data:`_WITH_LATEST` as records."""
    n = len(_CODE_COLUMNS)
    code = Code.from_row(dict(zip(_CODE_COLUMNS, row[:n], strict=True)))
    return code, Revision.from_row(dict(zip(_REVISION_COLUMNS, row[n:], strict=True)))


NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,254}\Z")
ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,255}\Z")
#: File extensions that mark a command argument as the package's entry point.
_ENTRY_SUFFIXES = (".py", ".sh", ".js", ".rb", ".php", ".pl", ".jar")


@dataclass(frozen=True)
class RuntimeInfo:
    """What the code service needs to know about a runtime."""

    name: str
    #: The image tag tasks of this runtime run.
    image: str
    default_command: str | None = None


RuntimeResolver = Callable[[str], RuntimeInfo]
#: Admission: looks a target up and refuses what its provider cannot run (``TargetService.admit``).
Admit = Callable[[str, Requirements], object]


@dataclass(frozen=True)
class CodeOptions:
    """Per-code defaults. ``None`` means "keep the latest revision's value" (or the built-in default)."""

    command: str | None = None
    env: Mapping[str, str] | None = None
    config: str | None = None
    max_concurrency: int | None = None
    retries: int | None = None
    retries_delay: int | None = None
    timeout: int | None = None
    default_priority: int | None = None
    target: str | None = None
    network: str | None = None
    cpu: float | None = None
    memory_mb: int | None = None
    ironworker: bool | None = None
    #: Completion webhook URL of its tasks; ``""`` removes the previous revision's.
    webhook: str | None = None
    #: Secret values to set (name -> value); the previous revision's other secrets are kept.
    secrets: Mapping[str, bytes] | None = field(default=None, repr=False)
    #: Drop every secret of the previous revision first (``--no-secrets``).
    replace_secrets: bool | None = None


#: Built-in defaults for a code's first revision.
DEFAULTS = CodeOptions(
    command=None,
    env={},
    config="",
    max_concurrency=None,
    retries=0,
    retries_delay=0,
    timeout=None,
    default_priority=0,
    target=LOCAL_TARGET,
    network="bridge",
    cpu=1.0,
    memory_mb=512,
    ironworker=False,
    webhook="",
)

#: ``max_concurrency = 0`` on the command line means "no limit".
UNLIMITED = 0


def validate_name(name: str) -> str:
    """Code names: letters, digits and ``._/-``; they are also used in image-like names."""
    if not NAME.match(name) or ".." in name:
        raise InvalidInput(f"invalid code name {name!r}: use letters, digits, '.', '_', '-' and '/'")
    return name


#: Longest environment variable name.
MAX_ENV_NAME = 255
#: Most bytes (UTF-8) the names and values of one environment may take, like config (IronWorker: 64 KB).
MAX_ENV_BYTES = 64 * 1024


def validate_env(env: Mapping[str, str]) -> dict[str, str]:
    """Environment variable names must be valid shell names of at most 255 characters; MAYFLY_* is reserved.

    Names and values together take at most :data:`MAX_ENV_BYTES` (64 KB, the cap of config and payloads).
    """
    out: dict[str, str] = {}
    total = 0
    for key, value in env.items():
        if not isinstance(key, str) or len(key) > MAX_ENV_NAME:
            raise InvalidInput(f"an environment variable name is longer than {MAX_ENV_NAME} characters")
        if not ENV_KEY.match(key):
            raise InvalidInput(f"invalid environment variable name {key!r}")
        if key.startswith("MAYFLY_"):
            raise InvalidInput(f"environment variable {key!r} is reserved (MAYFLY_* is set by Mayfly)")
        if not isinstance(value, str) or "\x00" in value:
            raise InvalidInput(f"environment variable {key!r} must be a string without NUL bytes")
        total += len(key.encode()) + len(value.encode())
        if total > MAX_ENV_BYTES:
            raise InvalidInput(f"environment variables are larger than {MAX_ENV_BYTES} bytes (names and values)")
        out[key] = value
    return out


def parse_env_pairs(pairs: list[str]) -> dict[str, str]:
    """``["K=V", ...]`` from the command line into a dict."""
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise InvalidInput(f"invalid --env {pair!r}: expected KEY=VALUE")
        env[key] = value
    return validate_env(env)


def _validate_options(opts: CodeOptions, limits: Limits) -> None:
    if opts.webhook:  # first: its own words for a URL too long
        validate_url(opts.webhook)
    for opt in options.of(options.CODE):
        value = getattr(opts, opt.name)
        if value is not None:
            options.check(opt.name, value, limits)
    if opts.env is not None:
        validate_env(opts.env)
    if opts.secrets:
        validate_secrets(opts.secrets)
    if opts.config is not None and len(opts.config.encode()) > limits.max_payload_bytes:
        raise InvalidInput(f"config is larger than {limits.max_payload_bytes} bytes")


def requirements(opts: CodeOptions, limits: Limits) -> Requirements:
    """What a code with these (merged) options asks of its target's provider."""
    return Requirements(
        network=opts.network or "bridge",
        cpu=opts.cpu or 1.0,
        memory_mb=opts.memory_mb or 512,
        timeout=opts.timeout or limits.default_timeout,
    )


def _merge(base: CodeOptions, new: CodeOptions) -> CodeOptions:
    """``new``'s set values over ``base``."""
    return replace(base, **{f.name: getattr(new, f.name) for f in fields(new) if getattr(new, f.name) is not None})


def _options_of(rev: Revision) -> CodeOptions:
    return CodeOptions(
        command=rev.command,
        env=rev.env_dict,
        config=rev.config,
        max_concurrency=rev.max_concurrency,
        retries=rev.retries,
        retries_delay=rev.retries_delay,
        timeout=rev.timeout,
        default_priority=rev.default_priority,
        target=",".join(rev.targets),
        network=rev.network,
        cpu=rev.cpu,
        memory_mb=rev.memory_mb,
        ironworker=rev.ironworker,
        webhook=rev.webhook or "",
    )


def check_entry_point(command: str, names: set[str]) -> None:
    """Reject a package that lacks the file its command runs (``python3 main.py`` without main.py)."""
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise InvalidInput(f"invalid command {command!r}: {exc}") from None
    for arg in argv[:3]:
        if arg.endswith(_ENTRY_SUFFIXES) and not arg.startswith(("/", "-", "$")):
            path = arg.removeprefix("./")
            if path not in names:
                raise InvalidArchive(f"package has no entry point {path!r} (the command runs it)")
            return


class CodeService:
    """Push, register, look up and download codes of a project."""

    def __init__(
        self,
        store: Store,
        blobs: BlobStore,
        limits: Limits,
        runtimes: RuntimeResolver,
        admit: Admit,
        secrets: SecretBox | None = None,
    ) -> None:
        self.store = store
        #: Seals secret values before they are stored.
        self.secrets = secrets
        self.blobs = blobs
        self.limits = limits
        self.runtimes = runtimes
        self.admit = admit

    # ------------------------------------------------------------ create revisions

    def push(
        self, project_id: str, name: str, source: Path | BinaryIO, *, runtime: str, options: CodeOptions
    ) -> tuple[Code, Revision]:
        """Validate a zip (or zip a directory), store it and create a revision."""
        validate_name(name)
        info = self.runtimes(runtime)
        with self._zip_of(source) as zf:
            zf.seek(0)
            try:
                entries = archive.validate_zip(zf)
            except archive.ArchiveError as exc:
                raise InvalidArchive(f"invalid code package: {exc}") from None
            zf.seek(0)
            sha, size = sha256_file(zf)
            with self.store.read() as conn:
                latest = self._latest_options(conn, project_id, name)
            merged = _merge(_merge(DEFAULTS, latest or CodeOptions()), options)
            command = merged.command or info.default_command
            if not command:
                raise InvalidInput(f"no command given and runtime {runtime!r} has no default command")
            merged = replace(merged, command=command)
            _validate_options(options, self.limits)
            where = self._place(merged)
            check_entry_point(command, {e.name for e in entries if not e.is_dir})
            key = code_key(sha)
            if not self.blobs.exists(key):
                zf.seek(0)
                self.blobs.put_file(key, zf)
        return self._add_revision(
            project_id,
            name,
            "zip",
            merged,
            sha256=sha,
            size=size,
            blob_key=key,
            runtime=runtime,
            image=info.image,
            where=where,
        )

    def register(self, project_id: str, name: str, image: str, options: CodeOptions) -> tuple[Code, Revision]:
        """Create a revision that runs a ready image (its own command unless ``options.command``)."""
        validate_name(name)
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,511}\Z", image):
            raise InvalidInput(f"invalid image reference {image!r}")
        _validate_options(options, self.limits)
        with self.store.read() as conn:
            latest = self._latest_options(conn, project_id, name)
        merged = _merge(_merge(DEFAULTS, latest or CodeOptions()), options)
        where = self._place(merged)
        return self._add_revision(
            project_id,
            name,
            "image",
            replace(merged, command=merged.command or ""),
            sha256=None,
            size=0,
            blob_key=None,
            runtime=None,
            image=image,
            where=where,
        )

    def _place(self, merged: CodeOptions) -> placement.Placement:
        """Admission of the code's targets (one, or an ordered list: fallback targets) for its options."""
        names = placement.parse(merged.target) or (LOCAL_TARGET,)
        return placement.place(names, self.admit, requirements(merged, self.limits))

    def _zip_of(self, source: Path | BinaryIO) -> _ZipSource:
        return _ZipSource(source, self.limits)

    def _latest_options(self, conn: Connection, project_id: str, name: str) -> CodeOptions | None:
        rev = self._latest(conn, project_id, name)
        return _options_of(rev) if rev else None

    def _latest(self, conn: Connection, project_id: str, name: str) -> Revision | None:
        row = (
            conn.execute(
                select(s.code_revisions)
                .join(s.codes, s.codes.c.id == s.code_revisions.c.code_id)
                .where(
                    s.codes.c.project_id == project_id,
                    s.codes.c.name == name,
                    s.code_revisions.c.rev == s.codes.c.latest_rev,
                )
            )
            .mappings()
            .first()
        )
        return Revision.from_row(row) if row else None

    def _add_revision(
        self,
        project_id: str,
        name: str,
        kind: str,
        opts: CodeOptions,
        *,
        sha256: str | None,
        size: int,
        blob_key: str | None,
        runtime: str | None,
        image: str,
        where: placement.Placement,
    ) -> tuple[Code, Revision]:
        ts = now()
        sealed_new = self._seal(opts.secrets)
        with self.store.write() as conn:
            row = (
                conn.execute(select(s.codes).where(s.codes.c.project_id == project_id, s.codes.c.name == name))
                .mappings()
                .first()
            )
            kept: dict[str, str] = {}
            if row is not None and not opts.replace_secrets:
                kept = load_sealed(
                    conn.execute(
                        select(s.code_revisions.c.secrets).where(
                            s.code_revisions.c.code_id == row["id"], s.code_revisions.c.rev == row["latest_rev"]
                        )
                    ).scalar()
                )
            if row is None:
                code_id, rev = new_id(), 1
                conn.execute(
                    insert(s.codes).values(
                        id=code_id,
                        project_id=project_id,
                        name=name,
                        latest_rev=1,
                        paused=False,
                        created_at=ts,
                        updated_at=ts,
                    )
                )
            else:
                code_id, rev = row["id"], row["latest_rev"] + 1
                conn.execute(update(s.codes).where(s.codes.c.id == code_id).values(latest_rev=rev, updated_at=ts))
            max_conc = opts.max_concurrency if opts.max_concurrency != UNLIMITED else None
            conn.execute(
                insert(s.code_revisions).values(
                    id=new_id(),
                    code_id=code_id,
                    rev=rev,
                    kind=kind,
                    sha256=sha256,
                    size=size,
                    blob_key=blob_key,
                    runtime=runtime,
                    image=image,
                    command=opts.command or "",
                    env=json.dumps(dict(opts.env or {})),
                    config=opts.config or "",
                    max_concurrency=max_conc,
                    retries=opts.retries or 0,
                    retries_delay=opts.retries_delay or 0,
                    timeout=opts.timeout or self.limits.default_timeout,
                    default_priority=opts.default_priority or 0,
                    target=where.first,
                    placement=where.dumps(),
                    network=opts.network or "bridge",
                    cpu=opts.cpu or 1.0,
                    memory_mb=opts.memory_mb or 512,
                    ironworker=bool(opts.ironworker),
                    webhook=opts.webhook or None,
                    secrets=dump_sealed({**kept, **sealed_new}),
                    created_at=ts,
                )
            )
            return self._get(conn, project_id, name), self._revision(conn, code_id, name, rev)

    def _seal(self, values: Mapping[str, bytes] | None) -> dict[str, str]:
        if not values:
            return {}
        if self.secrets is None:
            raise Unsupported("this Mayfly has no secret key configured")
        return self.secrets.seal(validate_secrets(values))

    # ------------------------------------------------------------ read

    def get(self, project_id: str, name: str) -> tuple[Code, Revision]:
        """The code and its latest revision (one query: every queued task asks)."""
        with self.store.read() as conn:
            row = conn.execute(_LATEST, {"project_id": project_id, "name": name}).first()
            if row is not None:
                return _code_with_revision(row)
            code = self._get(conn, project_id, name)  # raises the right "not found"
            return code, self._revision(conn, code.id, name, code.latest_rev)

    def _get(self, conn: Connection, project_id: str, name: str) -> Code:
        row = (
            conn.execute(
                select(s.codes).where(
                    s.codes.c.project_id == project_id, s.codes.c.name == name, s.codes.c.deleted_at.is_(None)
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            raise CodeNotFound(f"unknown code {name!r}: push it first with 'mayfly code push'")
        return Code.from_row(row)

    def _revision(self, conn: Connection, code_id: str, name: str, rev: int) -> Revision:
        row = (
            conn.execute(
                select(s.code_revisions).where(s.code_revisions.c.code_id == code_id, s.code_revisions.c.rev == rev)
            )
            .mappings()
            .first()
        )
        if row is None:
            raise RevisionNotFound(f"code {name!r} has no revision {rev}")
        return Revision.from_row(row)

    def revision(self, project_id: str, name: str, rev: int | None = None) -> Revision:
        """One revision (the latest by default)."""
        with self.store.read() as conn:
            code = self._get(conn, project_id, name)
            return self._revision(conn, code.id, name, rev or code.latest_rev)

    def by_id(self, project_id: str, code_id: str) -> tuple[Code, Revision]:
        """The live code with this id in the project, and its latest revision (IronWorker addresses codes by id)."""
        with self.store.read() as conn:
            row = conn.execute(
                _WITH_LATEST.where(
                    s.codes.c.id == code_id, s.codes.c.project_id == project_id, s.codes.c.deleted_at.is_(None)
                )
            ).first()
        if row is None:
            raise CodeNotFound(f"unknown code id {code_id!r}")
        return _code_with_revision(row)

    def list(
        self, project_id: str, *, offset: int = 0, limit: int | None = None
    ) -> builtins.list[tuple[Code, Revision]]:
        """Every code of the project with its latest revision, by name; or the window ``[offset, offset + limit)``."""
        q = _WITH_LATEST.where(s.codes.c.project_id == project_id, s.codes.c.deleted_at.is_(None))
        q = q.order_by(s.codes.c.name).offset(offset).limit(limit)
        with self.store.read() as conn:
            rows = conn.execute(q).all()
        return [_code_with_revision(row) for row in rows]

    def revisions(self, project_id: str, name: str) -> builtins.list[Revision]:
        """All revisions of a code, newest first."""
        with self.store.read() as conn:
            code = self._get(conn, project_id, name)
            rows = (
                conn.execute(
                    select(s.code_revisions)
                    .where(s.code_revisions.c.code_id == code.id)
                    .order_by(s.code_revisions.c.rev.desc())
                )
                .mappings()
                .all()
            )
        return [Revision.from_row(r) for r in rows]

    def download(self, project_id: str, name: str, rev: int | None = None) -> tuple[Revision, BinaryIO]:
        """The zip of a revision, as an open file."""
        revision = self.revision(project_id, name, rev)
        if revision.blob_key is None:
            raise InvalidInput(
                f"code {name!r} revision {revision.rev} is an image ({revision.image}); there is no package to download"
            )
        return revision, self.blobs.open(revision.blob_key)

    def delete(self, project_id: str, name: str) -> int:
        """Delete a code: cancel its queued tasks and end its schedules; returns how many tasks were cancelled.

        The row stays, renamed ``~<id>``, so finished tasks keep their history and the
        name is free for a new code. Running tasks carry on (cancel them first with
        ``mayfly task cancel --code``); zips stay in the blob store for their downloads.
        """
        ts = now()
        with self.store.write() as conn:
            code = self._get(conn, project_id, name)
            cancelled = cancel_queued_of_code(conn, code.id, ts)
            conn.execute(
                update(s.schedules)
                .where(s.schedules.c.code_id == code.id, s.schedules.c.status.in_(("scheduled", "paused")))
                .values(status="cancelled", next_start=None, msg="code deleted", updated_at=ts)
            )
            conn.execute(
                update(s.codes).where(s.codes.c.id == code.id).values(name=f"~{code.id}", deleted_at=ts, updated_at=ts)
            )
        return cancelled

    def set_paused(self, project_id: str, name: str, paused: bool) -> Code:
        """Pause or resume a code's queued tasks."""
        with self.store.write() as conn:
            code = self._get(conn, project_id, name)
            conn.execute(update(s.codes).where(s.codes.c.id == code.id).values(paused=paused, updated_at=now()))
            return self._get(conn, project_id, name)


class _ZipSource:
    """A context manager giving a seekable zip file for a zip path, a directory or an upload stream."""

    def __init__(self, source: Path | BinaryIO, limits: Limits) -> None:
        self.source = source
        self.limits = limits
        self._tmp: Any = None

    def __enter__(self) -> BinaryIO:
        src = self.source
        if isinstance(src, Path):
            if src.is_dir():
                self._tmp = tempfile.TemporaryFile()
                try:
                    archive.zip_directory(src, self._tmp)
                except archive.ArchiveError as exc:
                    self._tmp.close()
                    raise InvalidArchive(f"cannot package {src}: {exc}") from None
                self._check_size(self._tmp.tell())
                return self._tmp  # type: ignore[no-any-return]
            if not src.is_file():
                raise InvalidInput(f"{src}: no such file or directory")
            self._check_size(src.stat().st_size)
            self._tmp = src.open("rb")
            return self._tmp  # type: ignore[no-any-return]
        # A stream (an HTTP upload): copy with a cap so an oversized body is refused before it is kept.
        self._tmp = tempfile.TemporaryFile()
        total = 0
        for block in _blocks(src):
            total += len(block)
            self._check_size(total)
            self._tmp.write(block)
        return self._tmp  # type: ignore[no-any-return]

    def _check_size(self, size: int) -> None:
        if size > self.limits.max_upload_bytes:
            raise UploadTooLarge(
                f"code package is larger than the {human_size(self.limits.max_upload_bytes)} upload limit"
            )

    def __exit__(self, *exc: object) -> None:
        if self._tmp is not None:
            self._tmp.close()


def human_size(n: int) -> str:
    """Bytes for humans: 512 bytes, 64 KiB, 100 MiB."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} bytes"


def _blocks(stream: BinaryIO, size: int = 1 << 20) -> Iterator[bytes]:
    while block := stream.read(size):
        yield block


def zip_bytes(files: Mapping[str, bytes | str]) -> bytes:
    """A small zip from a mapping of names to contents (tests and examples)."""
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()
