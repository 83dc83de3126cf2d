"""Placement: the ordered targets a code or task may run on, and which of them admission kept.

``--target aws-dev,gcp-dev,local`` (or a JSON list) names targets in order of
preference. :func:`place` asks admission about each: a target whose provider
cannot run the task at all (network, cpu, memory, timeout, a capability) is
skipped and the reason kept; an unknown target is refused as with one target; when
no target can run it, the one-line ``target_unsupported`` refusal names every
reason and nothing is stored. The task starts on the first target kept; a launch
failure that another target could avoid moves it to the next one
(:func:`next_target`, decided in :mod:`mayfly.core.lifecycle`).

A placement of more than one target is stored as JSON on the task (and on the
code revision) in the ``placement`` column: ``{"targets": [...], "skipped": {name: reason}}``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass, field
from typing import Any

from mayfly.core.errors import InvalidInput, TargetUnsupported
from mayfly.core.models import FailureKind

#: Failures another target could avoid: the kinds that move a task with fallback targets, and trip breakers.
MOVABLE_KINDS = frozenset(k.value for k in FailureKind)
#: At most this many targets in one placement.
MAX_TARGETS = 8


@dataclass(frozen=True)
class Placement:
    """The targets admission kept, in order, and those it skipped with the provider's reason."""

    targets: tuple[str, ...]
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def first(self) -> str:
        """Where the task starts."""
        return self.targets[0]

    def dumps(self) -> str | None:
        """The ``placement`` column: None for a single target with nothing skipped (the common case)."""
        if len(self.targets) == 1 and not self.skipped:
            return None
        return json.dumps({"targets": list(self.targets), "skipped": self.skipped}, separators=(",", ":"))

    def spec(self) -> str:
        """The targets as the comma string a code or task option takes (``aws-dev,local``)."""
        return ",".join(self.targets)


def loads(text: str | None, current: str) -> Placement:
    """The placement stored in a ``placement`` column (``current`` alone when there is none)."""
    if not text:
        return Placement((current,))
    body: dict[str, Any] = json.loads(text)
    return Placement(tuple(body.get("targets") or [current]), dict(body.get("skipped") or {}))


def parse(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """Target names in order from ``"a,b"`` or ``["a", "b"]``; () for None or empty.

    Raises:
        InvalidInput: an empty name in the list, a name given twice, or more than :data:`MAX_TARGETS`.
    """
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    names = tuple(str(n).strip() for n in items)
    if names == ("",):
        return ()
    if any(not n for n in names):
        raise InvalidInput(f"invalid target list {value!r}: an empty name between commas")
    if len(set(names)) != len(names):
        raise InvalidInput(f"invalid target list {value!r}: a target is named twice")
    if len(names) > MAX_TARGETS:
        raise InvalidInput(f"invalid target list {value!r}: at most {MAX_TARGETS} targets")
    return names


def spec_of(value: str | Sequence[str] | None) -> str | None:
    """A target option given as a list or a comma string, as the comma string the core takes (None stays None)."""
    if value is None or isinstance(value, str):
        return value
    return ",".join(str(v) for v in value)


def place(names: Sequence[str], admit: Callable[[str, Any], object], need: Any) -> Placement:
    """Ask admission about each target in order; keep those that can run ``need``.

    Raises:
        TargetNotFound: a name is not a target (whatever the others say).
        TargetUnsupported: no target can run it; one line with each provider's reason.
    """
    kept: list[str] = []
    skipped: dict[str, str] = {}
    for name in names:
        try:
            admit(name, need)
        except TargetUnsupported as exc:
            skipped[name] = exc.message
        else:
            kept.append(name)
    if not kept:
        if len(names) == 1:
            raise TargetUnsupported(skipped[names[0]])
        raise TargetUnsupported(f"no target can run it: {'; '.join(skipped.values())}")
    return Placement(tuple(kept), skipped)


def next_target(placement: Placement, current: str, unavailable: Container[str] = ()) -> str | None:
    """The first target after ``current`` in the placement that is not ``unavailable`` (breaker open), or None."""
    targets = placement.targets
    if current not in targets:
        return None
    for name in targets[targets.index(current) + 1 :]:
        if name not in unavailable:
            return name
    return None
