"""The request bodies of ``/v1`` and the core's option types stay in step (the remote CLI sends one as the other)."""

from __future__ import annotations

from dataclasses import fields

import pytest
from pydantic import BaseModel

from mayfly.api.v1.models import CodeFields, ScheduleCreate, TaskFields
from mayfly.core.codes import CodeOptions
from mayfly.core.schedules import ScheduleSpec
from mayfly.core.tasks import TaskOptions


@pytest.mark.parametrize(
    ("core", "body", "extra", "core_only"),
    [
        (TaskOptions, TaskFields, set(), set()),
        (CodeOptions, CodeFields, set(), set()),
        # text_payload: IronWorker's any-text payload, set by /2 only (/v1 takes JSON; the remote CLI drops it).
        (ScheduleSpec, ScheduleCreate, {"code_name"}, {"text_payload"}),
    ],
)
def test_every_core_option_has_a_body_field(
    core: type, body: type[BaseModel], extra: set[str], core_only: set[str]
) -> None:
    """A new core option the API lacks would make the remote CLI's requests fail with 'extra inputs'."""
    assert {f.name for f in fields(core)} - core_only == set(body.model_fields) - extra


@pytest.mark.parametrize("body", [TaskFields, CodeFields, ScheduleCreate])
def test_bodies_forbid_unknown_fields(body: type[BaseModel]) -> None:
    assert body.model_config.get("extra") == "forbid"
    assert body.model_config.get("strict") is True
