"""Rate limits for container group creates: a thread-safe token bucket, and jittered exponential backoff.

Azure Container Instances documents its create limits per subscription and region:
300 container group creates per hour and 100 per 5 minutes (the same for deletes).
Source: https://learn.microsoft.com/en-us/azure/container-instances/container-instances-resource-and-quota-limits
("Changeable Limits"). A single bucket meets both with a burst of 60 and a refill of
one create every 15 s: 60 + 300 s / 15 s = 80 creates in any 5 minutes, 60 + 240 = 300
in any hour. Those are the defaults of ``AciSettings.creates_per_second`` and
``create_burst``; a subscription with a raised quota raises them. Creates beyond the
limit fail with 429 (throttled) and are retried here with backoff. The bucket is shared
by every provider of the process talking to the same subscription, region and endpoint
(:func:`shared_bucket`): the limit is the subscription's, not a target's.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from mayfly.core import ratelimit
from mayfly.core.ratelimit import TokenBucket, shared_bucket

__all__ = ["TokenBucket", "backoff", "shared_bucket"]


#: Documented defaults (see the module docstring for the source).
CREATES_PER_SECOND = 1 / 15
CREATE_BURST = 60


def backoff(
    attempts: int, *, base: float = 1.0, cap: float = 30.0, rng: random.Random | None = None
) -> Iterator[float]:
    """:func:`mayfly.core.ratelimit.backoff` with this provider's defaults (ARM's throttling windows are longer)."""
    return ratelimit.backoff(attempts, base=base, cap=cap, rng=rng)
