"""Two control planes on one PostgreSQL store claim their work: a slot is filled once, a message sent once.

Issue 17 part 2. Each test runs the real dispatch / publish of two control planes (two
stores, two connection pools, as two processes have) against a real PostgreSQL, and
holds the first one at the worst moment (after it counted the free slots; after it read
the pending tasks) while the second runs a whole pass. Without the claims the second
filled the same slots again (10 tasks of a code with max concurrency 5) and sent the same
task messages again.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from mayfly.core.app import Mayfly
from mayfly.core.codes import CodeOptions, RuntimeResolver
from mayfly.core.config import Home, Limits
from mayfly.core.queues import Queue
from mayfly.core.router import dispatch, publish
from mayfly.core.store import Store, now
from mayfly.core.store import schema as s
from mayfly.core.tasks import TaskOptions

MAX = 5


@pytest.fixture
def setup(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, resolver: RuntimeResolver
) -> Iterator[tuple[Mayfly, str]]:
    monkeypatch.setenv("MAYFLY_DATABASE_URL", pg_url)
    mf = Mayfly(Home(tmp_path / "home"), resolver)
    project = mf.project_id()
    mf.codes.register(project, "job", "mayfly-test/busybox:latest", CodeOptions(command="true", max_concurrency=MAX))
    mf.tasks.queue_many(project, "job", ["{}"] * 20, TaskOptions())
    yield mf, pg_url
    mf.close()


def _held(first: Callable[[Callable[[], None]], object], second: Callable[[], object]) -> tuple[object, object]:
    """Run ``first`` in a thread until it calls its pause hook, run ``second`` to the end, then let ``first`` go."""
    paused, resume = threading.Event(), threading.Event()
    out: dict[str, object] = {}

    def pause() -> None:
        paused.set()
        assert resume.wait(30)

    def body() -> None:
        try:
            out["first"] = first(pause)
        except BaseException as exc:  # reported below
            out["first"] = exc

    thread = threading.Thread(target=body)
    thread.start()
    assert paused.wait(30), out
    try:
        out["second"] = second()
    finally:
        resume.set()
        thread.join(30)
    return out["first"], out["second"]


def test_two_dispatchers_never_exceed_max_concurrency(setup: tuple[Mayfly, str]) -> None:
    mf, url = setup
    a, b = Store(url), Store(url)

    def first(pause: Callable[[], None]) -> object:
        return dispatch(a, {"local": 100}, now(), on_fault=lambda point: pause() if point == "router.counted" else None)

    chosen_a, chosen_b = _held(first, lambda: dispatch(b, {"local": 100}, now()))
    assert not isinstance(chosen_a, BaseException), chosen_a
    with mf.store.read() as conn:
        active = conn.execute(select(func.count()).where(text(s.ACTIVE)).select_from(s.tasks)).scalar_one()
    assert active == MAX
    assert len(chosen_a) + len(chosen_b) == MAX  # type: ignore[arg-type]
    a.close()
    b.close()


class Recorder(Queue):
    """A queue that keeps what was sent (publish's only use of a queue is ``send_many``)."""

    name = "recorder"

    def __init__(self, sent: list[str], before: Callable[[], None] = lambda: None) -> None:
        self.sent = sent
        self.before = before

    def send(self, body: str, *, delay: float = 0.0) -> str:
        return self.send_many([body])[0]

    def send_many(self, bodies: object) -> list[str]:  # type: ignore[override]
        self.before()
        self.sent.extend(bodies)  # type: ignore[arg-type]
        return [str(i) for i, _ in enumerate(bodies)]  # type: ignore[arg-type]

    def receive(self, max_messages: int = 1, *, wait: float = 0.0, lease: float = 30.0) -> list:  # type: ignore[type-arg]
        raise NotImplementedError

    def ack(self, message: object) -> bool:  # type: ignore[override]
        raise NotImplementedError

    def extend(self, message: object, lease: float) -> bool:  # type: ignore[override]
        raise NotImplementedError

    def depth(self) -> int:
        return len(self.sent)


def test_two_publishers_send_each_task_message_once(setup: tuple[Mayfly, str]) -> None:
    mf, url = setup
    assert len(dispatch(mf.store, {"local": 100}, now())) == MAX
    a, b = Store(url), Store(url)
    sent: list[str] = []

    def first(pause: Callable[[], None]) -> object:
        return publish(a, lambda _t: Recorder(sent, pause), Limits())

    published_a, published_b = _held(first, lambda: publish(b, lambda _t: Recorder(sent), Limits()))
    assert not isinstance(published_a, BaseException), published_a
    assert (published_a, published_b) == (MAX, 0)
    per_task = Counter(json.loads(body)["task_id"] for body in sent)
    assert len(per_task) == MAX
    assert set(per_task.values()) == {1}
    with mf.store.read() as conn:
        assert conn.execute(select(func.count()).where(s.tasks.c.dispatch_pending.is_(True))).scalar_one() == 0
    a.close()
    b.close()
