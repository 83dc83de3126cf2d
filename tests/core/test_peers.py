"""Control planes on one PostgreSQL store count each other (core/peers.py) and pace their passes by it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from bench.common import open_mayfly
from mayfly.core.app import Mayfly
from mayfly.core.peers import STALE, Peers, live
from mayfly.core.store import Store


def test_each_beat_counts_the_live_ones_and_forgets_the_quiet(pg_store: Store) -> None:
    clock = [1000.0]
    first, second = Peers(pg_store, lambda: clock[0]), Peers(pg_store, lambda: clock[0])
    assert first.beat() == 1
    assert second.beat() == 2
    assert first.beat() == 2  # a beat refreshes its own row, it adds none
    assert {p.id for p in live(pg_store, clock[0])} == {first.id, second.id}

    # The second goes quiet (kill -9): past STALE, the first's next beat removes its row.
    clock[0] += STALE + 1
    assert [p.id for p in live(pg_store, clock[0])] == []
    assert first.beat() == 1
    assert [p.id for p in live(pg_store, clock[0])] == [first.id]

    first.leave()
    assert live(pg_store, clock[0]) == []


def test_a_running_control_plane_is_listed_by_db_status_until_it_stops(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAYFLY_DATABASE_URL", pg_url)
    home = tmp_path / "home"
    mf: Mayfly = open_mayfly(home)
    mf.targets.add("null", "null", {})
    control = mf.control_plane(["null"])
    stop = threading.Event()
    loop = threading.Thread(target=control.run, args=(stop,), daemon=True)
    loop.start()
    env = {**os.environ, "MAYFLY_HOME": str(home), "MAYFLY_DATABASE_URL": pg_url}

    def status() -> dict[str, object]:
        done = subprocess.run(
            [sys.executable, "-m", "mayfly.cli", "db", "status", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return dict(json.loads(done.stdout))

    try:
        for _ in range(100):
            listed = status()["control_planes"]
            if listed:
                break
            stop.wait(0.1)
        assert isinstance(listed, list)
        assert len(listed) == 1
        assert listed[0]["pid"] == os.getpid()
        assert control.peers is not None
        assert listed[0]["id"] == control.peers.id
    finally:
        stop.set()
        loop.join(10)
        mf.close()
    assert status()["control_planes"] == []  # a clean stop removes its row at once


class _Pauses(threading.Event):
    """A stop event that records each pause of the loop and returns at once; set after ``passes`` pauses."""

    def __init__(self, passes: int) -> None:
        super().__init__()
        self.pauses: list[float] = []
        self.passes = passes

    def wait(self, timeout: float | None = None) -> bool:
        if timeout is not None and timeout > 0:
            self.pauses.append(timeout)
            if len(self.pauses) >= self.passes:
                self.set()
        return self.is_set()


@pytest.mark.parametrize("others", [0, 2])
def test_busy_passes_are_spaced_by_the_number_of_live_control_planes(
    pg_url: str, pg_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, others: int
) -> None:
    monkeypatch.setenv("MAYFLY_DATABASE_URL", pg_url)
    mf = open_mayfly(tmp_path / "home")
    mf.targets.add("null", "null", {})
    neighbours = [Peers(pg_store) for _ in range(others)]
    for peer in neighbours:
        peer.beat()
    control = mf.control_plane(["null"])
    monkeypatch.setattr(control, "step", lambda **_: 1)  # every pass finds work, none a full batch
    stop = _Pauses(passes=4)
    try:
        control.run(stop, period=1.0)
    finally:
        for peer in neighbours:
            peer.leave()
        mf.close()
    # The pause tops each pass up to period x live (this one and its neighbours), less the pass's own time.
    assert len(stop.pauses) == 4
    assert all(others + 0.5 < pause <= others + 1.0 for pause in stop.pauses), stop.pauses
