"""Reading a container's output as timestamped lines, as it is written.

Docker's log API (``follow``, ``timestamps``) sends one frame per log message,
each prefixed with its RFC 3339 time. A message without a trailing newline is a
partial line: the engine splits long lines, and the last line of a program that
ends without a newline arrives that way. The pump joins partial messages into
lines and hands every complete line, and at the end the unfinished one, to a
sink with its time in epoch milliseconds. Once the container stops, the log is
read once more without ``follow`` to pick up what the follow stream of Docker
20.10 can miss at the very end.
"""

from __future__ import annotations

import calendar
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

Sink = Callable[[int, str], None]


def parse_timestamp(stamp: bytes) -> int:
    """Epoch milliseconds of a Docker log timestamp (``2026-01-02T03:04:05.123456789Z``)."""
    text = stamp.decode("ascii", errors="replace")
    try:
        seconds = calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S"))
        fraction = text[20:].rstrip("Z").split("+")[0].split("-")[0] if len(text) > 20 and text[19] == "." else ""
        return seconds * 1000 + int((fraction + "000")[:3])
    except ValueError:
        return int(time.time() * 1000)


class LineAssembler:
    """Frames in, lines out: strips each frame's timestamp and joins partial messages."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self._partial = b""
        self._partial_ts = 0

    def feed(self, frame: bytes) -> None:
        stamp, _, payload = frame.partition(b" ")
        timestamp = parse_timestamp(stamp)
        if not self._partial:
            self._partial_ts = timestamp
        data = self._partial + payload
        *lines, self._partial = data.split(b"\n")
        for line in lines:
            self.sink(self._partial_ts, line.decode(errors="replace"))
            self._partial_ts = timestamp

    def close(self) -> None:
        """The stream ended: the unfinished last line is a line too."""
        if self._partial:
            self.sink(self._partial_ts, self._partial.decode(errors="replace"))
            self._partial = b""


def pump(client: Any, container_id: str, sink: Sink, *, stdout: bool) -> None:
    """Feed the container's stdout (or stderr) to ``sink`` as lines, until the container stops."""
    assembler = LineAssembler(sink)
    options = {"stdout": stdout, "stderr": not stdout, "stream": True, "timestamps": True}
    seen = 0
    try:
        for frame in client.api.logs(container_id, follow=True, **options):
            seen += 1
            assembler.feed(frame)
        # NOTE: Docker 20.10's follow stream can end before the last message of a container that just
        # stopped (typically a final line without newline). The complete log, read again without
        # follow, has the same messages in the same order: feed what the follow stream missed.
        for index, frame in enumerate(client.api.logs(container_id, follow=False, **options)):
            if index >= seen:
                assembler.feed(frame)
    finally:
        assembler.close()


def follow(
    client: Any, container_id: str, sink: Sink, *, stderr_sink: Sink | None = None, name: str = "ecs-emulator"
) -> list[threading.Thread]:
    """Start one thread per output stream (stdout, stderr) that pumps the container's lines into ``sink``.

    ``stderr_sink``, when given, receives the stderr lines instead; ``name`` prefixes the threads' names.
    Each thread ends when the container stops (or is removed).
    """
    threads = []
    for stdout in (True, False):
        stream = "stdout" if stdout else "stderr"
        target = sink if stdout or stderr_sink is None else stderr_sink

        def run(stdout: bool = stdout, stream: str = stream, target: Sink = target) -> None:
            try:
                pump(client, container_id, target, stdout=stdout)
            except Exception:
                log.debug("log stream %s of %s ended with an error", stream, container_id[:12], exc_info=True)

        thread = threading.Thread(target=run, name=f"{name}-{stream}-{container_id[:12]}", daemon=True)
        thread.start()
        threads.append(thread)
    return threads
