"""The part of the Cloud Logging query language the emulator's ``entries:list`` understands.

https://cloud.google.com/logging/docs/view/logging-query-language: comparisons
``FIELD OP VALUE`` with ``=``, ``!=``, ``>``, ``>=``, ``<``, ``<=`` and ``:`` (has,
a case-insensitive substring), joined by ``AND`` (or just whitespace / new
lines), ``OR``, ``NOT`` / ``-`` and parentheses. Fields are paths into the entry
(``resource.type``, ``resource.labels.job_name``,
``labels."run.googleapis.com/execution_name"``, ``logName``, ``textPayload``,
``severity``, ``timestamp``, ``insertId``); ``timestamp`` compares as a time and
``severity`` by rank. Anything else (bare words, functions, regular expressions)
is refused with INVALID_ARGUMENT, never silently ignored.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from typing import Any

from mayfly.providers.cloudrun.emulator.errors import invalid_argument

Predicate = Callable[[dict[str, Any]], bool]

SEVERITIES = {
    "DEFAULT": 0,
    "DEBUG": 100,
    "INFO": 200,
    "NOTICE": 300,
    "WARNING": 400,
    "ERROR": 500,
    "CRITICAL": 600,
    "ALERT": 700,
    "EMERGENCY": 800,
}
_TOKEN = re.compile(
    r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<op>>=|<=|!=|=~|!~|[=<>:()])|(?P<word>[^\s"=<>:!().]+(?:\.(?:"(?:[^"\\]|\\.)*"|[^\s"=<>:!().]+))*))'
)
_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:?\d{2})?$")


def parse_time(text: str) -> float:
    """Epoch seconds of an RFC 3339 time; ValueError when it is not one."""
    match = _TIME.match(text.strip())
    if not match:
        raise ValueError(text)
    day, clock, fraction, zone = match.groups()
    if zone and zone not in ("Z", "z") and ":" not in zone:
        zone = f"{zone[:3]}:{zone[3:]}"
    base = datetime.datetime.fromisoformat(f"{day}T{clock}{'+00:00' if zone in (None, 'Z', 'z') else zone}")
    return base.timestamp() + (int((fraction or "0").ljust(9, "0")) / 1e9)


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise invalid_argument(f"Unparseable filter: syntax error at position {pos} of '{text}'.")
        pos = match.end()
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind)))
    return out


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def _path(word: str) -> list[str]:
    parts = re.findall(r'"(?:[^"\\]|\\.)*"|[^.]+', word)
    return [_unquote(p) for p in parts]


def _lookup(entry: dict[str, Any], path: list[str]) -> Any:
    value: Any = entry
    for part in path:
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _compare(field: list[str], op: str, raw: str) -> Predicate:
    if op in ("=~", "!~"):
        raise invalid_argument("Regular expressions in filters are not supported by the Mayfly emulator.")
    key = ".".join(field)
    if key == "timestamp":
        try:
            wanted_time = parse_time(raw)
        except ValueError:
            raise invalid_argument(f"Invalid timestamp in filter: '{raw}'.") from None

        def by_time(entry: dict[str, Any]) -> bool:
            return _order(op, parse_time(str(entry["timestamp"])), wanted_time)

        return by_time
    if key == "severity":
        if raw.upper() not in SEVERITIES:
            raise invalid_argument(f"Invalid severity in filter: '{raw}'.")
        wanted_rank = SEVERITIES[raw.upper()]

        def by_severity(entry: dict[str, Any]) -> bool:
            return _order(op, SEVERITIES.get(str(entry.get("severity", "DEFAULT")), 0), wanted_rank)

        return by_severity

    def by_value(entry: dict[str, Any]) -> bool:
        value = _lookup(entry, field)
        if op == ":":
            return value is not None and raw.lower() in str(value).lower()
        if value is None:
            return op == "!="
        return _order(op, str(value), raw)

    return by_value


def _order(op: str, left: Any, right: Any) -> bool:
    return bool(
        {
            "=": left == right,
            ":": left == right,
            "!=": left != right,
            ">": left > right,
            ">=": left >= right,
            "<": left < right,
            "<=": left <= right,
        }[op]
    )


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise invalid_argument(f"Unparseable filter: unexpected end of '{self.text}'.")
        self.pos += 1
        return token

    def expr(self) -> Predicate:
        terms = [self.conjunction()]
        while self.peek() == ("word", "OR"):
            self.take()
            terms.append(self.conjunction())
        return terms[0] if len(terms) == 1 else (lambda e: any(t(e) for t in terms))

    def conjunction(self) -> Predicate:
        terms = [self.unary()]
        while True:
            token = self.peek()
            if token is None or token == ("op", ")") or token == ("word", "OR"):
                break
            if token == ("word", "AND"):
                self.take()
            terms.append(self.unary())
        return terms[0] if len(terms) == 1 else (lambda e: all(t(e) for t in terms))

    def unary(self) -> Predicate:
        token = self.take()
        if token == ("word", "NOT") or (token[0] == "word" and token[1] == "-"):
            inner = self.unary()
            return lambda e: not inner(e)
        if token == ("op", "("):
            inner = self.expr()
            if self.take() != ("op", ")"):
                raise invalid_argument(f"Unparseable filter: missing ')' in '{self.text}'.")
            return inner
        if token[0] != "word":
            raise invalid_argument(f"Unparseable filter: unexpected '{token[1]}' in '{self.text}'.")
        word = token[1]
        negate = word.startswith("-")
        if negate:
            word = word[1:]
        op = self.peek()
        if op is None or op[0] != "op" or op[1] in "()":
            raise invalid_argument(
                f"Unsupported filter term '{token[1]}': the Mayfly emulator supports FIELD OP VALUE comparisons only."
            )
        self.take()
        kind, value = self.take()
        if kind == "op":
            raise invalid_argument(f"Unparseable filter: a value is missing after '{word}{op[1]}'.")
        predicate = _compare(_path(word), op[1], _unquote(value))
        return (lambda e: not predicate(e)) if negate else predicate


def compile_filter(text: str | None) -> Predicate:
    """A predicate over entries for a Cloud Logging filter (everything for an empty one)."""
    if not text or not text.strip():
        return lambda entry: True
    parser = _Parser(text)
    predicate = parser.expr()
    if parser.peek() is not None:
        raise invalid_argument(f"Unparseable filter: unexpected '{parser.peek()[1]}' in '{text}'.")  # type: ignore[index]
    return predicate
