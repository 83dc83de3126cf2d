"""Several ``mayfly server`` and ``mayfly runner`` processes on one PostgreSQL store: the issue 17 fault tests.

Issue 17 parts 2 and 3: every piece of work a control plane claims (dispatch, publishing a
task message, applying events, firing a schedule slot, sending a webhook) is claimed so
exactly one process does it, and a docker target's queues in the store are served by
runners on several machines. Counted on the engine's own event stream (container starts
and deaths, per home) and in the store: each task starts once, a code's max concurrency
is never exceeded, each schedule slot is recorded once with no gap; ``kill -9`` of a
server and of a runner, a runner gone for good and a database restart lose nothing and
run nothing twice.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, text

from mayfly.cli.context import resolve_runtime
from mayfly.core.app import Mayfly
from mayfly.core.codes import CodeOptions
from mayfly.core.config import Home
from mayfly.core.homelock import runner_lock
from mayfly.core.schedules import ScheduleSpec
from mayfly.core.store import schema as s
from mayfly.core.tasks import TaskOptions
from mayfly.testing.postgres import TempCluster

pytestmark = [pytest.mark.docker, pytest.mark.slow]

SERVERS = 3
TASKS = 500
MAX_CONCURRENCY = 5
#: Each pool runner could take more than the code's limit: the limit is the control planes' to keep.
RUNNER_CAPACITY = 5
SIDE_TASKS = 4
SCHEDULES = 20
EVERY = 3
#: Short leases for the runner gone for good: three of them after its last beat, its attempts are declared lost.
LEASE = "3"
#: Where a killed runner starts again: three of these are its room to do so (a Python start on a loaded machine
#: takes seconds).
POOL_LEASE = "5"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EngineEvents:
    """Starts and deaths (or ``actions``) of one home's containers, as the engine reports them (``docker events``)."""

    def __init__(self, home_id: str, out: Path, actions: tuple[str, ...] = ("start", "die")) -> None:
        self.out = out
        with out.open("wb") as fh:
            self.proc = subprocess.Popen(
                [
                    *("docker", "events", "--format", "{{json .}}"),
                    *("--filter", f"label=mayfly.home={home_id}", "--filter", "type=container"),
                    *(arg for action in actions for arg in ("--filter", f"event={action}")),
                ],
                stdout=fh,
                stderr=subprocess.DEVNULL,
            )

    def read(self) -> list[tuple[int, str, str]]:
        """(time in ns, action ("start", "die", ...), container name), in the engine's order."""
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        rows = [json.loads(line) for line in self.out.read_text().splitlines() if line]
        return sorted((int(r["timeNano"]), r["Action"], r["Actor"]["Attributes"]["name"]) for r in rows)


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    """The largest number of intervals that overlap at one instant (an end before a start at the same time)."""
    edges = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals], key=lambda e: (e[0], e[1]))
    now = peak = 0
    for _, step in edges:
        now += step
        peak = max(peak, now)
    return peak


@contextmanager
def servers(env: dict[str, str], log_dir: Path) -> Iterator[list[tuple[subprocess.Popen[bytes], str]]]:
    procs: list[tuple[subprocess.Popen[bytes], str]] = []
    try:
        for i in range(SERVERS):
            port = free_port()
            with (log_dir / f"server{i}.log").open("wb") as log:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "mayfly.cli", "server", "--host", "127.0.0.1", "--port", str(port)],
                    env=env,
                    stdout=log,
                    stderr=log,
                )
            procs.append((proc, f"http://127.0.0.1:{port}"))
        for proc, url in procs:
            wait_until(lambda u=url, p=proc: _answers(u, p), 60, f"server {url}")  # type: ignore[misc]
        yield procs
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc, _ in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def _answers(url: str, proc: subprocess.Popen[bytes]) -> bool:
    assert proc.poll() is None, f"a server exited with {proc.returncode}"
    try:
        httpx.get(url, timeout=1)
    except httpx.TransportError:
        return False
    return True


def wait_until(pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "mayfly.cli", *args], env=env, stdout=out, stderr=out)


def _stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGINT every process still running, then wait (kill after 30 s)."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def test_three_servers_and_a_runner_pool_run_500_tasks_once_through_kills(
    pg_url: str, busybox_image: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 17, the scale test: 3 servers, 2 pool runners, 500 tasks, 20 schedules; a server and a runner killed.

    Three servers share one home (one machine: their embedded runner of ``local`` is one,
    behind the home's runner lock) and one database; two ``mayfly runner --target pool``
    (two homes, as two machines) serve the docker target ``pool``. 500 tasks of a code with
    max concurrency 5 run on the pool (``true``: the fastest honest task), a few ``sleep``
    tasks on ``local``, and 20 schedules every few seconds fire a paused code. After a
    quarter of the pool's tasks, ``kill -9`` of the server holding the ``local`` runner
    lock (its tasks running) and of one pool runner, which starts again at once (as systemd
    would restart it). Counted on the engine (its event stream, per home) and in the store:
    every task ends once, complete, with one container ever started; never more than 5
    containers of the code alive at once; every schedule slot recorded once with no gap.
    """
    server_home, machines = tmp_path / "server", [tmp_path / "machine1", tmp_path / "machine2"]
    base = {**os.environ, "MAYFLY_DATABASE_URL": pg_url, "MAYFLY_LEASE_SECONDS": POOL_LEASE}
    base.pop("MAYFLY_URL", None)
    env = {**base, "MAYFLY_HOME": str(server_home)}
    monkeypatch.setenv("MAYFLY_HOME", str(server_home))
    monkeypatch.setenv("MAYFLY_DATABASE_URL", pg_url)
    mf = Mayfly(Home(server_home), resolve_runtime)
    pid = mf.project_id()
    mf.targets.add("pool", "docker", {}, capacity=2 * RUNNER_CAPACITY, embedded_runner=False)
    mf.codes.register(
        pid, "job", busybox_image, CodeOptions(command="true", max_concurrency=MAX_CONCURRENCY, target="pool")
    )
    # Long enough for all of them to run at once when the kill comes, however slow the launches.
    mf.codes.register(pid, "side", busybox_image, CodeOptions(command="sleep 10"))
    # The schedules' code is paused: its fired tasks wait queued, so the slots are counted without containers.
    mf.codes.register(pid, "tick", busybox_image, CodeOptions(command="true"))
    mf.codes.set_paused(pid, "tick", True)
    # From its creation to its death a container is inside its task's slot (dispatch to the exit applied), so
    # those windows, not only the few milliseconds `true` runs, never overlap more than the code's limit.
    lives = ("create", "start", "die", "destroy")
    pool_engines = [EngineEvents(Home(h).id, tmp_path / f"events-{i}.jsonl", lives) for i, h in enumerate(machines)]
    local_engine = EngineEvents(mf.home_id, tmp_path / "events-local.jsonl")
    pool = ["runner", "--target", "pool", "--capacity", str(RUNNER_CAPACITY)]
    runner_env = [{**base, "MAYFLY_HOME": str(h)} for h in machines]
    runners = [_start(pool, e, tmp_path / f"runner{i}.log") for i, e in enumerate(runner_env)]

    with contextlib.ExitStack() as stack:
        stack.callback(_stop_all, runners)
        procs = stack.enter_context(servers(env, tmp_path))
        began = time.monotonic()
        for _ in range(SCHEDULES):
            mf.schedules.create(pid, "tick", ScheduleSpec(every=f"{EVERY}s"))
        ids = [t.id for t in mf.tasks.queue_many(pid, "job", ["{}"] * TASKS, TaskOptions())]
        ended = ("complete", "error", "timeout", "cancelled")

        def count(which: list[str], statuses: tuple[str, ...] = ended) -> int:
            with mf.store.read() as conn:
                rows = conn.execute(select(s.tasks.c.status).where(s.tasks.c.id.in_(which))).scalars().all()
            return sum(1 for st in rows if st in statuses)

        wait_until(lambda: count(ids) >= TASKS // 4, 300, "a quarter of the tasks")
        side = [t.id for t in mf.tasks.queue_many(pid, "side", ["{}"] * SIDE_TASKS, TaskOptions())]
        wait_until(lambda: count(side, ("running",)) == SIDE_TASKS, 60, "the local tasks running")
        # Mid-run: kill -9 the server whose runner runs the local containers (the one holding the runner lock),
        # and a pool runner.
        holder = json.loads(runner_lock(server_home, "local").path.read_text())["pid"]
        (victim,) = [proc for proc, _ in procs if proc.pid == holder]
        for proc in (victim, runners[0]):
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        killed_at = time.monotonic()
        at_kill = count(ids)
        # Started again at once (systemd's Restart=always): it must beat again within three leases of its last
        # beat, or the other machine declares its attempts lost and runs them again.
        runners.append(_start(pool, runner_env[0], tmp_path / "runner0.log"))
        wait_until(lambda: count(ids) == TASKS and count(side) == SIDE_TASKS, 600, "every task to end")
        took = time.monotonic() - began
        print(
            f"\n{TASKS} tasks on {SERVERS} servers and 2 runners in {took:.1f}s ({TASKS / took:.1f}/s); "
            f"{at_kill} had ended at the kill, the rest ended {time.monotonic() - killed_at:.1f}s after it"
        )
        time.sleep(EVERY)  # one more slot for the schedules, fired by the survivors
    pool_events = sorted(pool_engines[0].read() + pool_engines[1].read())
    local_events = local_engine.read()

    with mf.store.read() as conn:
        tasks = conn.execute(select(s.tasks).where(s.tasks.c.id.in_(ids + side))).mappings().all()
        ends = (
            conn.execute(select(s.events.c.task_id).where(s.events.c.kind == "exited", s.events.c.applied.is_(True)))
            .scalars()
            .all()
        )
        fires = conn.execute(select(s.schedule_fires)).mappings().all()
        fired_tasks = conn.execute(select(s.tasks.c.id).where(s.tasks.c.code_name == "tick")).all()
    mf.close()

    # Every task ended once, complete: one exit applied to each.
    assert Counter((t["code_name"], t["status"], t["exit_code"]) for t in tasks) == Counter(
        {("job", "complete", 0): TASKS, ("side", "complete", 0): SIDE_TASKS}
    ), [(t["id"], t["status"], t["reason"], t["msg"], t["attempt"]) for t in tasks if t["status"] != "complete"]
    assert Counter(ends) == Counter({t["id"]: 1 for t in tasks})
    # The engine started one container per task, its last attempt's, once (an attempt whose launch a kill cut short,
    # before its container existed, is relaunched as the next attempt); both machines ran some.
    expected = {f"mayfly-{t['id']}-{t['attempt']}": 1 for t in tasks}
    starts = Counter(name for _, action, name in pool_events + local_events if action == "start")
    assert starts == Counter(expected)
    assert all(any(a == "start" for _, a, _n in e.read()) for e in pool_engines)
    # Never more than MAX_CONCURRENCY containers of the code alive (created, not yet dead) at once on the engine, both
    # machines together (a container created but never started, its launch cut short by the kill, ends destroyed) ...
    alive: set[str] = set()
    peak = 0
    for _, action, name in pool_events:
        if action == "create":
            alive.add(name)
        elif action in ("die", "destroy"):
            alive.discard(name)
        peak = max(peak, len(alive))
    assert 0 < peak <= MAX_CONCURRENCY
    # ... and so says the store: the tasks' running intervals never overlap more than that.
    intervals = [(t["start_time"], t["end_time"]) for t in tasks if t["code_name"] == "job"]
    assert most_at_once(intervals) <= MAX_CONCURRENCY
    print(f"at most {peak} at once on the engine; attempts {Counter(t['attempt'] for t in tasks)}")

    # Each slot of each schedule is recorded once (fired or skipped), with no slot missing between them, and each
    # fired slot queued exactly one task.
    by_schedule: dict[str, list[int]] = {}
    for f in fires:
        by_schedule.setdefault(f["schedule_id"], []).append(f["slot_ms"])
    assert len(by_schedule) == SCHEDULES
    for slots in by_schedule.values():
        slots.sort()
        assert len(slots) >= 3, slots
        assert [b - a for a, b in itertools.pairwise(slots)] == [EVERY * 1000] * (len(slots) - 1)
    fired = {f["task_id"] for f in fires if f["task_id"] is not None}
    assert {i for (i,) in fired_tasks} == fired
    assert len(fired) == sum(1 for f in fires if not f["skipped"])
    print(f"{len(fires)} schedule slots, each once")

    for log in [f"server{i}.log" for i in range(SERVERS)] + ["runner0.log", "runner1.log"]:
        text = (tmp_path / log).read_text()
        assert "Traceback" not in text, text
        assert "stopped with an error" not in text, text


POOL_TASKS = 12


def test_a_pool_of_runners_on_two_machines_serves_one_docker_target(
    pg_url: str, busybox_image: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 17 part 3: two runners (two homes, as two machines) serve the target `pool` from the store's queues.

    The engine is shared here, but each runner sees only its own home's containers, as on two
    machines. One runner is killed with -9 mid-run and started again: the other hands the
    dead one's tasks back to it (its heartbeat is fresh), and it reattaches its containers.
    Every task's container runs once.
    """
    server_home, homes = tmp_path / "server", [tmp_path / "machine1", tmp_path / "machine2"]
    # A runner counts as alive for three leases after its last beat: room for the killed one to start again.
    base = {**os.environ, "MAYFLY_DATABASE_URL": pg_url, "MAYFLY_LEASE_SECONDS": POOL_LEASE}
    base.pop("MAYFLY_URL", None)
    monkeypatch.setenv("MAYFLY_DATABASE_URL", pg_url)
    mf = Mayfly(Home(server_home), resolve_runtime)
    pid = mf.project_id()
    mf.targets.add("pool", "docker", {}, capacity=6, embedded_runner=False)
    mf.codes.register(pid, "job", busybox_image, CodeOptions(command="sleep 3", target="pool"))
    engines = [EngineEvents(Home(h).id, tmp_path / f"events-{i}.jsonl") for i, h in enumerate(homes)]

    procs = [_start(["server", "--port", "0"], {**base, "MAYFLY_HOME": str(server_home)}, tmp_path / "server.log")]
    runner_env = [{**base, "MAYFLY_HOME": str(h)} for h in homes]
    pool = ["runner", "--target", "pool", "--capacity", "3"]  # the target's 6, shared by the two machines
    runners = [_start(pool, e, tmp_path / f"runner{i}.log") for i, e in enumerate(runner_env)]
    try:
        ids = [t.id for t in mf.tasks.queue_many(pid, "job", ["{}"] * POOL_TASKS, TaskOptions())]

        def count(*statuses: str) -> int:
            with mf.store.read() as conn:
                rows = conn.execute(select(s.tasks.c.status).where(s.tasks.c.id.in_(ids))).scalars().all()
            return sum(1 for st in rows if st in statuses)

        def started_on(i: int) -> int:
            return sum('"start"' in line for line in engines[i].out.read_text().splitlines())

        wait_until(lambda: started_on(0) >= 1 and started_on(1) >= 1, 120, "both machines to run tasks")
        runners[0].send_signal(signal.SIGKILL)
        runners[0].wait(10)
        # The other machine receives the dead runner's messages once their lease ends, and hands them back: that
        # runner beat within three leases. Then it comes back (within those three leases) and reattaches.
        handed_back = "which is alive; leaving it to that runner"
        wait_until(lambda: handed_back in (tmp_path / "runner1.log").read_text(), 60, "a message handed back")
        runners.append(_start(pool, runner_env[0], tmp_path / "runner0.log"))
        wait_until(lambda: count("complete", "error", "timeout", "cancelled") == POOL_TASKS, 180, "every task")
    finally:
        for proc in procs + runners:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in procs + runners:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
    with mf.store.read() as conn:
        tasks = conn.execute(select(s.tasks).where(s.tasks.c.id.in_(ids))).mappings().all()
    mf.close()
    per_engine = [Counter(name for _, action, name in e.read() if action == "start") for e in engines]

    assert Counter((t["status"], t["exit_code"]) for t in tasks) == Counter({("complete", 0): POOL_TASKS}), [
        (t["id"], t["status"], t["reason"], t["msg"], t["attempt"]) for t in tasks
    ]
    # One container per task started, once, on one of the two machines (its last attempt's: an attempt whose
    # launch the kill cut short before the container existed is relaunched), and both machines took tasks.
    assert per_engine[0] + per_engine[1] == Counter({f"mayfly-{t['id']}-{t['attempt']}": 1 for t in tasks})
    assert not set(per_engine[0]) & set(per_engine[1])
    assert all(per_engine)
    for log in ["server.log", "runner0.log", "runner1.log"]:
        text = (tmp_path / log).read_text()
        assert "Traceback" not in text, text


OUTAGE = re.compile(r"WARNING mayfly\.\w+: (.+) unavailable, retrying")
RECOVERED = re.compile(r"WARNING mayfly\.\w+: (.+) recovered after")


def test_a_database_restart_under_two_servers_and_a_runner_loses_nothing(
    postgres: TempCluster, pg_url: str, busybox_image: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL restarted while tasks run and end under two servers and a pool runner.

    Every loop of every process (control planes, schedulers, event appliers, webhook
    deliverers, the ``local`` runner of the server holding its lock, the pool runner, its
    heartbeat and attempts) waits, logs one line when the outage starts and one when it
    recovers; every task of both targets completes once on its first attempt, one container each.
    """
    server_home, machine = tmp_path / "server", tmp_path / "machine"
    base = {**os.environ, "MAYFLY_DATABASE_URL": pg_url}
    base.pop("MAYFLY_URL", None)
    base.pop("MAYFLY_LEASE_SECONDS", None)
    monkeypatch.setenv("MAYFLY_DATABASE_URL", pg_url)
    mf = Mayfly(Home(server_home), resolve_runtime)
    pid = mf.project_id()
    mf.targets.add("pool", "docker", {}, capacity=4, embedded_runner=False)
    mf.codes.register(pid, "job", busybox_image, CodeOptions(command="sleep 5"))
    mf.codes.register(pid, "pooljob", busybox_image, CodeOptions(command="sleep 5", target="pool"))
    engines = [EngineEvents(Home(h).id, tmp_path / f"events-{i}.jsonl") for i, h in enumerate([server_home, machine])]
    logs = [tmp_path / "server0.log", tmp_path / "server1.log", tmp_path / "runner.log"]
    procs = [_start(["server", "--port", "0"], {**base, "MAYFLY_HOME": str(server_home)}, log) for log in logs[:2]]
    procs.append(_start(["runner", "--target", "pool"], {**base, "MAYFLY_HOME": str(machine)}, logs[2]))
    try:
        ids = [t.id for t in mf.tasks.queue_many(pid, "job", ["{}"] * 3, TaskOptions())]
        ids += [t.id for t in mf.tasks.queue_many(pid, "pooljob", ["{}"] * 3, TaskOptions())]

        def statuses() -> list[str]:
            with mf.store.read() as conn:
                return list(conn.execute(select(s.tasks.c.status).where(s.tasks.c.id.in_(ids))).scalars())

        wait_until(lambda: statuses() == ["running"] * len(ids), 120, "tasks running")
        postgres.stop(remove=False)
        down = time.monotonic()
        time.sleep(6)  # the tasks end meanwhile: their reports wait for the database
        postgres.restart()
        wait_until(lambda: statuses() == ["complete"] * len(ids), 120, "tasks complete")
        print(f"\nevery task complete {time.monotonic() - down:.1f}s after the database went down (6 s)")
    finally:
        _stop_all(procs)
    starts = Counter(name for e in engines for _, action, name in e.read() if action == "start")
    with mf.store.read() as conn:
        attempts = conn.execute(select(s.tasks.c.attempt).where(s.tasks.c.id.in_(ids))).scalars().all()
    mf.close()
    assert attempts == [1] * len(ids)
    assert starts == Counter({f"mayfly-{i}-1": 1 for i in ids})
    for log in logs:
        text = log.read_text()
        started = OUTAGE.findall(text)
        assert started, f"the outage reached no loop of {log.name}:\n{text}"
        assert len(started) == len(set(started)), f"an outage was logged more than once:\n{text}"
        assert sorted(RECOVERED.findall(text)) == sorted(started), text
        assert "Traceback" not in text, text
        print(f"{log.name}: {', '.join(sorted(started))}")


def test_a_runner_gone_for_good_leaves_its_tasks_lost_and_relaunched_elsewhere(
    pg_url: str, busybox_image: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 17 part 3: a pool runner killed and never restarted: three leases after its last beat, the other
    machine declares its attempts lost and they run again there, each after the old container was gone."""
    server_home, homes = tmp_path / "server", [tmp_path / "machine1", tmp_path / "machine2"]
    base = {**os.environ, "MAYFLY_DATABASE_URL": pg_url, "MAYFLY_LEASE_SECONDS": LEASE}
    base.pop("MAYFLY_URL", None)
    monkeypatch.setenv("MAYFLY_DATABASE_URL", pg_url)
    mf = Mayfly(Home(server_home), resolve_runtime)
    pid = mf.project_id()
    mf.targets.add("pool", "docker", {}, capacity=4, embedded_runner=False)
    mf.codes.register(pid, "job", busybox_image, CodeOptions(command="sleep 2", target="pool"))
    home_ids = [Home(h).id for h in homes]
    engines = [EngineEvents(hid, tmp_path / f"events-{i}.jsonl") for i, hid in enumerate(home_ids)]
    procs = [_start(["server", "--port", "0"], {**base, "MAYFLY_HOME": str(server_home)}, tmp_path / "server.log")]
    pool = ["runner", "--target", "pool", "--capacity", "2"]
    runners = [_start(pool, {**base, "MAYFLY_HOME": str(h)}, tmp_path / f"runner{i}.log") for i, h in enumerate(homes)]
    try:
        ids = [t.id for t in mf.tasks.queue_many(pid, "job", ["{}"] * 6, TaskOptions())]

        def ended() -> int:
            with mf.store.read() as conn:
                rows = conn.execute(select(s.tasks.c.status).where(s.tasks.c.id.in_(ids))).scalars().all()
            return sum(1 for st in rows if st in ("complete", "error", "timeout", "cancelled"))

        wait_until(lambda: '"start"' in engines[0].out.read_text(), 120, "machine 1 to run a task")
        runners[0].send_signal(signal.SIGKILL)
        runners[0].wait(10)
        killed = time.monotonic()
        wait_until(lambda: ended() == len(ids), 180, "every task")
        print(f"\nthe dead runner's tasks all ended {time.monotonic() - killed:.1f}s after the kill")
    finally:
        for proc in procs + runners:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in procs + runners:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        # Machine 1's runner never came back to sweep its containers: remove them (this test made them).
        subprocess.run(
            ["sh", "-c", f"docker ps -aq --filter label=mayfly.home={home_ids[0]} | xargs -r docker rm -f"],
            check=False,
            capture_output=True,
        )
    with mf.store.read() as conn:
        tasks = conn.execute(select(s.tasks).where(s.tasks.c.id.in_(ids))).mappings().all()
        lost = conn.execute(select(s.events.c.task_id).where(s.events.c.kind == "lost")).scalars().all()
    mf.close()
    events = sorted(engines[0].read() + engines[1].read())

    assert Counter((t["status"], t["exit_code"]) for t in tasks) == Counter({("complete", 0): len(ids)})
    assert lost, "no attempt of the dead runner was declared lost"
    relaunched = {t["id"] for t in tasks if t["attempt"] > 1}
    assert set(lost) <= relaunched
    # Every container started once, and an attempt's container only after the previous attempt's was gone.
    assert all(n == 1 for n in Counter(name for _, action, name in events if action == "start").values())
    alive: set[str] = set()
    for _, action, name in events:
        task = name.split("-")[1]
        if action == "start":
            assert task not in alive, f"two containers of task {task} ran at once"
            alive.add(task)
        else:
            alive.discard(task)


def test_a_server_paused_holding_a_targets_events_holds_them_only_until_its_transaction_is_ended(
    pg_url: str,
    busybox_image: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    process_stopped: Callable[[subprocess.Popen[bytes]], bool],
) -> None:
    """A server stopped (SIGSTOP) between taking a target's events and applying them.

    It holds the target's events claim and the events' rows in an open transaction.
    PostgreSQL ends that transaction after ``MAYFLY_STATEMENT_TIMEOUT``
    (``idle_in_transaction_session_timeout``); then another server applies the events, and
    the task completes on its first attempt, its container started once.
    """
    machine = tmp_path / "machine"
    base = {**os.environ, "MAYFLY_DATABASE_URL": pg_url, "MAYFLY_STATEMENT_TIMEOUT": "3"}
    base.pop("MAYFLY_URL", None)
    monkeypatch.setenv("MAYFLY_DATABASE_URL", pg_url)
    mf = Mayfly(Home(tmp_path / "server-a"), resolve_runtime)
    pid = mf.project_id()
    mf.targets.add("pool", "docker", {}, capacity=2, embedded_runner=False)
    mf.codes.register(pid, "job", busybox_image, CodeOptions(command="echo hi", target="pool"))
    engine = EngineEvents(Home(machine).id, tmp_path / "events.jsonl")
    paused_env = {**base, "MAYFLY_HOME": str(tmp_path / "server-a"), "MAYFLY_FAULTS": "control.events_taken:stop"}
    paused = _start(["server", "--port", "0"], paused_env, tmp_path / "server-a.log")
    procs = [paused, _start(["runner", "--target", "pool"], {**base, "MAYFLY_HOME": str(machine)}, tmp_path / "r.log")]
    try:
        task = mf.tasks.queue(pid, "job", "{}", TaskOptions())
        wait_until(lambda: process_stopped(paused), 120, "the server to stop itself holding the events")
        assert mf.tasks.get(pid, task.id).status in ("preparing", "running")
        other = {**base, "MAYFLY_HOME": str(tmp_path / "server-b")}
        procs.append(_start(["server", "--port", "0"], other, tmp_path / "server-b.log"))
        wait_until(lambda: mf.tasks.get(pid, task.id).status == "complete", 120, "the other server to apply them")
    finally:
        if paused.poll() is None:
            paused.send_signal(signal.SIGCONT)
        _stop_all(procs)
    done = mf.tasks.get(pid, task.id)
    mf.close()
    assert (done.attempt, done.exit_code) == (1, 0)
    starts = Counter(name for _, action, name in engine.read() if action == "start")
    assert starts == Counter({f"mayfly-{task.id}-1": 1})


def test_a_paused_runner_holds_back_the_notification_queue_until_it_reads_again(
    pg_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    process_stopped: Callable[[subprocess.Popen[bytes]], bool],
) -> None:
    """What docs/scale.md says of a process paused while it listens (SIGSTOP, a frozen VM).

    PostgreSQL keeps every notification for it (the sends of every machine), so its
    notification queue grows while the process is stopped; once it runs again, its relay
    reads them and the queue is freed.
    """
    monkeypatch.setenv("MAYFLY_DATABASE_URL", pg_url)
    mf = Mayfly(Home(tmp_path / "server"), resolve_runtime)
    mf.targets.add("pool", "docker", {}, capacity=1, embedded_runner=False)
    env = {**os.environ, "MAYFLY_DATABASE_URL": pg_url, "MAYFLY_HOME": str(tmp_path / "machine")}
    env.pop("MAYFLY_URL", None)
    runner = _start(["runner", "--target", "pool"], env, tmp_path / "runner.log")

    def usage() -> float:
        with mf.store.read() as conn:
            conn.execute(text("SELECT pg_notify('mayfly_queues', 'probe')"))  # lets the queue's tail move on
            return float(conn.execute(text("SELECT pg_notification_queue_usage()")).scalar_one())

    def listening() -> bool:
        with mf.store.read() as conn:
            query = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN mayfly_queues%'"
            return bool(conn.execute(text(query)).scalar_one())

    try:
        wait_until(listening, 60, "the runner's relay to listen")
        runner.send_signal(signal.SIGSTOP)
        wait_until(lambda: process_stopped(runner), 10, "the runner to stop")
        # Sends from the other machines: more notifications than the paused process's socket can buffer.
        sends = "SELECT pg_notify('mayfly_queues', 'pool.tasks-' || g) FROM generate_series(1, 300000) g"
        with mf.store.write() as conn:
            conn.execute(text(sends))
        held = usage()
        assert held > 0, "the queue did not grow behind the paused listener"
        runner.send_signal(signal.SIGCONT)
        wait_until(lambda: usage() == 0.0, 120, "the resumed runner to read its notifications")
    finally:
        if runner.poll() is None:
            runner.send_signal(signal.SIGCONT)
        _stop_all([runner])
        mf.close()
    print(f"\nnotification queue held back by the paused runner: {held:.6f} of its maximum")
