"""Rate limits for container group creates: a thread-safe token bucket, and jittered exponential backoff.

Azure Container Instances documents its create limits per subscription and region:
300 container group creates per hour and 100 per 5 minutes (the same for deletes).
Source: https://learn.microsoft.com/en-us/azure/container-instances/container-instances-resource-and-quota-limits
("Changeable Limits"). A single bucket meets both with a burst of 60 and a refill of
one create every 15 s: 60 + 300 s / 15 s = 80 creates in any 5 minutes, 60 + 240 = 300
in any hour. Those are the defaults of ``AciSettings.creates_per_second`` and
``create_burst``; a subscription with a raised quota raises them. Creates beyond the
limit fail with 429 (throttled) and are retried here with backoff. The bucket is shared
by every provider of the process talking to the same subscription, region and endpoint
(:func:`shared_bucket`): the limit is the subscription's, not a target's.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator

#: Documented defaults (see the module docstring for the source).
CREATES_PER_SECOND = 1 / 15
CREATE_BURST = 60


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; :meth:`acquire` blocks until one is free.

    A caller reserves its token under the lock (the count may go negative) and sleeps
    outside it, so waiting callers are served in the order they arrived.
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(burst)
        self._last = clock()

    def acquire(self) -> float:
        """Take one token, sleeping until it is available; return the seconds waited."""
        with self._lock:
            now = self._clock()
            self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= 1.0
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
        return wait


_shared: dict[tuple[str, ...], TokenBucket] = {}
_shared_lock = threading.Lock()


def shared_bucket(key: tuple[str, ...], rate: float, burst: int) -> TokenBucket:
    """The process-wide bucket for ``key`` (e.g. ``("create", subscription, region, endpoint)``)."""
    full = (*key, repr(rate), str(burst))
    with _shared_lock:
        bucket = _shared.get(full)
        if bucket is None:
            bucket = _shared[full] = TokenBucket(rate, burst)
        return bucket


def backoff(
    attempts: int, *, base: float = 1.0, cap: float = 30.0, rng: random.Random | None = None
) -> Iterator[float]:
    """``attempts`` delays with full jitter: uniform in [0, min(cap, base * 2**n)]."""
    pick = rng or random.Random()
    for n in range(attempts):
        yield pick.uniform(0.0, min(cap, base * (2**n)))
