"""Queueing tasks: every bad input gets a clear, typed error and stores nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from mayfly.core.app import Mayfly
from mayfly.core.codes import CodeOptions
from mayfly.core.errors import (
    CodeNotFound,
    InvalidInput,
    InvalidPayload,
    MayflyError,
    PayloadTooLarge,
    TargetNotFound,
    TaskAlreadyFinished,
    TaskNotFinished,
    TaskNotFound,
)
from mayfly.core.store import schema as s
from mayfly.core.tasks import TaskFilter, TaskOptions


@pytest.fixture
def code(mf: Mayfly, project: str) -> str:
    mf.codes.register(project, "img", "mayfly-test/busybox:latest", CodeOptions(command="true"))
    return "img"


def _counts(mf: Mayfly) -> tuple[int, int]:
    with mf.store.read() as conn:
        tasks = conn.execute(select(func.count()).select_from(s.tasks)).scalar_one()
    return tasks, mf.queues_for("local").get("tasks").depth()


@pytest.mark.parametrize(
    ("payload", "opts", "error", "message"),
    [
        ("{not json", TaskOptions(), InvalidPayload, "payload is not valid JSON: Expecting property name"),
        ('{"x": "' + "a" * 70_000 + '"}', TaskOptions(), PayloadTooLarge, "the limit is 65536 bytes"),
        ("{}", TaskOptions(priority=3), InvalidInput, "priority must be 0, 1 or 2"),
        ("{}", TaskOptions(timeout=-1), InvalidInput, "timeout must be between 1 and 86400 seconds"),
        ("{}", TaskOptions(retries=11), InvalidInput, "retries must be between 0 and 10"),
        ("{}", TaskOptions(delay=-5), InvalidInput, "delay must be between 0 and 604800 seconds"),
        ("{}", TaskOptions(target="mars"), TargetNotFound, "unknown target 'mars' (known: local)"),
        ("{}", TaskOptions(env={"MAYFLY_TASK_ID": "x"}), InvalidInput, "is reserved"),
        ("{}", TaskOptions(env={"1BAD": "x"}), InvalidInput, "invalid environment variable name '1BAD'"),
    ],
)
def test_bad_input_is_rejected_and_stores_nothing(
    mf: Mayfly, project: str, code: str, payload: str, opts: TaskOptions, error: type[MayflyError], message: str
) -> None:
    before = _counts(mf)
    with pytest.raises(error) as info:
        mf.tasks.queue(project, code, payload, opts)
    assert message in info.value.message
    assert "\n" not in info.value.message
    assert _counts(mf) == before


def test_unknown_code(mf: Mayfly, project: str) -> None:
    with pytest.raises(CodeNotFound, match="unknown code 'nope'"):
        mf.tasks.queue(project, "nope", "{}", TaskOptions())
    assert _counts(mf) == (0, 0)


def test_bulk_queue_is_all_or_nothing(mf: Mayfly, project: str, code: str) -> None:
    with pytest.raises(InvalidPayload, match="payload 3: payload is not valid JSON"):
        mf.tasks.queue_many(project, code, ["{}", "{}", "nope", "{}"], TaskOptions())
    assert _counts(mf) == (0, 0)
    tasks = mf.tasks.queue_many(project, code, [f'{{"i": {i}}}' for i in range(500)], TaskOptions(label="bulk"))
    assert len(tasks) == 500
    assert _counts(mf)[0] == 500
    assert tasks[0].id < tasks[-1].id  # ids keep queue order


def test_tasks_pin_the_revision_and_take_code_defaults(mf: Mayfly, project: str, code: str) -> None:
    mf.codes.register(
        project, code, "mayfly-test/busybox:latest", CodeOptions(timeout=99, default_priority=1, retries=2)
    )
    task = mf.tasks.queue(project, code, "{}", TaskOptions())
    assert (task.code_rev, task.timeout, task.priority, task.retries) == (2, 99, 1, 2)
    mf.codes.register(project, code, "mayfly-test/busybox:latest", CodeOptions(command="echo new"))
    assert mf.tasks.get(project, task.id).code_rev == 2
    # Unset options were inherited by revision 3.
    rev3 = mf.codes.revision(project, code)
    assert (rev3.rev, rev3.timeout, rev3.retries, rev3.command) == (3, 99, 2, "echo new")


def test_other_projects_cannot_see_a_task(mf: Mayfly, project: str, code: str) -> None:
    task = mf.tasks.queue(project, code, "{}", TaskOptions())
    other = mf.project_id("other")
    with pytest.raises(TaskNotFound):
        mf.tasks.get(other, task.id)
    with pytest.raises(TaskNotFound):
        mf.tasks.cancel(other, task.id)
    assert mf.tasks.get(project, task.id).status == "queued"


def test_cancel_a_queued_task_then_again(mf: Mayfly, project: str, code: str) -> None:
    task = mf.tasks.queue(project, code, "{}", TaskOptions())
    done = mf.tasks.cancel(project, task.id)
    assert (done.status, done.reason) == ("cancelled", "cancelled")
    with pytest.raises(TaskAlreadyFinished, match="already finished \\(cancelled\\); nothing to cancel"):
        mf.tasks.cancel(project, task.id)


def test_retry_by_hand_links_the_new_task(mf: Mayfly, project: str, code: str) -> None:
    task = mf.tasks.queue(project, code, '{"a": 1}', TaskOptions(label="x"))
    with pytest.raises(TaskNotFinished):
        mf.tasks.retry(project, task.id)
    mf.tasks.cancel(project, task.id)
    again = mf.tasks.retry(project, task.id, delay=10)
    assert (again.retry_of, again.payload, again.label, again.status) == (task.id, '{"a": 1}', "x", "queued")
    assert mf.tasks.get(project, task.id).retried_by == again.id


def test_list_filters_and_pages(mf: Mayfly, project: str, code: str) -> None:
    ids = [mf.tasks.queue(project, code, "{}", TaskOptions(label="a" if i % 2 else "b")).id for i in range(7)]
    mf.tasks.cancel(project, ids[0])
    assert [t.id for t in mf.tasks.list(project, TaskFilter(label="a"))] == [ids[5], ids[3], ids[1]]
    assert [t.id for t in mf.tasks.list(project, TaskFilter(status=["cancelled"]))] == [ids[0]]
    page1 = mf.tasks.list(project, TaskFilter(limit=4))
    page2 = mf.tasks.list(project, TaskFilter(limit=4, before=page1[-1].id))
    assert [t.id for t in page1 + page2] == ids[::-1]
    with pytest.raises(InvalidInput, match="unknown status 'done'"):
        mf.tasks.list(project, TaskFilter(status=["done"]))


def test_progress_is_kept_until_the_task_ends(mf: Mayfly, project: str, code: str) -> None:
    task = mf.tasks.queue(project, code, "{}", TaskOptions(delay=3600))
    mf.tasks.set_progress(project, task.id, 40, "working")
    mf.tasks.set_progress(project, task.id, None, "still working")  # a message alone keeps the percent
    got = mf.tasks.get(project, task.id)
    assert (got.percent, got.progress_msg) == (40, "still working")
    assert got.to_json()["percent"] == 40
    with pytest.raises(InvalidInput):
        mf.tasks.set_progress(project, task.id, 101, None)
    mf.tasks.cancel(project, task.id)
    with pytest.raises(TaskAlreadyFinished):
        mf.tasks.set_progress(project, task.id, 90, None)
    assert mf.tasks.get(project, task.id).percent == 40
