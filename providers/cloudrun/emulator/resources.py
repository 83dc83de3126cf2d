"""A container's ``resources.limits`` (Kubernetes quantities) as Docker limits.

Cloud Run takes ``cpu`` as ``"1"``, ``"2"``, ``"0.5"`` or ``"1000m"`` and
``memory`` as ``"512Mi"``, ``"1Gi"``, ``"2G"`` or bytes; a job's tasks default to 1
CPU and 512 MiB (https://cloud.google.com/run/docs/configuring/jobs/memory-limits).
The emulator gives the container the memory as a hard limit without swap, so
exceeding it is a real OOM kill, and the CPUs as a quota (at most the engine's).
"""

from __future__ import annotations

import re
from typing import Any

DEFAULT_CPU = "1"
DEFAULT_MEMORY = "512Mi"
#: Docker refuses limits under 6 MiB.
MIN_MEMORY_BYTES = 6 * 1024 * 1024
_QUANTITY = re.compile(r"^(?P<number>[0-9]+(?:\.[0-9]+)?)(?P<unit>[KMGT]i?|k|m)?$")
_UNITS = {
    None: 1,
    "k": 10**3,
    "K": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


def cpus(value: Any) -> float:
    """CPUs of a ``cpu`` limit; ValueError when malformed or not positive."""
    match = _QUANTITY.match(str(value).strip())
    if not match or match.group("unit") not in (None, "m"):
        raise ValueError(f"Invalid value for cpu limit: '{value}'.")
    number = float(match.group("number"))
    result = number / 1000 if match.group("unit") == "m" else number
    if result <= 0:
        raise ValueError(f"Invalid value for cpu limit: '{value}'.")
    return result


def memory_bytes(value: Any) -> int:
    """Bytes of a ``memory`` limit; ValueError when malformed or not positive."""
    match = _QUANTITY.match(str(value).strip())
    if not match or match.group("unit") == "m":
        raise ValueError(f"Invalid value for memory limit: '{value}'.")
    result = int(float(match.group("number")) * _UNITS[match.group("unit")])
    if result <= 0:
        raise ValueError(f"Invalid value for memory limit: '{value}'.")
    return result


def limits(container: dict[str, Any]) -> tuple[float, int]:
    """``(cpus, memory bytes)`` of a container, with Cloud Run's defaults."""
    given = (container.get("resources") or {}).get("limits") or {}
    return cpus(given.get("cpu", DEFAULT_CPU)), max(memory_bytes(given.get("memory", DEFAULT_MEMORY)), MIN_MEMORY_BYTES)
