"""Targets: named places tasks run (one provider + its settings + a capacity).

``local`` (the Docker engine on this machine) always exists.
"""

from __future__ import annotations

import json
import os

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from mayfly.core.config import LOCAL_TARGET
from mayfly.core.errors import TargetNotFound
from mayfly.core.records import Target
from mayfly.core.store import Store, now
from mayfly.core.store import schema as s


def default_local_capacity() -> int:
    """How many local containers may run at once unless configured (``MAYFLY_LOCAL_CAPACITY``)."""
    env = os.environ.get("MAYFLY_LOCAL_CAPACITY")
    if env and env.isdigit() and int(env) > 0:
        return int(env)
    return max(4, 4 * (os.cpu_count() or 1))


class TargetService:
    """Look up targets; make sure ``local`` exists."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._cache: dict[str, Target] = {}

    def ensure_local(self) -> Target:
        """Create the ``local`` target on first use."""
        try:
            return self.get(LOCAL_TARGET)
        except TargetNotFound:
            pass
        try:
            with self.store.write() as conn:
                conn.execute(
                    insert(s.targets).values(
                        name=LOCAL_TARGET,
                        provider="docker",
                        settings="{}",
                        capacity=default_local_capacity(),
                        created_at=now(),
                    )
                )
        except IntegrityError:
            pass
        return self.get(LOCAL_TARGET)

    def get(self, name: str) -> Target:
        """The target called ``name``."""
        if name in self._cache:
            return self._cache[name]
        with self.store.read() as conn:
            row = conn.execute(select(s.targets).where(s.targets.c.name == name)).mappings().first()
        if row is None:
            known = ", ".join(t.name for t in self.list()) or "none"
            raise TargetNotFound(f"unknown target {name!r} (known: {known})")
        target = Target.from_row(row)
        self._cache[name] = target
        return target

    def list(self) -> list[Target]:
        with self.store.read() as conn:
            return [Target.from_row(r) for r in conn.execute(select(s.targets).order_by(s.targets.c.name)).mappings()]

    def settings(self, name: str) -> dict[str, object]:
        value: dict[str, object] = json.loads(self.get(name).settings)
        return value
