"""Request bodies of the ``/v1`` API.

Every model forbids unknown fields, so a body that tries to set what the server
owns (``id``, ``project_id``, ``status``, ``attempts``, ``result``, ``exit_code``,
``run_count``, ...) is refused with 400 naming the field, and nothing is stored
(OWASP API3, mass assignment). The project always comes from the token.

Payloads are JSON values: a string is taken as the payload's JSON text (what the
CLI's ``--payload`` sends), any other value is serialised.
"""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from mayfly.core.codes import CodeOptions
from mayfly.core.errors import InvalidInput
from mayfly.core.schedules import ScheduleSpec
from mayfly.core.tasks import TaskOptions

M = TypeVar("M", bound=BaseModel)

#: Most payloads one bulk request may queue (OWASP API4: operations per request).
MAX_BULK = 1000


class Body(BaseModel):
    """Base of every request body: unknown fields are errors, types are not coerced."""

    model_config = ConfigDict(extra="forbid", strict=True)


def payload_text(value: JsonValue) -> str:
    """The payload as stored: a string is already JSON text, anything else is serialised."""
    return value if isinstance(value, str) else json.dumps(value)


def _only_known(cls: type[Any], values: dict[str, Any]) -> dict[str, Any]:
    """Keep the keys ``cls`` (a core dataclass) has: a core without a newer option just ignores it."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in values.items() if k in names}


# ---------------------------------------------------------------- codes


class CodeFields(Body):
    """Options of a code revision; unset ones keep the previous revision's value."""

    command: str | None = None
    env: dict[str, str] | None = None
    config: str | None = None
    max_concurrency: int | None = Field(None, description="Most tasks of this code at once; 0 = no limit.")
    retries: int | None = None
    retries_delay: int | None = None
    timeout: int | None = None
    default_priority: int | None = None
    target: str | None = None
    network: str | None = None
    cpu: float | None = None
    memory_mb: int | None = None
    ironworker: bool | None = None
    webhook: str | None = Field(None, description="URL POSTed when a task of this code ends; '' removes it.")

    def options(self) -> CodeOptions:
        values = self.model_dump(include=set(CodeFields.model_fields))
        return CodeOptions(**_only_known(CodeOptions, values))


class CodeUpload(CodeFields):
    """The ``data`` field of a multipart code upload (the zip is the ``file`` field)."""

    name: str
    runtime: str


class CodeImage(CodeFields):
    """A JSON ``POST /v1/codes``: a revision that runs a ready image."""

    name: str
    image: str


# ---------------------------------------------------------------- tasks


class TaskFields(Body):
    """Per-task options; unset ones take the code revision's default."""

    priority: int | None = None
    delay: int = 0
    timeout: int | None = None
    retries: int | None = None
    target: str | None = None
    label: str | None = None
    env: dict[str, str] | None = None
    webhook: str | None = Field(None, description="URL POSTed when the task ends; '' for none.")

    def options(self) -> TaskOptions:
        values = self.model_dump(include=set(TaskFields.model_fields))
        return TaskOptions(**_only_known(TaskOptions, values))


class TaskCreate(TaskFields):
    """``POST /v1/tasks``."""

    code_name: str
    payload: JsonValue = "{}"


class TaskBulk(TaskFields):
    """``POST /v1/tasks/bulk``: one task per payload, all or none."""

    code_name: str
    payloads: list[JsonValue] = Field(min_length=1, max_length=MAX_BULK)


class RetryBody(Body):
    """``POST /v1/tasks/{id}/retry``."""

    delay: int = 0


# ---------------------------------------------------------------- schedules


class ScheduleCreate(Body):
    """``POST /v1/schedules``: exactly one of ``cron``, ``every`` or ``at``."""

    code_name: str
    cron: str | None = None
    every: str | int | None = Field(None, description="Seconds, or units like '30s', '5m', '1h30m'.")
    at: str | None = Field(None, description="One run at this ISO 8601 time.")
    tz: str = "UTC"
    start_at: str | None = None
    end_at: str | None = None
    run_times: int | None = None
    payload: JsonValue = "{}"
    priority: int | None = None
    timeout: int | None = None
    target: str | None = None
    label: str | None = None
    missed: str = "skip"
    overlap: str = "allow"

    def spec(self) -> ScheduleSpec:
        values = self.model_dump(exclude={"code_name"})
        values["payload"] = payload_text(self.payload)
        values["every"] = None if self.every is None else str(self.every)
        return ScheduleSpec(**_only_known(ScheduleSpec, values))


# ---------------------------------------------------------------- parsing by hand


def validation_message(exc: ValidationError) -> str:
    """The first problem as ``field: message`` (the same line the app's validation handler gives)."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    return f"{where}: {first['msg']}" if where else str(first["msg"])


def parse_body(model: type[M], raw: bytes | str, what: str = "body") -> M:
    """Validate JSON text against ``model``; one clear InvalidInput line otherwise."""
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise InvalidInput(f"{what} is not valid JSON: {exc}") from None
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise InvalidInput(validation_message(exc)) from None
