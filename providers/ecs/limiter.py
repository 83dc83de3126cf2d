"""Rate limits for AWS calls: a thread-safe token bucket, and jittered exponential backoff.

Fargate launches tasks from a token bucket per account and region (burst 100,
20 tasks/s sustained); RunTask calls beyond it fail with ``ThrottlingException``.
Every runner thread takes a token from :class:`TokenBucket` before RunTask, so a
burst of queued tasks is spread out here instead of being refused by AWS. The
buckets are shared by every provider instance of the process that talks to the
same region and endpoint (:func:`shared_bucket`): the limit is the account's,
not a target's.
"""

from __future__ import annotations

from mayfly.core.ratelimit import TokenBucket, backoff, shared_bucket

__all__ = ["TokenBucket", "backoff", "shared_bucket"]
