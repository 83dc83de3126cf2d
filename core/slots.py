"""When a schedule fires: cron in a time zone, fixed intervals, one-off times — as UTC instants.

Cron is evaluated on *wall-clock* times in the schedule's IANA zone, then each wall
time is turned into an instant here, not by croniter (which works in a fixed UTC
offset and gets DST wrong):

* at fall-back a wall time happens twice; the slot fires once, at its first instance;
* at spring-forward a wall time does not exist; the slot fires once, at the first
  valid instant after the gap (several skipped slots share that instant, and a slot
  is identified by its instant, so they fire once together);
* intervals are UTC arithmetic, so they keep their real elapsed length across DST.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, CroniterBadDateError, croniter

from mayfly.core.errors import InvalidInput

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_EVERY = re.compile(r"^(?:(\d+)([smhdw]))+$")
_MACROS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
#: A cron expression that matches no date for this long is refused ("0 0 31 2 *").
_CRON_HORIZON_YEARS = 5


def parse_every(text: str) -> int:
    """``90``, ``90s``, ``5m``, ``1h30m``, ``2d`` → seconds (at least 1)."""
    value = text.strip().lower()
    if value.isdigit():
        seconds = int(value)
    elif _EVERY.match(value):
        seconds = sum(int(n) * _UNITS[u] for n, u in re.findall(r"(\d+)([smhdw])", value))
    else:
        raise InvalidInput(f"invalid interval {text!r}: use seconds or units like 30s, 5m, 1h30m, 1d")
    if seconds < 1:
        raise InvalidInput(f"invalid interval {text!r}: it must be at least 1 second")
    return seconds


def parse_zone(name: str) -> ZoneInfo:
    """An IANA time zone, e.g. ``Europe/Berlin``."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"unknown time zone {name!r} (use an IANA name like Europe/Berlin or UTC)") from None


def validate_cron(expr: str) -> str:
    """Five fields (minute hour day month weekday) or a macro like ``@hourly``; must fire at some point."""
    text = " ".join(expr.split())
    if text not in _MACROS and len(text.split(" ")) != 5:
        raise InvalidInput(f"invalid cron expression {expr!r}: expected 5 fields: minute hour day month weekday")
    if not croniter.is_valid(text):
        raise InvalidInput(f"invalid cron expression {expr!r}: {_why(text)}")
    try:
        croniter(text, datetime(2000, 1, 1), max_years_between_matches=_CRON_HORIZON_YEARS).get_next(datetime)
    except CroniterBadDateError:
        raise InvalidInput(f"cron expression {expr!r} never fires") from None
    return text


def _why(text: str) -> str:
    try:
        croniter(text)
    except (CroniterBadCronError, ValueError) as exc:
        detail = str(exc)
        if "out of range" in detail:
            return "a value is out of range (minute 0-59, hour 0-23, day 1-31, month 1-12, weekday 0-7)"
        if "step" in detail:
            return "a step of 0 is not allowed"
    return "a field is not a number, range, list, step or name"


def parse_time(text: str, zone: ZoneInfo) -> float:
    """An ISO 8601 time (``2026-12-01T09:00``, ``...Z``, ``...+01:00``) as UTC epoch; naive means ``zone``."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"invalid time {text!r}: use ISO 8601, e.g. 2026-12-01T09:00:00+01:00") from None
    if value.tzinfo is None:
        return instant(value, zone)
    return value.timestamp()


def instant(naive: datetime, zone: ZoneInfo) -> float:
    """The instant of a wall-clock time in ``zone``: the first of two at fall-back, the gap's end at spring-forward."""
    first = naive.replace(tzinfo=zone, fold=0)
    utc = first.astimezone(UTC)
    if utc.astimezone(zone).replace(tzinfo=None) == naive:
        return utc.timestamp()
    # The wall time falls in a gap. fold=1 reads it with the offset after the transition (an instant
    # before the gap), fold=0 with the offset before it (an instant after): the transition is between.
    lo = naive.replace(tzinfo=zone, fold=1).astimezone(UTC).timestamp()
    hi = utc.timestamp()
    lo, hi = min(lo, hi), max(lo, hi)
    before = datetime.fromtimestamp(lo, zone).utcoffset()
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, zone).utcoffset() == before:
            lo = mid
        else:
            hi = mid
    return float(hi)


def wall_time(ts: float, zone: ZoneInfo) -> datetime:
    """The naive wall-clock time of an instant in ``zone``."""
    return datetime.fromtimestamp(ts, zone).replace(tzinfo=None)


@dataclass(frozen=True)
class Rule:
    """When a schedule fires."""

    kind: str  # "cron", "every" or "at"
    start_at: float
    cron: str | None = None
    every: int | None = None
    tz: str = "UTC"

    def first(self) -> float | None:
        """The first slot at or after ``start_at``."""
        if self.kind == "cron":
            return self.after(self.start_at - 1e-6)
        return self.start_at

    def after(self, ts: float) -> float | None:
        """The first slot strictly after ``ts``, or None when there is none."""
        if self.kind == "at":
            return self.start_at if self.start_at > ts else None
        if self.kind == "every":
            assert self.every is not None
            if ts < self.start_at:
                return self.start_at
            n = int((ts - self.start_at) // self.every) + 1
            return self.start_at + n * self.every
        assert self.cron is not None
        zone = ZoneInfo(self.tz)
        # Iterate wall times from the wall time of ts; a wall time whose instant is not after ts
        # (the second pass of a repeated hour, or a gap slot already taken) is skipped.
        it = croniter(
            self.cron, wall_time(max(ts, self.start_at - 1e-6), zone), max_years_between_matches=_CRON_HORIZON_YEARS
        )
        for _ in range(10_000):
            try:
                naive = it.get_next(datetime)
            except CroniterBadDateError:
                return None
            slot = instant(naive, zone)
            if slot > ts and slot >= self.start_at:
                return slot
        return None

    def period(self) -> float:
        """A typical gap between slots (for lateness tolerance)."""
        if self.kind == "every":
            assert self.every is not None
            return float(self.every)
        if self.kind == "cron":
            first = self.after(self.start_at)
            second = self.after(first) if first is not None else None
            if first is not None and second is not None:
                return max(1.0, second - first)
        return timedelta(days=1).total_seconds()
