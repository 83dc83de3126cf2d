"""Printing data users control on a terminal without letting it drive the terminal.

A label, a name, a reason or a log line may hold control characters: an ESC
sequence retitles the terminal, writes the clipboard or hides text; a CR or LF
forges table rows. The CLI never prints such text raw:

- :func:`visible` renders every control character as a visible escape
  (``\\x1b``, ``\\n``, ``\\u202e``): tables, ``show`` fields and messages use it.
- :class:`LogSink` writes a task's log as it was to a pipe or a file, and to a
  terminal with every control character escaped except line feed, tab and
  carriage return (which only move the cursor); escape sequences never reach
  the terminal.

"Control character" is the same set core refuses in labels and names
(:func:`mayfly.core.validate.is_control`): Unicode's ``Cc`` (C0, DEL and C1),
the line and paragraph separators, and the bidirectional embeddings, overrides
and isolates (U+202A-U+202E, U+2066-U+2069) that reorder what is shown.
"""

from __future__ import annotations

import codecs
import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import BinaryIO, Protocol

from mayfly.core.validate import REORDERING

_SHORT = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}


def _escape(code: int) -> str:
    if code in _SHORT:
        return _SHORT[code]
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


#: ``str.translate`` table of every control character to its visible escape.
_VISIBLE = {code: _escape(code) for code in [*range(0x20), *range(0x7F, 0xA0), *REORDERING]}
#: The same for a log on a terminal: line feed, tab and carriage return pass.
_LOG = {code: text for code, text in _VISIBLE.items() if code not in (0x09, 0x0A, 0x0D)}


def visible(value: object) -> str:
    """``str(value)`` with every control character shown as its escape (``None`` is empty)."""
    if value is None:
        return ""
    return str(value).translate(_VISIBLE)


def visible_lines(text: str) -> str:
    """Like :func:`visible`, but line feeds pass: a message that lists one problem per line stays readable.

    Escape sequences and carriage returns are still shown escaped, so no line can be rewritten.
    """
    return "\n".join(visible(line) for line in text.split("\n"))


def visible_log(text: str) -> str:
    """Log text for a terminal: control characters escaped, except line feed, tab and carriage return."""
    return text.translate(_LOG)


class Writable(Protocol):
    """Where a log is written chunk by chunk."""

    def write(self, chunk: bytes, /) -> int: ...

    def flush(self) -> None: ...


class LogSink:
    """Where a task's log is written: raw to a pipe or a file, neutralised to a terminal.

    Chunks may split a UTF-8 character; an incremental decoder keeps the pieces.
    Bytes that are not UTF-8 are shown as U+FFFD on a terminal.
    """

    def __init__(self, out: BinaryIO, *, terminal: bool | None = None) -> None:
        self.out = out
        self.terminal = _isatty(out) if terminal is None else terminal
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def write(self, chunk: bytes) -> int:
        """Write one chunk of the log; returns its length in bytes (as read, not as shown)."""
        if self.terminal:
            self.out.write(visible_log(self._decoder.decode(chunk)).encode())
        else:
            self.out.write(chunk)
        return len(chunk)

    def flush(self) -> None:
        self.out.flush()

    def close(self) -> None:
        """Write what is left of a character cut at the end, and flush."""
        if self.terminal:
            self.out.write(visible_log(self._decoder.decode(b"", final=True)).encode())
        self.out.flush()


def _isatty(out: BinaryIO) -> bool:
    try:
        return out.isatty()
    except (AttributeError, ValueError):
        return False


@contextlib.contextmanager
def uninterrupted() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) and SIGTERM until the block is done (main thread only; elsewhere a no-op).

    A follower writes a chunk and records that it did as one step: a KeyboardInterrupt
    between the two, or inside a buffered flush (which then writes the bytes again),
    would print part of the log twice. During the block a signal is only noted; it is
    raised again, to the handler that was in place, once the block is done. (Blocking it
    with ``pthread_sigmask`` is not enough: another thread of the process would take it.)
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []

    def note(signum: int, _frame: object) -> None:
        caught.append(signum)

    previous = {signum: signal.signal(signum, note) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if caught:
            signal.raise_signal(caught[0])
