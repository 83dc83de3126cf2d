"""Records built from full store rows are the same objects ``__init__`` builds (``_Row.from_row``'s fast path)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from mayfly.core.app import Mayfly
from mayfly.core.codes import CodeOptions, RuntimeInfo
from mayfly.core.config import Home
from mayfly.core.records import Task
from mayfly.core.tasks import TaskOptions


def test_a_task_read_from_the_store_equals_one_built_by_init(home: Path) -> None:
    mf = Mayfly(Home(home), lambda name: RuntimeInfo(name, name, None))
    try:
        pid = mf.project_id()
        mf.codes.register(pid, "hello", "none", CodeOptions(command="true"))
        queued = mf.tasks.queue_many(pid, "hello", ['{"a": 1}'], TaskOptions(label="x"))
        task = mf.tasks.get(pid, queued[0].id)
    finally:
        mf.close()
    built = Task(**{f.name: getattr(task, f.name) for f in dataclasses.fields(Task)})
    assert task == built
    assert hash(task) == hash(built)
    assert repr(task) == repr(built)
    assert task.payload == '{"a": 1}'
    assert task.label == "x"
    assert task.task_status.value == "queued"
    with pytest.raises(dataclasses.FrozenInstanceError):
        task.status = "running"  # type: ignore[misc]
    assert dataclasses.replace(task, status="running").status == "running"
    # A partial row still goes through __init__ (its defaults fill the rest).
    partial = {f.name: getattr(task, f.name) for f in dataclasses.fields(Task) if f.default is dataclasses.MISSING}
    assert Task.from_row(partial) == dataclasses.replace(
        task, percent=None, progress_msg=None, secrets=None, placement=None
    )
