"""Reading IronWorker request bodies: JSON, field by field, leniently typed like the clients send them.

IronWorker's clients are loose about types: the Go client sends timeouts as
float seconds, query strings carry numbers as text, optional fields come as
``null``. :class:`Fields` accepts all of those and answers a missing required
field with 406 and a wrong value with 400, as IronWorker did.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fastapi import Request

from mayfly.api.ironworker.errors import MissingField
from mayfly.core.errors import InvalidInput


async def json_body(request: Request) -> Any:
    """The JSON body (None when empty). Not JSON: 406 without a JSON Content-Type (IronWorker's answer), else 400.

    The route (:class:`~.errors.IronRoute`) capped the body before this reads it.
    """
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        if "json" not in request.headers.get("content-type", "").lower():
            raise MissingField("the request body must be JSON, sent with 'Content-Type: application/json'") from None
        raise InvalidInput(f"the request body is not valid JSON: {exc}") from None


class Fields:
    """One JSON object of a request, read one typed field at a time."""

    def __init__(self, obj: Any, where: str) -> None:
        if not isinstance(obj, Mapping):
            raise InvalidInput(f"{where} must be a JSON object")
        self.obj: Mapping[str, Any] = obj
        self.where = where

    def _name(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def has(self, key: str) -> bool:
        """True when the field is present and not null."""
        return self.obj.get(key) is not None

    def raw(self, key: str) -> Any:
        return self.obj.get(key)

    def str_or_none(self, key: str) -> str | None:
        """A string field; null, absent and "" are None."""
        value = self.obj.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise InvalidInput(f"{self._name(key)} must be a string")
        return value

    def required_str(self, key: str) -> str:
        """A string field that must be present (406 when it is not)."""
        value = self.str_or_none(key)
        if value is None:
            raise MissingField(f"{self._name(key)} is required")
        return value

    def int_or_none(self, key: str) -> int | None:
        """A whole number: an int, a float (rounded: the Go client sends seconds as floats) or numeric text."""
        return to_int(self.obj.get(key), self._name(key))

    def object_or_none(self, key: str) -> Mapping[str, Any] | None:
        value = self.obj.get(key)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise InvalidInput(f"{self._name(key)} must be a JSON object")
        return value


def to_int(value: Any, name: str) -> int | None:
    """``value`` as an int (None for null or ""); 400 for anything that is not a number."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise InvalidInput(f"{name} must be a number")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value == value and abs(value) < 1e15:
        return round(value)
    if isinstance(value, str):
        try:
            return round(float(value.strip()))
        except (ValueError, OverflowError):
            pass
    raise InvalidInput(f"{name} must be a number")


def items(body: Any, key: str) -> list[Fields]:
    """The objects of a bulk request body ``{key: [...]}`` (406 when the list is missing or empty)."""
    if not isinstance(body, Mapping) or body.get(key) is None:
        raise MissingField(f"the request body must be {{{key!r}: [...]}}".replace("'", '"'))
    values = body[key]
    if not isinstance(values, list):
        raise InvalidInput(f"{key} must be a list")
    if not values:
        raise MissingField(f"{key} is empty")
    return [Fields(v, f"{key}[{i}]") for i, v in enumerate(values)]
