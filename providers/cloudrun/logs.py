"""Task logs from Cloud Logging, where Cloud Run writes every line a job's container prints.

Each line the container writes to stdout or stderr becomes one log entry of the
``cloud_run_job`` resource, labelled with the job (``resource.labels.job_name``) and the
execution (``labels."run.googleapis.com/execution_name"``); Cloud Run's own messages about
the execution go to the ``run.googleapis.com/varlog/system`` log and are left out. Entries
are read in timestamp order with ``entries.list`` through the JSON API
(``google-cloud-logging`` with ``_use_grpc=False``), page after page; each entry's text
is yielded with the newline Cloud Run stripped.

Cloud Logging lags a few seconds behind the container, so a follower keeps reading after
the execution ended until two consecutive reads find nothing (bounded by ``drain``). Its
read quota is small: ``entries.list`` allows 60 requests per minute per project
(https://cloud.google.com/logging/quotas#api-limits), so every read of the process takes
a token from one shared bucket (``log_reads_per_second``), a quiet follower polls less
often, and throttled reads back off.
"""

from __future__ import annotations

import datetime
import importlib
import logging
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

from mayfly.core.errors import CredentialsMissing, MayflyError, MissingDependency, Throttled, Unavailable
from mayfly.providers.cloudrun.google import translate
from mayfly.providers.cloudrun.limiter import TokenBucket, backoff

log = logging.getLogger("mayfly.providers.cloudrun")

INSTALL_HINT = 'Cloud Run logs need google-cloud-logging: pip install "mayfly-tasks[gcp]"'
PAGE_SIZE = 1000
_MAX_ERRORS = 5
_MAX_FAILED_CHECKS = 30
_SYSTEM_LOGS = ("varlog%2Fsystem", "varlog/system")


def logging_module() -> Any:
    """Import ``google.cloud.logging``, or raise MissingDependency with the install command."""
    try:
        gcl = importlib.import_module("google.cloud.logging")
    except ImportError:
        raise MissingDependency(INSTALL_HINT) from None
    return gcl


def make_client(project: str, credentials: Any, endpoint: str | None = None) -> Any:
    """A Cloud Logging client over the JSON API (``endpoint`` instead of Google's when set)."""
    gcl = logging_module()
    options = {"api_endpoint": endpoint} if endpoint else None
    with translate("creating a Cloud Logging client"):
        return gcl.Client(project=project, credentials=credentials, _use_grpc=False, client_options=options)


def execution_filter(job: str, execution: str, since: datetime.datetime | None) -> str:
    """The Logging query of one execution's entries (short job and execution ids)."""
    parts = [
        'resource.type="cloud_run_job"',
        f'resource.labels.job_name="{job}"',
        f'labels."run.googleapis.com/execution_name"="{execution}"',
    ]
    if since is not None:
        # Without a timestamp term the library adds "the last 24 hours"; an execution's start is tighter.
        parts.append(f'timestamp>="{_rfc3339(since)}"')
    return " AND ".join(parts)


def _rfc3339(ts: datetime.datetime) -> str:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=datetime.UTC)
    return ts.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _text(entry: Any) -> str:
    payload = getattr(entry, "payload", None)
    if payload is None:
        return ""
    if isinstance(payload, str):
        return payload
    if isinstance(payload, dict):
        return str(payload.get("message", payload))
    return str(payload)


class _Cursor:
    """Where a reader is: the newest timestamp seen, and the ids of the entries at that timestamp."""

    def __init__(self, since: datetime.datetime | None) -> None:
        self.since = since
        self.seen: set[str] = set()


class LogReader:
    """Reads the entries of executions; thread-safe (one client, one shared limiter)."""

    def __init__(
        self,
        client_factory: Callable[[], Any],
        project: str,
        *,
        limiter: TokenBucket,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._factory = client_factory
        self._client: Any = None
        self.project = project
        self._limiter = limiter
        self._sleep = sleep
        self._clock = clock
        self._rng = rng

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self._factory()
        return self._client

    def _available(self, job: str, execution: str, cursor: _Cursor) -> Iterator[bytes]:
        """Every entry beyond ``cursor`` now, one chunk per page of entries."""
        gcl = logging_module()
        self._limiter.acquire()
        query = execution_filter(job, execution, cursor.since)
        with translate(f"reading the Cloud Logging entries of execution {execution}"):
            entries = self.client.list_entries(
                resource_names=[f"projects/{self.project}"],
                filter_=query,
                order_by=gcl.ASCENDING,
                page_size=PAGE_SIZE,
            )
            lines: list[str] = []
            for count, entry in enumerate(entries, 1):
                if count % PAGE_SIZE == 0:
                    self._limiter.acquire()  # the next entry comes with the next page: one more request
                name = str(getattr(entry, "log_name", "") or "")
                stamp = getattr(entry, "timestamp", None)
                key = str(getattr(entry, "insert_id", "") or "") or f"{stamp}:{_text(entry)}"
                if stamp is not None and cursor.since is not None and stamp < cursor.since:
                    continue
                if stamp is not None and stamp == cursor.since and key in cursor.seen:
                    continue
                if stamp is not None and (cursor.since is None or stamp > cursor.since):
                    cursor.since = stamp
                    cursor.seen = set()
                cursor.seen.add(key)
                if any(s in name for s in _SYSTEM_LOGS):
                    continue
                lines.append(_text(entry))
                if len(lines) >= PAGE_SIZE:
                    yield "".join(f"{line}\n" for line in lines).encode()
                    lines = []
            if lines:
                yield "".join(f"{line}\n" for line in lines).encode()

    def read(self, job: str, execution: str, since: datetime.datetime | None) -> Iterator[bytes]:
        """The execution's log as it is now."""
        cursor = _Cursor(since)
        delays = backoff(_MAX_ERRORS, rng=self._rng)
        while True:
            try:
                yield from self._available(job, execution, cursor)
                return
            except Throttled:
                delay = next(delays, None)
                if delay is None:
                    raise
                self._sleep(delay)

    def follow(
        self,
        job: str,
        execution: str,
        since: datetime.datetime | None,
        done: Callable[[], bool],
        *,
        poll: float,
        drain: float,
    ) -> Iterator[bytes]:
        """The log from the start until the execution is ``done`` and the log has gone quiet."""
        cursor = _Cursor(since)
        stopped_at: float | None = None
        quiet = 0
        wait = poll
        errors = failed_checks = 0
        while True:
            got = False
            try:
                for chunk in self._available(job, execution, cursor):
                    got = True
                    yield chunk
                errors = 0
            except Throttled:
                self._sleep(min(wait * 2, poll * 10))
                continue
            except CredentialsMissing:
                raise
            except Unavailable as exc:
                errors += 1
                if errors >= _MAX_ERRORS:
                    raise
                log.info("reading the log of %s failed (%s); retrying", execution, exc)
                self._sleep(poll)
                continue
            if stopped_at is None:
                try:
                    finished = done()
                    failed_checks = 0
                except MayflyError as exc:
                    failed_checks += 1
                    if failed_checks >= _MAX_FAILED_CHECKS:
                        raise
                    log.info("checking execution %s failed (%s); reading on", execution, exc)
                    finished = False
                if finished:
                    stopped_at = self._clock()
                    wait = poll
                else:
                    wait = poll if got else min(wait * 2, poll * 5)
            else:
                quiet = 0 if got else quiet + 1
                if quiet >= 2 or self._clock() - stopped_at >= drain:
                    return
            self._sleep(wait)
