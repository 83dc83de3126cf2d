"""Rate limits for cloud API calls: a thread-safe token bucket, and jittered exponential backoff.

Each cloud provider sizes a bucket from its cloud's documented launch quota (the sources are in
``providers/<name>/limiter.py``); every runner thread takes a token before a launch call, so a
burst of queued tasks is spread out here instead of being refused by the cloud. Buckets are shared
by every provider instance of the process with the same key (:func:`shared_bucket`): a quota is
the account's, project's or subscription's, not a target's.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; :meth:`acquire` blocks until one is free.

    Thread-safe. A caller reserves its token under the lock (the count may go
    negative) and sleeps outside it, so waiting callers are served in the order
    they arrived without holding the lock.
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

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate)
        self._last = now

    def acquire(self) -> float:
        """Take one token, sleeping until it is available; return the seconds waited."""
        with self._lock:
            self._refill()
            self._tokens -= 1.0
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
        return wait

    def available(self) -> float:
        """Tokens available now (negative while callers wait for reserved ones)."""
        with self._lock:
            self._refill()
            return self._tokens


_shared: dict[tuple[str, ...], TokenBucket] = {}
_shared_lock = threading.Lock()


def shared_bucket(key: tuple[str, ...], rate: float, burst: int) -> TokenBucket:
    """The process-wide bucket for ``key`` (e.g. ``("RunTask", region, endpoint)``), created on first use."""
    full = (*key, repr(rate), str(burst))
    with _shared_lock:
        bucket = _shared.get(full)
        if bucket is None:
            bucket = _shared[full] = TokenBucket(rate, burst)
        return bucket


def backoff(
    attempts: int, *, base: float = 0.5, cap: float = 20.0, rng: random.Random | None = None
) -> Iterator[float]:
    """``attempts`` delays with "full jitter": uniform in [0, min(cap, base * 2**n)].

    Full jitter spreads the retries of many runners that were throttled together
    (AWS Architecture Blog, "Exponential Backoff And Jitter").
    """
    pick = rng or random.Random()
    for n in range(attempts):
        yield pick.uniform(0.0, min(cap, base * (2**n)))
