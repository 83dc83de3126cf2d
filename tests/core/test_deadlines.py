"""The runner's one timer thread: deadlines fire once, in order, unless discarded; the thread ends when idle."""

from __future__ import annotations

import threading
import time

from mayfly.core.deadlines import Deadlines


def _until(check: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def _timer_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "test-deadlines")


def test_deadlines_fire_in_order_of_their_time_not_of_their_adding() -> None:
    fired: list[str] = []
    timer = Deadlines(name="test-deadlines")
    now = time.time()
    timer.add(now + 0.3, lambda: fired.append("third"))
    timer.add(now + 0.1, lambda: fired.append("first"))  # sooner than what the thread sleeps towards
    timer.add(now + 0.2, lambda: fired.append("second"))
    _until(lambda: len(fired) == 3)
    assert fired == ["first", "second", "third"]
    _until(lambda: _timer_threads() == 0)  # nothing left: the thread is gone


def test_a_discarded_deadline_is_never_called() -> None:
    fired: list[str] = []
    timer = Deadlines(name="test-deadlines")
    now = time.time()
    dropped = timer.add(now + 0.1, lambda: fired.append("dropped"))
    timer.add(now + 0.2, lambda: fired.append("kept"))
    timer.discard(dropped)
    _until(lambda: fired == ["kept"])
    time.sleep(0.1)
    assert fired == ["kept"]
    timer.discard(dropped)  # twice, or after it fired: fine


def test_the_clock_is_the_one_given() -> None:
    """The runner passes its own clock; a deadline is reached when that clock says so."""
    now = [1000.0]
    fired = threading.Event()
    timer = Deadlines(clock=lambda: now[0], name="test-deadlines")
    timer.add(1060.0, fired.set)
    assert not fired.wait(0.2)
    now[0] = 1060.0
    timer.add(2000.0, lambda: None)  # any add wakes the thread only if sooner; the nap bounds the rest
    assert fired.wait(6.0)


def test_many_forgotten_deadlines_do_not_pile_up() -> None:
    """Short tasks with hour-long timeouts discard nearly every deadline they add."""
    timer = Deadlines(name="test-deadlines")
    far = time.time() + 3600
    kept = timer.add(far, lambda: None)
    for _ in range(10_000):
        timer.discard(timer.add(far, lambda: None))
    assert timer.pending() == 1
    assert len(timer._heap) <= 130  # rebuilt once forgotten entries are most of it
    timer.discard(kept)


def test_a_failing_callback_does_not_stop_the_others() -> None:
    fired = threading.Event()
    timer = Deadlines(name="test-deadlines")
    now = time.time()

    def boom() -> None:
        raise RuntimeError("a bug")

    timer.add(now + 0.05, boom)
    timer.add(now + 0.1, fired.set)
    assert fired.wait(5.0)
