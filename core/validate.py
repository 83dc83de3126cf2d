"""Checks of user input shared by codes, tasks and (later) schedules; each raises one clear line."""

from __future__ import annotations

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
