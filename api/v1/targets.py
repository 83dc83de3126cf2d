"""``/v1/targets``: where tasks run, with queued and running counts against capacity. Read-only.

Targets are shared by every project of a server (their capacity is too), so the
counts are over all projects: they show how busy a target is, never whose tasks
those are. Adding, replacing and removing targets stays an operator action on the
server's home (``mayfly target add`` / ``mayfly deploy``).
"""

from __future__ import annotations

from typing import Any, get_args

from pydantic import SecretBytes, SecretStr

from mayfly.api.openapi import errors
from mayfly.api.v1.deps import CallerDep, MayflyDep
from mayfly.api.v1.routing import v1_router
from mayfly.core.app import Mayfly
from mayfly.core.errors import MayflyError
from mayfly.core.records import Target

router = v1_router("targets")

_COUNTED = ("queued", "preparing", "running")
MASK = "********"


@router.get("/targets")
def list_targets(caller: CallerDep, mf: MayflyDep) -> dict[str, Any]:
    """Every target with its provider, capacity, settings and unfinished tasks."""
    counts = mf.tasks.count_by_target()
    breakers = mf.targets.breakers()
    return {"targets": [_target_json(mf, t, counts.get(t.name, {}), breakers.get(t.name)) for t in mf.targets.list()]}


@router.get("/targets/{name}", responses=errors(404))
def get_target(name: str, caller: CallerDep, mf: MayflyDep) -> dict[str, Any]:
    """One target."""
    target = mf.targets.get(name)
    return _target_json(mf, target, mf.tasks.count_by_target().get(name, {}), mf.targets.breakers().get(name))


def _target_json(mf: Mayfly, target: Target, counts: dict[str, int], breaker: dict[str, Any] | None) -> dict[str, Any]:
    body = target.to_json()
    body["settings"] = public_settings(mf, target)
    body.update({status: counts.get(status, 0) for status in _COUNTED})
    # Its circuit breaker: closed, open (fallback tasks skip it until open_until) or half-open.
    body["breaker"] = breaker or {"state": "closed", "failures": 0}
    return body


def public_settings(mf: Mayfly, target: Target) -> dict[str, Any]:
    """The settings, with every field the provider declares secret masked.

    A field is secret when its type is ``SecretStr``/``SecretBytes`` or its
    ``json_schema_extra`` says ``{"secret": true}``. No built-in provider has one
    today (their settings name resources, not credentials).
    """
    settings = target.settings_dict
    try:
        model = mf.plugins.registry.get(target.provider).Settings
    except MayflyError:
        return settings  # provider not installed here: the same view the CLI gives
    for name, field in model.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        secret = _secret_type(field.annotation) or extra.get("secret") is True
        key = field.alias or name
        if secret and key in settings:
            settings[key] = MASK
    return settings


def _secret_type(annotation: Any) -> bool:
    """``SecretStr``, ``SecretBytes``, or an optional/union of them."""
    return annotation in (SecretStr, SecretBytes) or any(_secret_type(a) for a in get_args(annotation))
