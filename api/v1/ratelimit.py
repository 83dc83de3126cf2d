"""A token bucket per project, in the server process.

Each project may make ``rate`` requests a second on average and ``burst`` at
once. The buckets live in memory: two server processes behind one balancer
each allow the full rate (a shared limiter would need the store on every
request, which the limit exists to protect).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("mayfly.api")

DEFAULT_RATE = 50.0
DEFAULT_BURST = 100


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """``take(key)`` spends one token of ``key``'s bucket, or says how long until one is there."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls) -> RateLimiter:
        """``MAYFLY_API_RATE`` (requests a second) and ``MAYFLY_API_BURST``; bad values fall back to defaults."""
        rate = _env_number("MAYFLY_API_RATE", DEFAULT_RATE)
        burst = int(_env_number("MAYFLY_API_BURST", DEFAULT_BURST))
        return cls(rate, max(1, burst))

    def take(self, key: str) -> float:
        """0 if the request may go ahead (a token is spent), else the seconds until a token is free."""
        now = self.clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(float(self.burst), now)
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self.rate


def retry_after(wait: float) -> int:
    """Whole seconds for a ``Retry-After`` header (HTTP allows no fractions), at least 1."""
    return max(1, math.ceil(wait))


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0 or not math.isfinite(value):
        log.warning("ignoring %s=%r: expected a positive number; using %s", name, raw, default)
        return default
    return value
