"""The embedded queue: lease, ack, extend, redelivery after the lease expires, across processes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from mayfly.core.queues.embedded import EmbeddedBroker


def test_lease_hides_a_message_until_it_expires(tmp_path: Path) -> None:
    q = EmbeddedBroker(tmp_path / "q.db").queue("local.tasks")
    q.send("a")
    first = q.receive(1, lease=0.2)
    assert [m.body for m in first] == ["a"]
    assert q.receive(1) == []
    time.sleep(0.3)
    again = q.receive(1)
    assert [m.body for m in again] == ["a"]
    assert again[0].deliveries == 2
    # The first delivery's receipt is stale now: its ack and extend fail.
    assert q.ack(first[0]) is False
    assert q.extend(first[0], 10) is False
    assert q.ack(again[0]) is True
    assert q.depth() == 0


def test_extend_keeps_the_lease(tmp_path: Path) -> None:
    q = EmbeddedBroker(tmp_path / "q.db").queue("t")
    q.send("x")
    (m,) = q.receive(1, lease=0.2)
    assert q.extend(m, 5)
    time.sleep(0.3)
    assert q.receive(1) == []


def test_fifo_and_queues_are_separate(tmp_path: Path) -> None:
    broker = EmbeddedBroker(tmp_path / "q.db")
    a, b = broker.queue("a"), broker.queue("b")
    a.send_many(["1", "2", "3"])
    b.send("other")
    assert [m.body for m in a.receive(10)] == ["1", "2", "3"]
    assert [m.body for m in b.receive(10)] == ["other"]


def test_delay(tmp_path: Path) -> None:
    q = EmbeddedBroker(tmp_path / "q.db").queue("t")
    q.send("later", delay=0.3)
    assert q.receive(1) == []
    assert [m.body for m in q.receive(1, wait=2.0)] == ["later"]


_CONSUMER = """
import json, sys, time
from pathlib import Path
from mayfly.core.queues.embedded import EmbeddedBroker
q = EmbeddedBroker(Path(sys.argv[1])).queue("t")
got, idle_since = [], time.monotonic()
while time.monotonic() - idle_since < 1.0:
    batch = q.receive(10, wait=0.2, lease=60)
    if batch:
        idle_since = time.monotonic()
    for m in batch:
        got.append(m.body)
        q.ack(m)
print(json.dumps(got))
"""


def test_two_processes_never_receive_the_same_message(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    q = EmbeddedBroker(path).queue("t")
    q.send_many([str(i) for i in range(300)])
    procs = [
        subprocess.Popen([sys.executable, "-c", _CONSUMER, str(path)], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = [json.loads(p.communicate(timeout=60)[0]) for p in procs]
    seen = results[0] + results[1]
    assert sorted(seen, key=int) == [str(i) for i in range(300)]
    assert q.depth() == 0


def test_a_waiting_receiver_wakes_on_send(tmp_path: Path) -> None:
    import threading

    q = EmbeddedBroker(tmp_path / "q.db").queue("t")
    got: list[str] = []
    t = threading.Thread(target=lambda: got.extend(m.body for m in q.receive(1, wait=5)))
    t.start()
    time.sleep(0.1)
    q.send("ping")
    t.join(5)
    assert got == ["ping"]


_WAITER = """
import sys, time
from pathlib import Path
from mayfly.core.queues.embedded import EmbeddedBroker
q = EmbeddedBroker(Path(sys.argv[1])).queue("t")
q.max_sleep = 3600  # no looking on its own: only a wake-up can end the wait
print("ready", flush=True)
got = q.receive(1, wait=3600)
print(got[0].body, flush=True)
"""


def test_a_receiver_in_another_process_is_woken_by_the_send(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    q = EmbeddedBroker(path).queue("t")
    proc = subprocess.Popen([sys.executable, "-c", _WAITER, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(1.0)  # let it fall asleep
    q.send("wake")
    out, _ = proc.communicate(timeout=60)  # without a wake-up it would sleep for an hour
    assert out.strip() == "wake"
