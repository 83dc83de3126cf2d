"""Targets: named places tasks run (one provider + its settings + a capacity).

``local`` (the Docker engine on this machine) always exists. Other targets are
added by hand (``mayfly target add``) or by deploying a stack, which records the
stack's outputs as the target's settings.
"""

from __future__ import annotations

import builtins
import json
import os
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from mayfly.core import breaker
from mayfly.core.admission import Requirements, admit
from mayfly.core.config import LOCAL_TARGET
from mayfly.core.errors import Conflict, InvalidInput, InvalidSettings, TargetNotFound
from mayfly.core.records import Target
from mayfly.core.store import Store, now
from mayfly.core.store import schema as s

if TYPE_CHECKING:  # a provider class arrives loaded; reading targets loads no provider (docs/decisions.md)
    from mayfly.core.provider import Provider, ProviderLimits

NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}\Z")


def default_local_capacity() -> int:
    """How many local containers may run at once unless configured (``MAYFLY_LOCAL_CAPACITY``)."""
    env = os.environ.get("MAYFLY_LOCAL_CAPACITY")
    if env and env.isdigit() and int(env) > 0:
        return int(env)
    return max(4, 4 * (os.cpu_count() or 1))


def validate_settings(provider: type[Provider[Any]], settings: Mapping[str, Any]) -> dict[str, Any]:
    """Check settings against the provider's model; one line naming every bad field."""
    from pydantic import ValidationError

    try:
        model = provider.Settings.model_validate(dict(settings))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors())
        raise InvalidSettings(f"invalid settings for provider {provider.name!r}: {problems}") from None
    dumped: dict[str, Any] = model.model_dump(mode="json", exclude_defaults=True)
    return dumped


class TargetService:
    """Look up, add and remove targets; make sure ``local`` exists."""

    def __init__(self, store: Store, provider_class: Callable[[str], type[Provider[Any]]]) -> None:
        self.store = store
        self.provider_class = provider_class
        self._cache: dict[str, Target] = {}
        #: Target name -> its provider class and limits (admission asks on every queued task).
        self._admission: dict[str, tuple[type[Provider[Any]], ProviderLimits]] = {}

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
                        embedded_runner=True,
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

    def admit(self, name: str, need: Requirements) -> Target:
        """The target called ``name`` once its provider accepts ``need`` (see :func:`~mayfly.core.admission.admit`).

        Raises:
            TargetNotFound: no such target.
            TargetUnsupported: its provider cannot run ``need``; one line with the provider's reason.
        """
        target = self.get(name)
        if name not in self._admission:
            cls = self.provider_class(target.provider)
            limits = cls.limits_for(cls.Settings.model_validate(target.settings_dict))
            self._admission[name] = (cls, limits)
        cls, limits = self._admission[name]
        admit(name, cls, need, limits)
        return target

    def list(self) -> builtins.list[Target]:
        with self.store.read() as conn:
            rows = conn.execute(select(s.targets).order_by(s.targets.c.name)).mappings()
            return [Target.from_row(r) for r in rows]

    def add(
        self,
        name: str,
        provider: str,
        settings: Mapping[str, Any],
        *,
        capacity: int = 10,
        embedded_runner: bool = True,
        replace: bool = False,
    ) -> Target:
        """Add (or with ``replace``, update) a target after validating its settings."""
        if not NAME.match(name):
            raise InvalidInput(f"invalid target name {name!r}: lowercase letters, digits and '-', 63 at most")
        if name == LOCAL_TARGET:
            raise InvalidInput("the 'local' target is built in and cannot be replaced")
        if not 1 <= capacity <= 100_000:
            raise InvalidInput("capacity must be between 1 and 100000")
        cls = self.provider_class(provider)
        values = {
            "provider": provider,
            "settings": json.dumps(validate_settings(cls, settings), sort_keys=True),
            "capacity": capacity,
            "embedded_runner": embedded_runner,
        }
        with self.store.write() as conn:
            exists = conn.execute(select(s.targets.c.name).where(s.targets.c.name == name)).first()
            if exists and not replace:
                raise Conflict(f"target {name!r} already exists (use --replace to update it)")
            if exists:
                conn.execute(update(s.targets).where(s.targets.c.name == name).values(**values))
            else:
                conn.execute(insert(s.targets).values(name=name, created_at=now(), **values))
        self._cache.pop(name, None)
        self._admission.pop(name, None)
        return self.get(name)

    def remove(self, name: str) -> None:
        """Remove a target that no unfinished task uses."""
        if name == LOCAL_TARGET:
            raise InvalidInput("the 'local' target is built in and cannot be removed")
        self.get(name)
        with self.store.write() as conn:
            busy = conn.execute(
                select(func.count())
                .select_from(s.tasks)
                .where(s.tasks.c.target == name, s.tasks.c.status.in_(["queued", "preparing", "running"]))
            ).scalar_one()
            if busy:
                raise Conflict(f"target {name!r} still has {busy} unfinished tasks")
            conn.execute(delete(s.targets).where(s.targets.c.name == name))
            conn.execute(delete(s.target_prices).where(s.target_prices.c.target == name))
        self._cache.pop(name, None)
        self._admission.pop(name, None)

    def breakers(self, at: float | None = None) -> dict[str, dict[str, Any]]:
        """Every target's circuit breaker as JSON at ``at`` (default now): ``state`` closed, open or half-open."""
        ts = now() if at is None else at
        with self.store.read() as conn:
            found = breaker.load(conn)
        return {t.name: found.get(t.name, breaker.Breaker(t.name)).to_json(ts) for t in self.list()}

    def settings(self, name: str) -> dict[str, object]:
        value: dict[str, object] = json.loads(self.get(name).settings)
        return value
