"""Test helpers for Mayfly and its plugins: the provider, queue and blob store conformance suites.

A third-party provider proves it behaves like the built-in ones by subclassing
:class:`ProviderConformance` in its own tests (see :mod:`mayfly.testing.conformance`);
a queue backend subclasses :class:`QueueConformance` (:mod:`mayfly.testing.queues`) and a
blob store :class:`BlobStoreConformance` (:mod:`mayfly.testing.blobs`).
"""

from __future__ import annotations

from mayfly.testing.blobs import BlobStoreConformance
from mayfly.testing.conformance import CodeFiles, Launcher, ProviderConformance, SpecFactory, make_code
from mayfly.testing.queues import QueueConformance

__all__ = [
    "BlobStoreConformance",
    "CodeFiles",
    "Launcher",
    "ProviderConformance",
    "QueueConformance",
    "SpecFactory",
    "make_code",
]
