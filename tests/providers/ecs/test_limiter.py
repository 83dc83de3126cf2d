"""The launch rate limiter: a token bucket shared by threads, and jittered backoff."""

from __future__ import annotations

import random
import threading

import pytest

from mayfly.providers.ecs.limiter import TokenBucket, backoff, shared_bucket


class ManualClock:
    """Time that moves only when a caller sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []
        self.lock = threading.Lock()

    def __call__(self) -> float:
        with self.lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.slept.append(seconds)


def test_a_burst_is_free_then_callers_wait_for_the_sustained_rate() -> None:
    clock = ManualClock()
    bucket = TokenBucket(20, 100, clock=clock, sleep=clock.sleep)
    waits = [bucket.acquire() for _ in range(100)]
    assert waits == [0.0] * 100
    assert clock.slept == []
    # Beyond the burst each caller waits 1/20 s more than the previous one.
    assert [bucket.acquire() for _ in range(3)] == pytest.approx([0.05, 0.10, 0.15])
    assert clock.slept == pytest.approx([0.05, 0.10, 0.15])


def test_tokens_come_back_at_the_rate_up_to_the_burst() -> None:
    clock = ManualClock()
    bucket = TokenBucket(20, 100, clock=clock, sleep=clock.sleep)
    for _ in range(100):
        bucket.acquire()
    clock.now += 1.0
    assert bucket.available() == pytest.approx(20)
    clock.now += 3600
    assert bucket.available() == pytest.approx(100)


def test_concurrent_callers_each_get_one_token() -> None:
    clock = ManualClock()
    bucket = TokenBucket(20, 100, clock=clock, sleep=clock.sleep)
    threads = [threading.Thread(target=lambda: [bucket.acquire() for _ in range(10)]) for _ in range(15)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 150 tokens taken from a full bucket of 100: 50 reserved ahead, waited for at 20/s.
    assert bucket.available() == pytest.approx(-50)
    assert len(clock.slept) == 50
    assert max(clock.slept) == pytest.approx(50 / 20)


def test_buckets_are_shared_per_key() -> None:
    a = shared_bucket(("RunTask", "eu-west-1", "test-shared"), 20, 100)
    assert shared_bucket(("RunTask", "eu-west-1", "test-shared"), 20, 100) is a
    assert shared_bucket(("RunTask", "us-east-1", "test-shared"), 20, 100) is not a


def test_invalid_buckets_are_refused() -> None:
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(0, 1)


def test_backoff_is_bounded_full_jitter() -> None:
    delays = list(backoff(8, base=0.5, cap=20.0, rng=random.Random(1)))
    assert len(delays) == 8
    for n, d in enumerate(delays):
        assert 0 <= d <= min(20.0, 0.5 * 2**n)
