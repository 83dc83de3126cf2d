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
from collections.abc import Callable
from dataclasses import fields
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, create_model

from mayfly.api.validation import json_error_message
from mayfly.core import options
from mayfly.core.codes import CodeOptions
from mayfly.core.config import Limits
from mayfly.core.errors import InvalidInput
from mayfly.core.schedules import ScheduleSpec
from mayfly.core.tasks import TaskOptions

M = TypeVar("M", bound=BaseModel)
B = TypeVar("B", bound="Body")

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


def option_schema(opt: options.Option) -> dict[str, Any]:
    """The JSON Schema keywords of a core option: the bounds, enum, pattern and lengths core checks."""
    extra: dict[str, Any] = {}
    if opt.choices is not None:
        extra["enum"] = list(opt.choices)
    if opt.pattern is not None:
        extra["pattern"] = opt.pattern
    if opt.min_length is not None:
        extra["minLength"] = opt.min_length
    if opt.max_length is not None:
        extra["maxLength"] = opt.max_length
    return bounds(opt.minimum, opt.max_of(_LIMITS), **extra)


def option_fields(kind: options.Kind) -> dict[str, Any]:
    """The body fields of core's options of ``kind`` (core/options.py): type, default, bounds, description."""
    found: dict[str, Any] = {}
    for opt in options.of(kind):
        annotation: Any = opt.type if opt.default is not None else opt.type | None
        if opt.listable:
            annotation = annotation | list[str]  # ``"aws-dev,local"`` or ``["aws-dev", "local"]``
        found[opt.name] = (
            annotation,
            Field(opt.default, description=opt.help[kind], json_schema_extra=option_schema(opt)),
        )
    return found


def with_options(kind: options.Kind) -> Callable[[type[B]], type[B]]:
    """Class decorator: the body plus one field per core option of ``kind`` (a subclass of the same name)."""

    def decorate(cls: type[B]) -> type[B]:
        return create_model(
            cls.__name__, __base__=cls, __doc__=cls.__doc__, __module__=cls.__module__, **option_fields(kind)
        )

    return decorate


#: The bounds of a retry's delay (``POST /v1/tasks/{id}/retry``): those of a task's delay.
DELAY = option_schema(options.BY_NAME["delay"])


def payload_text(value: JsonValue) -> str:
    """The payload as stored: a string is already JSON text, anything else is serialised."""
    return value if isinstance(value, str) else json.dumps(value)


def _only_known(cls: type[Any], values: dict[str, Any]) -> dict[str, Any]:
    """Keep the keys ``cls`` (a core dataclass) has: a core without a newer option just ignores it."""
    names = {f.name for f in fields(cls)}
    return {k: _joined(k, v) for k, v in values.items() if k in names}


def _joined(name: str, value: Any) -> Any:
    """A list given for a listable option (``target``), as the comma string core takes."""
    opt = options.BY_NAME.get(name)
    if isinstance(value, list) and opt is not None and opt.listable:
        return ",".join(str(v) for v in value)
    return value


def _secret_bytes(values: dict[str, str] | None) -> dict[str, bytes] | None:
    """Secret values as core takes them (bytes; the API carries UTF-8 text)."""
    return None if values is None else {k: v.encode() for k, v in values.items()}


# ---------------------------------------------------------------- codes


@with_options(options.CODE)  # the scalar options: one field per row of core/options.py, with its bounds
class CodeFields(Body):
    """Options of a code revision; unset ones keep the previous revision's value."""

    env: dict[str, str] | None = None
    config: str | None = None
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


@with_options(options.TASK)
class TaskFields(Body):
    """Per-task options; unset ones take the code revision's default."""

    env: dict[str, str] | None = None
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


@with_options(options.SCHEDULE)  # priority, timeout, target, label, run_times, missed, overlap
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
    payload: JsonValue = "{}"

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
