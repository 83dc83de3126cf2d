"""A bug in one part of the control loop is logged once with its traceback and holds up nothing else.

Issue 13 item 3: an exception in the control loop ended it (and the server). Here
the scheduler raises on every pass for a while; the loop keeps dispatching new tasks,
logs one traceback for the whole outage, and one line when the scheduler works again.
"""

from __future__ import annotations

import logging
import threading
import time

import pytest

from mayfly.core.app import Mayfly
from mayfly.core.codes import CodeOptions
from mayfly.core.scheduler import Pass
from mayfly.core.tasks import TaskOptions


def test_a_failing_scheduler_neither_stops_the_loop_nor_floods_the_log(
    mf: Mayfly, project: str, caplog: pytest.LogCaptureFixture
) -> None:
    mf.codes.register(project, "img", "mayfly-test/busybox:latest", CodeOptions(command="true"))
    broken = threading.Event()
    broken.set()
    calls = []

    def scheduler(now: float) -> Pass:
        calls.append(now)
        if broken.is_set():
            raise RuntimeError("a schedule row this version cannot read")
        return Pass()

    control = mf.control_plane()
    control.scheduler = scheduler
    stop = threading.Event()
    loop = threading.Thread(target=control.run, args=(stop,), daemon=True)
    caplog.set_level(logging.WARNING, logger="mayfly")
    loop.start()
    try:
        task = mf.tasks.queue(project, "img", "{}", TaskOptions())
        deadline = time.monotonic() + 30
        while mf.tasks.get(project, task.id).status == "queued" or len(calls) < 3:
            assert time.monotonic() < deadline, "the loop stopped dispatching"
            time.sleep(0.05)
        assert loop.is_alive()
        broken.clear()
        while not any("recovered" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline, "the scheduler outage never cleared"
            time.sleep(0.05)
    finally:
        stop.set()
        loop.join(10)

    assert mf.tasks.get(project, task.id).status == "preparing"
    scheduler_lines = [r for r in caplog.records if r.getMessage().startswith("scheduler")]
    # One line with the traceback when it broke (however many passes failed), one when it recovered.
    assert len(calls) >= 3
    assert [(r.levelno, r.exc_info is not None) for r in scheduler_lines] == [
        (logging.ERROR, True),
        (logging.WARNING, False),
    ]
    assert "a schedule row this version cannot read" in scheduler_lines[0].getMessage()
