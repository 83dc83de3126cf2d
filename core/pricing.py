"""Price tables: what one second of a task's vCPU and memory costs on a provider in a region.

The shipped tables (``prices.json`` beside this module) hold each provider's list
price per region with the page it was copied from and when; a target may override
them (``mayfly target price NAME --set vcpu_hour=...``). This module is pure: it
reads no store. :mod:`mayfly.core.costs` applies it to recorded attempts.

Billing: the billed interval comes from the provider's own clock, rounded up to
whole seconds, and never less than the provider's minimum (Fargate: 60 s). A price
of zero for both vCPU and memory (local Docker, unless priced) bills zero seconds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

from mayfly.core.errors import InvalidInput

TABLE = Path(__file__).with_name("prices.json")
CURRENCY = "USD"
#: Keys a target's price override may set; ``*_hour`` keys are divided by 3600.
OVERRIDE_KEYS = ("vcpu_hour", "gb_hour", "vcpu_second", "gb_second", "minimum_seconds")


@dataclass(frozen=True)
class Price:
    """The price of one provider and region, per second, and where it came from."""

    provider: str
    region: str | None
    vcpu_second: float
    gb_second: float
    minimum_seconds: float
    source: str
    as_of: str
    #: "shipped" (the table in the package) or "target" (a target's own override over it).
    origin: str = "shipped"
    currency: str = CURRENCY

    @property
    def free(self) -> bool:
        """True when nothing is billed (local Docker without a price)."""
        return self.vcpu_second == 0 and self.gb_second == 0

    def billed_seconds(self, start: float | None, stop: float | None) -> float:
        """Seconds billed for the interval ``start`` → ``stop`` (the provider's clock); 0 when unknown or free."""
        if self.free or start is None or stop is None:
            return 0.0
        return float(max(math.ceil(max(0.0, stop - start) - 1e-9), self.minimum_seconds))

    def cost(self, seconds: float, cpu: float, memory_mb: int) -> float:
        """What ``seconds`` of ``cpu`` vCPU and ``memory_mb`` MiB cost."""
        return seconds * (cpu * self.vcpu_second + memory_mb / 1024 * self.gb_second)

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        body["vcpu_hour"] = self.vcpu_second * 3600
        body["gb_hour"] = self.gb_second * 3600
        return body


@cache
def _table() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(TABLE.read_text())
    return data


def region_of(provider: str, settings: Mapping[str, Any]) -> str | None:
    """The region a target of ``provider`` runs in, read from its settings (``region``, ``location``)."""
    entry = _table().get(provider)
    key = entry.get("region_setting") if isinstance(entry, dict) else None
    value = settings.get(key) if key else None
    return str(value) if value else None


def shipped(provider: str, region: str | None) -> Price:
    """The shipped price of ``provider`` in ``region`` (its ``*`` row for a region not listed)."""
    entry = _table().get(provider)
    if not isinstance(entry, dict):
        return Price(provider, region, 0.0, 0.0, 0.0, f"no price table for provider {provider!r}", "")
    rows = entry["regions"]
    row = rows.get(region or "*") or rows["*"]
    per = 3600.0 if entry["unit"] == "hour" else 1.0
    source = entry["source"] if region in rows or region is None else f"{entry['source']} (region not listed: '*' row)"
    return Price(
        provider,
        region,
        row["vcpu"] / per,
        row["memory_gb"] / per,
        float(entry["minimum_seconds"]),
        source,
        entry["as_of"],
    )


def check_override(values: Mapping[str, Any]) -> dict[str, float]:
    """A target's price override, validated: known keys, non-negative numbers, not both hour and second."""
    out: dict[str, float] = {}
    for key, value in values.items():
        if key not in OVERRIDE_KEYS:
            raise InvalidInput(f"unknown price key {key!r}: use {', '.join(OVERRIDE_KEYS)}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InvalidInput(f"price {key} must be a number, not {value!r}") from None
        if not math.isfinite(number) or number < 0:
            raise InvalidInput(f"price {key} must be a non-negative number")
        out[key] = number
    for unit in ("vcpu", "gb"):
        if f"{unit}_hour" in out and f"{unit}_second" in out:
            raise InvalidInput(f"give {unit}_hour or {unit}_second, not both")
    return out


def price_for(
    provider: str, settings: Mapping[str, Any], override: Mapping[str, Any] | None = None, *, note: str = ""
) -> Price:
    """The price in use on a target: the shipped row for its provider and region, with its override on top."""
    base = shipped(provider, region_of(provider, settings))
    if not override:
        return base
    o = check_override(override)
    vcpu = o["vcpu_hour"] / 3600 if "vcpu_hour" in o else o.get("vcpu_second", base.vcpu_second)
    gb = o["gb_hour"] / 3600 if "gb_hour" in o else o.get("gb_second", base.gb_second)
    return Price(
        provider,
        base.region,
        vcpu,
        gb,
        o.get("minimum_seconds", base.minimum_seconds),
        note or "the target's own price (mayfly target price --set)",
        base.as_of if set(o) == {"minimum_seconds"} else "",
        origin="target",
    )


def estimate_seconds(price: Price, timeout: int, typical: float | None) -> float:
    """Seconds a task is expected to bill before it runs: its code's typical run, else its minimum, else 1."""
    if price.free:
        return 0.0
    seconds = typical if typical is not None else 1.0
    return float(max(math.ceil(min(seconds, float(timeout))), price.minimum_seconds))


def usd(amount: float) -> str:
    """``0.001234 USD``: enough decimals for a one-second task."""
    return f"{amount:.6f} {CURRENCY}"
