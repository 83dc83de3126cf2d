"""Task logs from CloudWatch Logs, where the awslogs driver of every task container writes them.

A task's stream is ``<log_stream_prefix>/task/<ecs task id>`` in the target's log
group. It appears only once the container starts, so a missing stream is normal
while a task is pending. Events are read from the head with ``GetLogEvents``,
page after page (``nextForwardToken``; the end is reached when it comes back
unchanged), and each event's message is yielded with the newline the driver
stripped.

CloudWatch lags: events reach it a few seconds after the container wrote them,
and the last ones after the container stopped. A follower therefore keeps
reading after the task stopped until two consecutive reads, one poll interval
apart, find nothing new (bounded by ``drain`` seconds).

``GetLogEvents`` has a low account-wide quota (25 requests/s by default), so
reads go through a shared token bucket, throttled reads back off, and a follower
of a quiet task polls less often.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from mayfly.core.errors import CredentialsMissing, MayflyError, Throttled, Unavailable
from mayfly.providers.ecs import sdk
from mayfly.providers.ecs.aws import Clients, error_code, translate
from mayfly.providers.ecs.limiter import TokenBucket, backoff
from mayfly.providers.ecs.naming import task_id_of
from mayfly.providers.ecs.taskdefs import CONTAINER

log = logging.getLogger("mayfly.providers.ecs")

#: Consecutive failed reads (other than throttling) a follower tolerates before giving up.
_MAX_ERRORS = 5
#: Consecutive failed "has the task stopped?" checks a follower tolerates (about a minute of polls).
_MAX_FAILED_CHECKS = 30
#: Empty pages with a new token read in a row before a read counts as "at the end" (a safety bound).
_MAX_EMPTY_PAGES = 50


def stream_name(prefix: str, task_arn: str) -> str:
    """The awslogs stream of the ``task`` container of ``task_arn``."""
    return f"{prefix}/{CONTAINER}/{task_id_of(task_arn)}"


@dataclass
class _Cursor:
    token: str | None = None


class LogReader:
    """Reads one log group; thread-safe (one boto3 client, a shared limiter)."""

    def __init__(
        self,
        clients: Clients,
        group: str,
        *,
        limiter: TokenBucket,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._clients = clients
        self.group = group
        self._limiter = limiter
        self._clock = clock
        self._sleep = sleep
        self._rng = rng

    def _page(self, stream: str, cursor: _Cursor) -> list[str] | None:
        """One GetLogEvents page after ``cursor`` (advanced); None at the end or when the stream is absent."""
        self._limiter.acquire()
        args: dict[str, Any] = {"logGroupName": self.group, "logStreamName": stream, "startFromHead": True}
        if cursor.token is not None:
            args["nextToken"] = cursor.token
        with translate(f"reading CloudWatch log stream {stream}"):
            bx = sdk.errors()
            try:
                page = self._clients("logs").get_log_events(**args)
            except bx.ClientError as exc:
                if error_code(exc) == "ResourceNotFoundException":
                    return None  # the stream does not exist yet (or the group is gone: check() says which)
                raise
        token = page.get("nextForwardToken")
        messages = [str(e.get("message", "")) for e in page.get("events") or []]
        if token is None or token == cursor.token:
            return messages or None
        cursor.token = str(token)
        return messages

    def _available(self, stream: str, cursor: _Cursor) -> Iterator[bytes]:
        """Everything the stream holds beyond ``cursor`` now, one chunk per page."""
        empty = 0
        while (messages := self._page(stream, cursor)) is not None:
            if messages:
                empty = 0
                yield "".join(f"{m}\n" for m in messages).encode()
            else:
                empty += 1
                if empty >= _MAX_EMPTY_PAGES:
                    return

    def read(self, stream: str) -> Iterator[bytes]:
        """The whole stream as it is now (nothing if it does not exist)."""
        cursor = _Cursor()
        delays = backoff(_MAX_ERRORS, rng=self._rng)
        while True:
            try:
                yield from self._available(stream, cursor)
                return
            except Throttled:
                delay = next(delays, None)
                if delay is None:
                    raise
                self._sleep(delay)

    def follow(self, stream: str, done: Callable[[], bool], *, poll: float, drain: float) -> Iterator[bytes]:
        """The stream from the start until the task is ``done`` and the stream has gone quiet.

        ``done`` is asked between reads; once it says yes, reading goes on until two
        consecutive reads ``poll`` seconds apart find nothing, or ``drain`` seconds pass.
        """
        cursor = _Cursor()
        stopped_at: float | None = None
        quiet = 0
        wait = poll
        errors = 0
        failed_checks = 0
        while True:
            got = False
            try:
                for chunk in self._available(stream, cursor):
                    got = True
                    yield chunk
                errors = 0
            except Throttled:
                self._sleep(min(wait * 2, poll * 5))
                continue
            except CredentialsMissing:
                raise
            except Unavailable as exc:
                errors += 1
                if errors >= _MAX_ERRORS:
                    raise
                log.info("reading %s failed (%s); retrying", stream, exc)
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
                    log.info("checking the task of %s failed (%s); reading on", stream, exc)
                    finished = False
                if finished:
                    stopped_at = self._clock()
                    wait = poll
                else:
                    # A quiet task is polled less often (GetLogEvents has a small quota).
                    wait = poll if got else min(wait * 2, poll * 5)
            else:
                quiet = 0 if got else quiet + 1
                if quiet >= 2 or self._clock() - stopped_at >= drain:
                    return
            self._sleep(wait)
