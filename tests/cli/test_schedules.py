"""Schedules from the CLI, and firing by real `mayfly server` processes: SIGKILL, faults, two servers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mayfly.cli.app import app
from mayfly.core.app import Mayfly
from mayfly.core.codes import RuntimeInfo
from mayfly.core.config import Home
from mayfly.core.serving import Serving
from mayfly.core.store import schema as s

runner = CliRunner()


def _run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def job(home: Path) -> str:
    assert _run("code", "register", "mayfly-test/busybox:latest", "--name", "job", "--command", "true")[0] == 0
    return "job"


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--cron", "61 * * * *"], "Error: invalid cron expression '61 * * * *': a value is out of range"),
        (["--cron", "* * *"], "Error: invalid cron expression '* * *': expected 5 fields"),
        (["--every", "0s"], "Error: invalid interval '0s': it must be at least 1 second"),
        (["--every", "1m", "--tz", "Nowhere/City"], "Error: unknown time zone 'Nowhere/City'"),
        (
            ["--every", "1m", "--start-at", "2030-01-02T00:00Z", "--end-at", "2030-01-01T00:00Z"],
            "Error: --end-at must be after --start-at",
        ),
        (["--at", "2001-01-01T00:00Z"], "Error: --at 2001-01-01T00:00Z is in the past"),
    ],
)
def test_bad_schedules_are_one_line_and_store_nothing(job: str, args: list[str], line: str) -> None:
    code, _, err = _run("schedule", "create", job, *args)
    assert code == 2
    assert err.startswith(line)
    assert len(err.splitlines()) == 1
    assert json.loads(_run("schedule", "list", "--json")[1]) == {"schedules": []}


def test_schedule_lifecycle(job: str) -> None:
    code, out, _ = _run("schedule", "create", job, "--cron", "30 1 * * *", "--tz", "Europe/Berlin", "--json")
    assert code == 0
    sched = json.loads(out)
    assert (sched["kind"], sched["cron"], sched["tz"], sched["status"]) == (
        "cron",
        "30 1 * * *",
        "Europe/Berlin",
        "scheduled",
    )
    assert sched["next_start"].endswith(":30:00.000Z")
    assert _run("schedule", "pause", sched["id"])[1] == f"{sched['id']} paused\n"
    assert _run("schedule", "resume", sched["id"])[1] == f"{sched['id']} scheduled\n"
    shown = json.loads(_run("schedule", "show", sched["id"], "--json")[1])
    assert (shown["run_count"], shown["error_count"], shown["tasks"], shown["skipped"]) == (0, 0, [], [])
    assert _run("schedule", "cancel", sched["id"])[0] == 0
    assert _run("schedule", "show", "nope")[2] == "Error: unknown schedule 'nope'\n"


def test_bulk_queue_from_jsonl(job: str, tmp_path: Path) -> None:
    good = tmp_path / "many.jsonl"
    good.write_text("".join(f'{{"i": {i}}}\n' for i in range(250)))
    code, out, _ = _run("task", "queue", job, "--payload-file", str(good))
    assert code == 0
    assert len(out.split()) == 250
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"i": 1}\n{"i": 2\n')
    code, _, err = _run("task", "queue", job, "--payload-file", str(bad))
    assert (code, err.splitlines()[0].startswith("Error: payload 2: payload is not valid JSON")) == (2, True)
    assert len(json.loads(_run("task", "list", "--limit", "1000", "--json")[1])["tasks"]) == 250


def test_cancel_all_tasks_of_a_code(job: str) -> None:
    for _ in range(3):
        _run("task", "queue", job)
    assert (
        _run("task", "cancel", "--code", job, "--all")[1] == f"cancelled 3 queued tasks of {job}; stopping 0 running\n"
    )
    statuses = {t["status"] for t in json.loads(_run("task", "list", "--json")[1])["tasks"]}
    assert statuses == {"cancelled"}
    assert _run("task", "cancel", "--all")[2] == "Error: use either TASK_ID or --code NAME --all\n"


# ---------------------------------------------------------------- real server processes


@contextmanager
def server(home: Path, **env: str) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mayfly.cli", "server", "--port", "0"],
        text=True,
        stderr=subprocess.PIPE,
        env={**os.environ, "MAYFLY_HOME": str(home), **env},
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(30)


def _fires(home: Path, schedule_id: str) -> tuple[list[int], list[int], int]:
    """(fired slots, skipped slots, tasks of the schedule) straight from the store."""
    mf = Mayfly(Home(home), lambda n: RuntimeInfo(n, n))
    with mf.store.read() as conn:
        rows = conn.execute(s.schedule_fires.select().where(s.schedule_fires.c.schedule_id == schedule_id)).all()
        tasks = conn.execute(s.tasks.select().where(s.tasks.c.schedule_id == schedule_id)).all()
    mf.close()
    fired = sorted(r.slot_ms for r in rows if not r.skipped)
    skipped = sorted(r.slot_ms for r in rows if r.skipped)
    return fired, skipped, len(tasks)


def _assert_each_slot_once(home: Path, schedule_id: str) -> list[int]:
    fired, skipped, tasks = _fires(home, schedule_id)
    every = sorted(fired + skipped)
    assert len(every) == len(set(every))  # no slot twice
    assert every == list(range(every[0], every[-1] + 1, 1000))  # and none left out: contiguous 1 s slots
    assert tasks == len(fired)  # one task per fired slot, none from a rolled-back firing
    return fired


def _wait_for_start(proc: subprocess.Popen[str]) -> None:
    assert proc.stderr is not None
    assert "mayfly server on" in proc.stderr.readline()


@pytest.fixture
def every_second(job: str) -> str:
    # Paused: the scheduler fires, but tasks stay queued (no containers needed to count fires).
    _run("code", "pause", job)
    code, out, _ = _run("schedule", "create", job, "--every", "1s", "--missed", "all")
    assert code == 0
    return out.strip()


@pytest.mark.docker
@pytest.mark.slow
def test_sigkill_between_slots_then_restart(home: Path, every_second: str, docker_client: object) -> None:
    with server(home) as proc:
        _wait_for_start(proc)
        time.sleep(3)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    before = _assert_each_slot_once(home, every_second)
    time.sleep(2)  # down across two slots: --missed all catches them up
    with server(home) as proc:
        _wait_for_start(proc)
        time.sleep(3)
    after = _assert_each_slot_once(home, every_second)
    assert len(after) >= len(before) + 4


@pytest.mark.docker
@pytest.mark.slow
def test_sigkill_during_a_firing_leaves_nothing_half_done(home: Path, every_second: str, docker_client: object) -> None:
    with server(home, MAYFLY_FAULTS="scheduler.after_task_insert") as proc:
        assert proc.wait(30) == -signal.SIGKILL  # killed inside its first firing transaction
    assert _fires(home, every_second) == ([], [], 0)
    with server(home) as proc:
        _wait_for_start(proc)
        time.sleep(3)
    fired = _assert_each_slot_once(home, every_second)
    assert len(fired) >= 3


@pytest.mark.docker
@pytest.mark.slow
def test_a_second_server_is_refused_and_a_standby_control_plane_takes_over_each_slot_once(
    home: Path, every_second: str, docker_client: object
) -> None:
    # Issue 13 item 1: two servers on one home used to run side by side; now the second is refused,
    # and a control plane started beside the server (as `mayfly run` does) waits, then takes over.
    mf = Mayfly(Home(home), lambda n: RuntimeInfo(n, n))
    standby = Serving(mf, ["local"], runners=False)
    try:
        with server(home) as a:
            _wait_for_start(a)
            with server(home) as b:
                assert b.wait(60) == 4
                assert b.stderr is not None
                assert "a mayfly server already runs on" in b.stderr.read()
            standby.start()
            time.sleep(3)
            a.send_signal(signal.SIGKILL)
            a.wait(10)
            killed_ms = int(time.time() * 1000)
            time.sleep(3)  # the standby fires from here on, the slots missed meanwhile too (--missed all)
    finally:
        standby.stop()
        mf.close()
    fired = _assert_each_slot_once(home, every_second)
    assert max(fired) > killed_ms  # fired by the standby: nothing else runs after the kill
