"""Google Cloud pieces of the future ``cloudrun`` provider (issue 15): so far only the Pub/Sub queues.

What exists: :mod:`.google` (lazy import of ``google-cloud-pubsub`` and Google API errors
as Mayfly errors) and :mod:`.pubsub` (:class:`~.pubsub.PubSubQueue` and
:class:`~.pubsub.PubSubQueueSet`, which pass :class:`mayfly.testing.QueueConformance` on
the Pub/Sub emulator). There is no provider class yet (no Cloud Run Jobs launcher, no
Cloud Storage blob store, no stack), so nothing registers a ``mayfly.providers`` entry
point for ``cloudrun``: a target cannot use these queues until the provider lands.
See docs/gcp.md.

Importing this package imports no Google library; they are imported when a client is first
needed (``pip install "mayfly-tasks[gcp]"``).
"""
