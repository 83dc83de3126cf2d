"""Checks of user input shared by codes, tasks and (later) schedules; each raises one clear line."""

from __future__ import annotations

import unicodedata

from mayfly.core.config import Limits
from mayfly.core.errors import InvalidInput

#: IronWorker's priorities, highest first (the router scans them in this order).
PRIORITIES = (2, 1, 0)


def priority(value: int) -> int:
    """IronWorker's priorities: 0 (default), 1, 2 (highest)."""
    if value not in PRIORITIES:
        raise InvalidInput("priority must be 0, 1 or 2")
    return value


def timeout(value: int, limits: Limits) -> int:
    if not 1 <= value <= limits.max_timeout:
        raise InvalidInput(f"timeout must be between 1 and {limits.max_timeout} seconds")
    return value


def retries(value: int, limits: Limits) -> int:
    if not 0 <= value <= limits.max_retries:
        raise InvalidInput(f"retries must be between 0 and {limits.max_retries}")
    return value


def delay(value: int, limits: Limits, what: str = "delay") -> int:
    if not 0 <= value <= limits.max_delay:
        raise InvalidInput(f"{what} must be between 0 and {limits.max_delay} seconds")
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
    """A task's or a schedule's label: 1 to 255 characters, no control character."""
    return text(value, "label", 255)
