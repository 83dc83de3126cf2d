"""The awslogs driver of the emulator: container output into CloudWatch Logs, live.

Each task with an ``awslogs`` log configuration gets a :class:`LogStream` named
``PREFIX/CONTAINER/TASK_ID`` in its log group (created when the task starts; a
missing group makes the task fail to start, as on ECS). Lines are buffered and
sent with PutLogEvents about every second while the task runs, and the rest when
it stops, the last line included even without a trailing newline.

It talks to CloudWatch Logs through boto3, here the emulator's own moto. Like
the awslogs driver, an event holds one line without its newline; empty lines
are dropped (CloudWatch rejects empty messages) and lines over 256 KiB are
split.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

#: Per-event overhead PutLogEvents counts against its batch size.
EVENT_OVERHEAD = 26
MAX_EVENT_BYTES = 256 * 1024 - EVENT_OVERHEAD
MAX_BATCH_BYTES = 1_048_576
MAX_BATCH_EVENTS = 10_000
FLUSH_INTERVAL = 1.0

LogsClient = Callable[[str], Any]


class LogGroupMissing(Exception):
    """The task's log group does not exist (ECS: ResourceInitializationError)."""


def split_message(message: str) -> list[str]:
    """``message`` as CloudWatch events: at most MAX_EVENT_BYTES each, cut on character boundaries."""
    data = message.encode()
    if len(data) <= MAX_EVENT_BYTES:
        return [message]
    parts: list[str] = []
    while data:
        cut = min(len(data), MAX_EVENT_BYTES)
        while cut < len(data) and (data[cut] & 0xC0) == 0x80:
            cut -= 1
        parts.append(data[:cut].decode(errors="replace"))
        data = data[cut:]
    return parts


def batches(events: list[tuple[int, str]]) -> list[list[dict[str, Any]]]:
    """Events (sorted by time) in PutLogEvents batches within its count and size limits."""
    out: list[list[dict[str, Any]]] = []
    batch: list[dict[str, Any]] = []
    size = 0
    for timestamp, message in events:
        cost = len(message.encode()) + EVENT_OVERHEAD
        if batch and (len(batch) >= MAX_BATCH_EVENTS or size + cost > MAX_BATCH_BYTES):
            out.append(batch)
            batch, size = [], 0
        batch.append({"timestamp": timestamp, "message": message})
        size += cost
    if batch:
        out.append(batch)
    return out


class LogStream:
    """One task container's CloudWatch log stream: buffered lines, shipped on flush."""

    def __init__(self, client: Any, group: str, stream: str) -> None:
        self.client = client
        self.group = group
        self.stream = stream
        self._pending: list[tuple[int, str]] = []
        self._lock = threading.Lock()
        # One flush at a time keeps batches in order.
        self._send_lock = threading.Lock()

    def write(self, timestamp_ms: int, line: str) -> None:
        """Queue one line (its newline already removed)."""
        if not line:
            return
        with self._lock:
            self._pending.extend((timestamp_ms, part) for part in split_message(line))

    def flush(self) -> None:
        """Send what is queued."""
        with self._send_lock:
            with self._lock:
                events, self._pending = self._pending, []
            if not events:
                return
            # stdout and stderr are read separately: order them by time, as CloudWatch requires per batch.
            events.sort(key=lambda e: e[0])
            for batch in batches(events):
                try:
                    self.client.put_log_events(logGroupName=self.group, logStreamName=self.stream, logEvents=batch)
                except Exception:
                    log.warning("lost %d log events of %s/%s", len(batch), self.group, self.stream, exc_info=True)


class LogShipper:
    """Opens log streams and flushes all of them about every second, on one thread."""

    def __init__(self, logs_client: LogsClient, interval: float = FLUSH_INTERVAL) -> None:
        self._client = logs_client
        self._interval = interval
        self._streams: set[LogStream] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def open(self, region: str, group: str, stream: str) -> LogStream:
        """Create the log stream in ``group`` (which must exist) and ship what is written to it."""
        client = self._client(region)
        try:
            client.create_log_stream(logGroupName=group, logStreamName=stream)
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
            if code == "ResourceNotFoundException":
                raise LogGroupMissing(
                    "ResourceInitializationError: failed to validate logger args: create stream has been retried "
                    "1 times: failed to create Cloudwatch log stream: ResourceNotFoundException: The specified log "
                    f"group does not exist. (log group {group!r} in {region})"
                ) from None
            if code != "ResourceAlreadyExistsException":
                raise
        handle = LogStream(client, group, stream)
        with self._lock:
            self._streams.add(handle)
        return handle

    def close_stream(self, handle: LogStream) -> None:
        """Ship the stream's last lines and stop flushing it."""
        with self._lock:
            self._streams.discard(handle)
        handle.flush()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ecs-emulator-logs", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Flush every stream one last time and stop."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._flush_all()

    def _flush_all(self) -> None:
        with self._lock:
            streams = list(self._streams)
        for handle in streams:
            handle.flush()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._flush_all()
