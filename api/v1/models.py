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

from mayfly.api.validation import json_error_message
from mayfly.core.codes import CodeOptions
from mayfly.core.config import Limits
from mayfly.core.errors import InvalidInput
from mayfly.core.schedules import MISSED, OVERLAP, ScheduleSpec
from mayfly.core.tasks import TaskOptions
from mayfly.core.webhook_urls import MAX_URL_LENGTH

M = TypeVar("M", bound=BaseModel)

_LIMITS = Limits()

#: Most payloads one bulk request may queue (OWASP API4: operations per request).
MAX_BULK = 1000


class Body(BaseModel):
    """Base of every request body: unknown fields are errors, types are not coerced."""

    model_config = ConfigDict(extra="forbid", strict=True)


def bounds(minimum: float | None = None, maximum: float | None = None, **extra: Any) -> dict[str, Any]:
    """JSON Schema keywords for the OpenAPI document only: core checks the values (and words the error)."""
    found: dict[str, Any] = dict(extra)
    if minimum is not None:
        found["minimum"] = minimum
    if maximum is not None:
        found["maximum"] = maximum
    return found


#: The bounds core enforces on options shared by codes, tasks and schedules (core/validate.py).
PRIORITY = bounds(0, 2)
TIMEOUT = bounds(1, _LIMITS.max_timeout)
RETRIES = bounds(0, _LIMITS.max_retries)
DELAY = bounds(0, _LIMITS.max_delay)
LABEL = bounds(minLength=1, maxLength=255)
WEBHOOK = bounds(maxLength=MAX_URL_LENGTH)


def payload_text(value: JsonValue) -> str:
    """The payload as stored: a string is already JSON text, anything else is serialised."""
    return value if isinstance(value, str) else json.dumps(value)


def _only_known(cls: type[Any], values: dict[str, Any]) -> dict[str, Any]:
    """Keep the keys ``cls`` (a core dataclass) has: a core without a newer option just ignores it."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in values.items() if k in names}


def _secret_bytes(values: dict[str, str] | None) -> dict[str, bytes] | None:
    """Secret values as core takes them (bytes; the API carries UTF-8 text)."""
    return None if values is None else {k: v.encode() for k, v in values.items()}


# ---------------------------------------------------------------- codes


class CodeFields(Body):
    """Options of a code revision; unset ones keep the previous revision's value."""

    command: str | None = None
    env: dict[str, str] | None = None
    config: str | None = None
    max_concurrency: int | None = Field(
        None, description="Most tasks of this code at once; 0 = no limit.", json_schema_extra=bounds(0)
    )
    retries: int | None = Field(None, json_schema_extra=RETRIES)
    retries_delay: int | None = Field(None, json_schema_extra=DELAY)
    timeout: int | None = Field(None, json_schema_extra=TIMEOUT)
    default_priority: int | None = Field(None, description="0 (default), 1 or 2 (highest).", json_schema_extra=PRIORITY)
    target: str | None = None
    network: str | None = Field(None, json_schema_extra=bounds(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"))
    cpu: float | None = Field(None, description="Cores.", json_schema_extra=bounds(0.01, 64))
    memory_mb: int | None = Field(None, json_schema_extra=bounds(6, 262144))
    ironworker: bool | None = None
    webhook: str | None = Field(
        None, description="URL POSTed when a task of this code ends; '' removes it.", json_schema_extra=WEBHOOK
    )
    secrets: dict[str, str] | None = Field(
        None,
        description="Write-only secret values, name -> value; set on top of the previous revision's "
        "(responses list only the names). Files under /mayfly/secrets in the container.",
    )
    replace_secrets: bool | None = Field(
        None, description="Drop every secret of the previous revision first (then set only `secrets`)."
    )

    def options(self) -> CodeOptions:
        values = self.model_dump(include=set(CodeFields.model_fields))
        values["secrets"] = _secret_bytes(self.secrets)
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

    priority: int | None = Field(None, description="0 (default), 1 or 2 (highest).", json_schema_extra=PRIORITY)
    delay: int = Field(0, description="Seconds before the task may run.", json_schema_extra=DELAY)
    timeout: int | None = Field(None, description="Seconds.", json_schema_extra=TIMEOUT)
    retries: int | None = Field(None, json_schema_extra=RETRIES)
    target: str | None = None
    label: str | None = Field(None, json_schema_extra=LABEL)
    env: dict[str, str] | None = None
    webhook: str | None = Field(
        None, description="URL POSTed when the task ends; '' for none.", json_schema_extra=WEBHOOK
    )
    secrets: dict[str, str] | None = Field(
        None,
        description="Write-only secret values of this task, name -> value, over the code's "
        "(responses list only the names).",
    )

    def options(self) -> TaskOptions:
        values = self.model_dump(include=set(TaskFields.model_fields))
        values["secrets"] = _secret_bytes(self.secrets)
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

    delay: int = Field(0, description="Seconds before the new task may run.", json_schema_extra=DELAY)


# ---------------------------------------------------------------- schedules


class ScheduleCreate(Body):
    """``POST /v1/schedules``: exactly one of ``cron``, ``every`` or ``at``."""

    code_name: str
    cron: str | None = None
    every: str | int | None = Field(
        None, description="Seconds, or units like '30s', '5m', '1h30m'.", json_schema_extra=bounds(1)
    )
    at: str | None = Field(None, description="One run at this ISO 8601 time.")
    tz: str = "UTC"
    start_at: str | None = None
    end_at: str | None = None
    run_times: int | None = Field(None, description="Most tasks the schedule queues.", json_schema_extra=bounds(1))
    payload: JsonValue = "{}"
    priority: int | None = Field(None, json_schema_extra=PRIORITY)
    timeout: int | None = Field(None, json_schema_extra=TIMEOUT)
    target: str | None = None
    label: str | None = Field(None, json_schema_extra=LABEL)
    missed: str = Field(
        "skip", description="What to do with runs missed while down.", json_schema_extra={"enum": list(MISSED)}
    )
    overlap: str = Field(
        "allow", description="A run that is due while the last one runs.", json_schema_extra={"enum": list(OVERLAP)}
    )

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
    except json.JSONDecodeError as exc:
        raise InvalidInput(json_error_message(what, exc)) from None
    except ValueError:  # bytes that are not UTF-8 (or UTF-16/32)
        raise InvalidInput(f"{what}: invalid JSON: not UTF-8 text") from None
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise InvalidInput(validation_message(exc)) from None
