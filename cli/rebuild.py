"""Records rebuilt from the ``/v1`` API's JSON, so remote commands print exactly what local ones do.

The API sends each record's ``to_json()``; these functions invert it: ISO times
back to epoch seconds, parsed JSON back to the text the store keeps, renamed keys
back to field names. A field the JSON does not carry (the server keeps it to
itself: a task's ``handle``, a revision's ``blob_key``) gets a neutral value.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import MISSING, fields
from datetime import datetime
from typing import Any, TypeVar

from mayfly.core.records import Code, Delivery, EventRecord, Revision, Target, Task
from mayfly.core.schedules import Schedule
from mayfly.core.secrets import dump_sealed

R = TypeVar("R")


def epoch(value: str | None) -> float | None:
    """An RFC 3339 time from the API as epoch seconds."""
    return None if value is None else datetime.fromisoformat(value).timestamp()


def build(cls: type[R], values: Mapping[str, Any]) -> R:
    """``cls`` from the values it names; neutral values for fields the JSON leaves out."""
    kwargs: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        if f.name in values:
            kwargs[f.name] = values[f.name]
        elif f.default is not MISSING:
            kwargs[f.name] = f.default
        else:
            kwargs[f.name] = _neutral(str(f.type))
    return cls(**kwargs)


def _neutral(annotation: str) -> Any:
    if "None" in annotation:
        return None
    return {"int": 0, "float": 0.0, "bool": False, "str": ""}.get(annotation.strip())


def _times(doc: Mapping[str, Any], *names: str) -> dict[str, float | None]:
    return {n: epoch(doc.get(n)) for n in names if n in doc}


def _names_only(doc: Mapping[str, Any]) -> str | None:
    """The API lists secret names only: a stand-in sealed column with the names and no values."""
    return dump_sealed(dict.fromkeys(doc.get("secrets") or [], ""))


def task(doc: Mapping[str, Any]) -> Task:
    """A task from ``Task.to_json()`` (the payload may be absent, as in listings)."""
    values = dict(doc)
    values["revision_id"] = doc.get("code_history_id")
    values["result"] = None if doc.get("result") is None else json.dumps(doc["result"])
    values["payload"] = doc.get("payload", "")
    values["secrets"] = _names_only(doc)
    values["placement"] = _placement(doc)
    values.update(_times(doc, "created_at", "updated_at", "run_at", "start_time", "end_time"))
    return build(Task, values)


def _placement(doc: Mapping[str, Any]) -> str | None:
    """The ``placement`` column of a task or revision from its ``targets`` and ``skipped_targets``."""
    targets, skipped = doc.get("targets") or [], doc.get("skipped_targets") or {}
    if len(targets) <= 1 and not skipped:
        return None
    return json.dumps({"targets": targets, "skipped": skipped})


def revision(doc: Mapping[str, Any], code_id: str) -> Revision:
    """A revision from ``Revision.to_json()``."""
    values = dict(doc, code_id=code_id, env=json.dumps(doc.get("env") or {}), secrets=_names_only(doc))
    values["placement"] = _placement(doc)
    values.update(_times(doc, "created_at"))
    return build(Revision, values)


def code(doc: Mapping[str, Any]) -> tuple[Code, Revision | None]:
    """A code (and its latest revision when the JSON has one) from ``Code.to_json()``."""
    values = dict(doc, latest_rev=doc.get("rev"))
    values.update(_times(doc, "created_at", "updated_at"))
    record = build(Code, values)
    latest = doc.get("latest")
    return record, revision(latest, record.id) if latest else None


def event(doc: Mapping[str, Any], task_id: str) -> EventRecord:
    """A runner event from ``EventRecord.to_json()``."""
    values = dict(doc, task_id=task_id, data=json.dumps(doc.get("data")))
    values.update(_times(doc, "at"))
    return build(EventRecord, values)


def schedule(doc: Mapping[str, Any]) -> Schedule:
    """A schedule from ``Schedule.to_json()``."""
    values = dict(doc, every=doc.get("run_every"))
    values.update(_times(doc, "start_at", "end_at", "next_start", "last_run_time", "created_at", "updated_at"))
    return build(Schedule, values)


def target(doc: Mapping[str, Any]) -> Target:
    """A target from ``Target.to_json()``."""
    values = dict(doc, settings=json.dumps(doc.get("settings") or {}, sort_keys=True))
    values.update(_times(doc, "created_at"))
    return build(Target, values)


def delivery(doc: Mapping[str, Any], task_id: str, url: str) -> Delivery:
    """A webhook delivery attempt from ``Delivery.to_json()``."""
    values = dict(doc, task_id=task_id, url=url, status=str(doc.get("event", "")).removeprefix("task."))
    values["attempted_at"] = epoch(doc.get("at"))
    values["next_attempt_at"] = epoch(doc.get("next_attempt_at")) or 0.0
    return build(Delivery, values)
