"""One line for a request FastAPI refused: which field, and what is wrong with it, in words."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi.exceptions import RequestValidationError


def json_error_message(what: str, exc: json.JSONDecodeError) -> str:
    """``body: invalid JSON at line 1, column 37: expecting ',' delimiter``."""
    reason = exc.msg[:1].lower() + exc.msg[1:]
    return f"{what}: invalid JSON at line {exc.lineno}, column {exc.colno}: {reason}"


def validation_message(exc: RequestValidationError) -> str:
    """The first problem of a refused request as ``field: message``."""
    problems: Sequence[Any] = exc.errors()
    if not problems:
        return "invalid request"
    first: Mapping[str, Any] = problems[0]
    loc = tuple(first.get("loc", ()))
    if first.get("type") == "json_invalid":
        return _json_invalid(first, exc.body)
    where = ".".join(str(p) for p in loc if p != "body") or ("body" if loc == ("body",) else "")
    return f"{where}: {first.get('msg')}" if where else str(first.get("msg"))


def _json_invalid(problem: Mapping[str, Any], body: Any) -> str:
    """FastAPI reports a malformed body as ``loc=("body", offset)``, ``msg="JSON decode error"``."""
    loc = tuple(problem.get("loc", ()))
    reason = str((problem.get("ctx") or {}).get("error") or "malformed")
    offset = loc[-1] if loc and isinstance(loc[-1], int) else None
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if offset is None or not isinstance(body, str):
        return f"body: invalid JSON: {reason[:1].lower() + reason[1:]}"
    return json_error_message("body", json.JSONDecodeError(reason, body, offset))
