"""Rate limits for Cloud Run Admin API calls: a thread-safe token bucket, and jittered exponential backoff.

Cloud Run counts ``RunJob`` calls against the quota "Job run requests per minute per
region" of the Cloud Run Admin API (default 180 per minute per project and region,
https://cloud.google.com/run/quotas#api; increasable on request). A call beyond it fails
with 429 ``RESOURCE_EXHAUSTED``. Every runner thread takes a token from
:class:`TokenBucket` before RunJob, so a burst of queued tasks is spread out here
instead of being refused by Google. The buckets are shared by every provider instance
of the process that talks to the same project, region and endpoint
(:func:`shared_bucket`): the quota is the project's, not a target's.

The bucket and backoff themselves are :mod:`mayfly.core.ratelimit`, shared by every provider.
"""

from __future__ import annotations

from mayfly.core.ratelimit import TokenBucket, backoff, shared_bucket

__all__ = ["TokenBucket", "backoff", "shared_bucket"]
