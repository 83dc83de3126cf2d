"""Task counts by status, IronWorker's ``stats`` of a code (``/codes/{id}/stats``) and of a project (``/stats``).

IronWorker counted a code's tasks per status over a window (``start_date`` and
``end_date``, default the last 24 hours). Mayfly answers the same counts from
the task service: every IronWorker status, each with a count (0 when none), and
``total``.
"""

from __future__ import annotations

import time
from typing import Any

from mayfly.api.ironworker.mapping import epoch
from mayfly.core.app import Mayfly
from mayfly.core.errors import InvalidInput
from mayfly.core.models import TaskStatus
from mayfly.core.records import iso

#: The default window: the last 24 hours, as IronWorker's code stats.
DEFAULT_WINDOW = 24 * 3600


def window(start_date: str | None, end_date: str | None) -> tuple[float, float]:
    """``start_date``/``end_date`` (RFC 3339 or epoch seconds) as epoch seconds; the last 24 hours by default."""
    end = epoch(_number(end_date), "end_date")
    end = time.time() if end is None else end
    start = epoch(_number(start_date), "start_date")
    start = end - DEFAULT_WINDOW if start is None else start
    if start > end:
        raise InvalidInput("start_date must not be after end_date")
    return start, end


def _number(value: str | None) -> Any:
    """Query strings carry epoch seconds as text: a number, else the text (an RFC 3339 time)."""
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return value


def task_stats(mf: Mayfly, project_id: str, start: float, end: float, code_id: str | None = None) -> dict[str, Any]:
    """Counts of the project's (or one code's) tasks created in ``[start, end]``, by status, and their total."""
    counts = mf.tasks.count_by_status(project_id, code_id=code_id, created_from=start, created_to=end)
    body: dict[str, Any] = {status.value: counts.get(status.value, 0) for status in TaskStatus}
    body["total"] = sum(counts.values())
    body["start_date"], body["end_date"] = iso(start), iso(end)
    return body
