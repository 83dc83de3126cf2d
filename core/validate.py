"""Checks of user input shared by codes, tasks and (later) schedules; each raises one clear line."""

from __future__ import annotations

import unicodedata

from mayfly.core import options
from mayfly.core.config import Limits
from mayfly.core.errors import InvalidInput

#: IronWorker's priorities, highest first (the router scans them in this order).
PRIORITIES = (2, 1, 0)


def priority(value: int) -> int:
    """IronWorker's priorities: 0 (default), 1, 2 (highest); the bounds are core/options.py's."""
    options.check("priority", value)
    return value


def timeout(value: int, limits: Limits) -> int:
    options.check("timeout", value, limits)
    return value


def retries(value: int, limits: Limits) -> int:
    options.check("retries", value, limits)
    return value


def delay(value: int, limits: Limits) -> int:
    options.check("delay", value, limits)
    return value


#: Format characters that reorder what a terminal or a page shows (bidirectional embeddings, overrides and
#: isolates) and Unicode's line and paragraph separators; with Unicode's ``Cc`` (C0, DEL, C1) they are the
#: control characters no label or name may hold.
REORDERING = frozenset([*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x2028, 0x2029])


def is_control(char: str) -> bool:
    """Whether ``char`` is a control character: C0, DEL, C1, a line/paragraph separator or a bidi control."""
    return unicodedata.category(char) == "Cc" or ord(char) in REORDERING


def printable(value: str, what: str) -> str:
    """Refuse text holding a control character (an ESC sequence, CR, LF, ...): it would drive a terminal."""
    for i, char in enumerate(value):
        if is_control(char):
            raise InvalidInput(f"{what} must not contain control characters (found U+{ord(char):04X} at {i})")
    return value


def text(value: str, what: str, max_len: int) -> str:
    """A label or a name users choose: 1 to ``max_len`` characters, no control character."""
    if not 0 < len(value) <= max_len:
        raise InvalidInput(f"{what} must be 1 to {max_len} characters")
    return printable(value, what)


def label(value: str) -> str:
    """A task's or a schedule's label: 1 to 255 characters (core/options.py), no control character."""
    options.check("label", value)
    return printable(value, "label")
