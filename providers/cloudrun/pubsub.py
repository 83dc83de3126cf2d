"""Pub/Sub queues of a Google Cloud target: one topic and one pull subscription per queue.

Each queue is a topic (where ``send`` publishes) and a subscription of it (where
``receive`` pulls). A received message is leased with the subscription's ack deadline:
``receive`` is a synchronous Pull followed by ModifyAckDeadline to ``lease`` seconds,
``extend`` is ModifyAckDeadline and ``ack`` is Acknowledge. A message not acked within
its deadline is delivered again. The subscription's dead-letter policy
(``dead_letter_policy.max_delivery_attempts``, at least 5 on Pub/Sub) moves a message
that keeps coming back to the dead-letter topic; :meth:`PubSubQueue.dead_letters` is that
topic's subscription, as a queue. With a dead-letter policy Pub/Sub counts deliveries
(``delivery_attempt``, which becomes :attr:`Message.deliveries`); without one it does not,
and every delivery reads as the first.

IAM: the control plane needs ``roles/pubsub.publisher`` on the tasks and control topics
and ``roles/pubsub.subscriber`` on the events subscription (and on the tasks queue's
dead-letter subscription); runners the reverse. ``roles/pubsub.viewer`` on the
subscriptions reads the dead-letter policy. Pub/Sub's own service agent
(``service-PROJECT_NUMBER@gcp-sa-pubsub.iam.gserviceaccount.com``) needs publisher on the
dead-letter topic and subscriber on the source subscription, or nothing is dead-lettered.

Limits Mayfly enforces before calling Google: bodies of at most :data:`MAX_BODY_BYTES`,
delays of at most 600 s and leases of at most 600 s (Pub/Sub's longest ack deadline).

What Pub/Sub does not have, and what Mayfly does instead:

* **delays**: Pub/Sub delivers at once. ``send(delay=...)`` publishes the message with a
  ``mayfly_not_before`` attribute (Unix time); a receiver that pulls it early does not
  return it but sets its ack deadline to the time left, so it comes back when due. That
  early pull counts as a delivery attempt for Pub/Sub (at most one, since delays are at
  most one ack deadline long): a delayed message reads one delivery more and is
  dead-lettered one real delivery sooner;
* **waiting pulls**: a Pull waits as long as its client deadline (``receive(wait=...)``);
  Pub/Sub has no server-side wait. A message Pub/Sub hands out just as that deadline
  passes is lost to the receiver but counted as a delivery: it comes back after the
  subscription's ack deadline, one delivery count higher;
* **depth**: Pub/Sub reports a subscription's backlog only through Cloud Monitoring
  (``subscription/num_undelivered_messages``, minutes late), which Mayfly does not read
  yet, and the emulator has no metrics API. :meth:`PubSubQueue.depth` raises
  :class:`~mayfly.core.errors.Unsupported` (the ``/metrics`` endpoint skips the target);
* **stale receipts**: Pub/Sub silently ignores an ack with an expired ack id (without
  exactly-once delivery), so :class:`PubSubQueue` remembers the newest ack id and the
  lease end of each message it received and refuses an older or expired one itself
  (``ack``/``extend`` return False). Across processes only Pub/Sub's checks apply (the
  emulator accepts any ack id it ever issued), so receivers must stay idempotent (Mayfly's are).
  A request Pub/Sub refuses for one invalid ack id is retried one ack id at a time.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from mayfly.core.errors import InvalidInput, Unsupported
from mayfly.core.queues import Message, Queue, QueueSet
from mayfly.core.queues.batching import count_messages, group_by_size
from mayfly.providers.cloudrun.google import Clients, translate

#: Largest message body Mayfly sends (bytes of UTF-8). Pub/Sub's documented limits
#: (https://cloud.google.com/pubsub/quotas#resource_limits) are 10 MB for a message's data
#: and 10 MB for a whole publish request, attributes and framing included; the client refuses
#: requests over 10,000,000 bytes. Mayfly keeps 9 MiB so one message always fits a request.
MAX_BODY_BYTES = 9 * 1024 * 1024
#: Largest total of bodies in one publish request, and most messages per request (Pub/Sub: 1,000).
MAX_REQUEST_BYTES = MAX_BODY_BYTES
MAX_REQUEST_MESSAGES = 1000
#: Pub/Sub's longest ack deadline: the longest lease, and so the longest delay Mayfly offers.
MAX_LEASE_SECONDS = 600
MAX_DELAY_SECONDS = 600
#: Most ack ids per Acknowledge / ModifyAckDeadline request Mayfly sends.
ACK_BATCH = 1000
#: Most messages asked for in one Pull.
PULL_BATCH = 100
KINDS = ("tasks", "control", "events")
NOT_BEFORE = "mayfly_not_before"
# Newest receipts remembered per queue (messages in flight in this process; the oldest are forgotten first).
_RECEIPTS_KEPT = 10_000


def check_body(body: str, limit: int = MAX_BODY_BYTES) -> bytes:
    """Return ``body`` as UTF-8; raise InvalidInput if it is larger than ``limit`` bytes."""
    data = body.encode("utf-8")
    if len(data) > limit:
        raise InvalidInput(f"message body is {len(data)} bytes; Pub/Sub messages are limited to {limit} bytes here")
    return data


def _seconds(value: float, limit: int, what: str) -> int:
    """Round a duration up to whole seconds, within Pub/Sub's range."""
    if not 0 <= value <= limit:  # also refuses NaN
        raise InvalidInput(f"{what} must be between 0 and {limit} seconds on Pub/Sub; got {value}")
    return math.ceil(value)


def _retry(timeout: float) -> Any:
    """Google's retry on transient errors, bounded to ``timeout`` seconds in all."""
    from google.api_core import exceptions as gx
    from google.api_core import retry

    transient = retry.if_exception_type(gx.ServiceUnavailable, gx.InternalServerError, gx.Aborted, gx.Unknown)
    return retry.Retry(predicate=transient, initial=0.1, maximum=2.0, multiplier=2.0, timeout=timeout)


class PubSubQueue(Queue):
    """One Pub/Sub topic and its pull subscription, by full resource names."""

    def __init__(
        self,
        topic: str,
        subscription: str,
        clients: Clients,
        *,
        max_body_bytes: int = MAX_BODY_BYTES,
        timeout: float = 30.0,
    ) -> None:
        self.topic = topic
        self.subscription = subscription
        self.name = subscription.rstrip("/").rsplit("/", 1)[-1]
        self.clients = clients
        self.max_body_bytes = max_body_bytes
        self.timeout = timeout
        self._lock = threading.Lock()
        # message id -> (newest ack id, monotonic end of its lease)
        self._leases: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._dead_letters: PubSubQueue | None = None
        self._policy_read = False

    # ------------------------------------------------------------ send

    def send(self, body: str, *, delay: float = 0.0) -> str:
        """Publish ``body`` (delivered after ``delay`` ≤ 600 seconds); return its message id."""
        return self.send_many([body], delay=delay)[0]

    def send_many(self, bodies: Sequence[str], *, delay: float = 0.0) -> list[str]:
        """Publish several bodies in as few requests as fit; return their message ids in order.

        Every body is checked before anything is published.
        """
        datas = [check_body(body, self.max_body_bytes) for body in bodies]
        delay_seconds = _seconds(delay, MAX_DELAY_SECONDS, "delay")
        attributes = {NOT_BEFORE: f"{time.time() + delay_seconds:.3f}"} if delay_seconds else {}
        ids: list[str] = []
        for batch in group_by_size([len(d) for d in datas], MAX_REQUEST_MESSAGES, MAX_REQUEST_BYTES):
            messages = [{"data": datas[i], "attributes": attributes} for i in batch]
            with translate(f"publishing {count_messages(len(messages))} to Pub/Sub topic {_short(self.topic)}"):
                response = self.clients.publisher_api.publish(
                    request={"topic": self.topic, "messages": messages},
                    retry=_retry(self.timeout),
                    timeout=self.timeout,
                )
            ids.extend(str(i) for i in response.message_ids)
        return ids

    # ------------------------------------------------------------ receive

    def receive(self, max_messages: int = 1, *, wait: float = 0.0, lease: float = 30.0) -> list[Message]:
        """Lease up to ``max_messages`` messages, pulling for up to ``wait`` seconds until one is due."""
        deadline_seconds = _seconds(lease, MAX_LEASE_SECONDS, "lease")
        give_up = time.monotonic() + max(wait, 0.0)
        got: dict[str, Message] = {}
        while len(got) < max_messages:
            asked = min(PULL_BATCH, max_messages - len(got))
            received = self._pull(asked, 0.0 if got else give_up - time.monotonic())
            due, early = self._split(received)
            for seconds, ack_ids in early.items():
                self._modify(ack_ids, seconds)  # not due yet: hidden until it is
            if due:
                self._modify([m.receipt for m in due], deadline_seconds)
                ends = time.monotonic() + deadline_seconds
                with self._lock:
                    for m in due:
                        got[m.id] = m
                        self._leases[m.id] = (m.receipt, ends)
                        self._leases.move_to_end(m.id)
                    while len(self._leases) > _RECEIPTS_KEPT:
                        self._leases.popitem(last=False)
                if len(received) < asked:
                    break
            elif got or time.monotonic() >= give_up:
                break
            elif not received:
                time.sleep(0.05)  # Pub/Sub may answer an empty pull before the wait is over
        return list(got.values())

    def _pull(self, max_messages: int, wait: float) -> list[Any]:
        """One Pull; waits up to ``wait`` seconds for a message (an empty list when none came)."""
        from google.api_core import exceptions as gx

        request: dict[str, Any] = {"subscription": self.subscription, "max_messages": max_messages}
        if wait <= 0:
            request["return_immediately"] = True  # deprecated, but the only way to ask for no waiting
        with translate(f"pulling messages from Pub/Sub subscription {self.name}"):
            try:
                response = self.clients.subscriber.pull(
                    request=request, retry=_retry(self.timeout), timeout=wait if wait > 0 else self.timeout
                )
            except gx.DeadlineExceeded:
                return []
        return list(response.received_messages)

    @staticmethod
    def _split(received: Sequence[Any]) -> tuple[list[Message], dict[int, list[str]]]:
        """Messages due now, and the ack ids of delayed ones by the seconds until they are due."""
        now = time.time()
        due: list[Message] = []
        early: dict[int, list[str]] = {}
        for raw in received:
            not_before = raw.message.attributes.get(NOT_BEFORE)
            left = float(not_before) - now if not_before else 0.0
            if left > 0:
                early.setdefault(min(MAX_DELAY_SECONDS, math.ceil(left)), []).append(raw.ack_id)
                continue
            due.append(
                Message(
                    id=str(raw.message.message_id),
                    body=bytes(raw.message.data).decode("utf-8", errors="replace"),
                    receipt=str(raw.ack_id),
                    deliveries=max(1, int(raw.delivery_attempt)),
                )
            )
        return due, early

    # ------------------------------------------------------------ ack / extend

    def _current(self, message: Message) -> bool:
        """False when this queue knows the receipt is stale (superseded, or its lease ended)."""
        with self._lock:
            lease = self._leases.get(message.id)
        if lease is None:
            return True  # received elsewhere: only Pub/Sub's own checks apply
        receipt, ends = lease
        return receipt == message.receipt and time.monotonic() < ends

    def _forget(self, message: Message) -> None:
        with self._lock:
            lease = self._leases.get(message.id)
            if lease is not None and lease[0] == message.receipt:
                del self._leases[message.id]

    def ack(self, message: Message) -> bool:
        """Acknowledge the message; False when its lease was lost (it was or will be redelivered)."""
        return self.ack_many([message])[0]

    def ack_many(self, messages: Sequence[Message]) -> list[bool]:
        """Acknowledge several messages in one request per 1,000; one flag per message, as :meth:`ack`."""
        done = [self._current(m) for m in messages]
        live = [i for i, ok in enumerate(done) if ok]
        for start in range(0, len(live), ACK_BATCH):
            chunk = live[start : start + ACK_BATCH]
            receipts = [messages[i].receipt for i in chunk]
            doing = f"acknowledging {count_messages(len(chunk))} on Pub/Sub subscription {self.name}"
            if self._call_with_ack_ids("acknowledge", receipts, doing):
                continue
            if len(chunk) == 1:
                done[chunk[0]] = False
                continue
            # Pub/Sub refused an ack id, and with it the whole request: ack them one by one.
            for i in chunk:
                done[i] = self._call_with_ack_ids("acknowledge", [messages[i].receipt], doing)
        for i in live:
            self._forget(messages[i])  # acked, or refused by Pub/Sub: this receipt is done either way
        return done

    def extend(self, message: Message, lease: float) -> bool:
        """Set the message's ack deadline to ``lease`` (≤ 600) seconds from now; False when the lease was lost."""
        return self.extend_many([message], lease)[0]

    def extend_many(self, messages: Sequence[Message], lease: float) -> list[bool]:
        """Extend several leases in one request per 1,000 ack ids."""
        seconds = _seconds(lease, MAX_LEASE_SECONDS, "lease")
        done = [self._current(m) for m in messages]
        live = [i for i, ok in enumerate(done) if ok]
        if live and not self._modify([messages[i].receipt for i in live], seconds):
            # Pub/Sub refused an ack id, and with it the whole request: extend them one by one.
            for i in live:
                done[i] = len(live) > 1 and self._modify([messages[i].receipt], seconds)
        ends = time.monotonic() + seconds
        with self._lock:
            for i in live:
                m = messages[i]
                if done[i] and m.id in self._leases:
                    self._leases[m.id] = (m.receipt, ends)
        return done

    def _modify(self, ack_ids: Sequence[str], seconds: int) -> bool:
        """ModifyAckDeadline in chunks; False when Pub/Sub refused an ack id as invalid (expired)."""
        ok = True
        for start in range(0, len(ack_ids), ACK_BATCH):
            chunk = list(ack_ids[start : start + ACK_BATCH])
            doing = f"setting the ack deadline of {count_messages(len(chunk))} on Pub/Sub subscription {self.name}"
            ok = self._call_with_ack_ids("modify_ack_deadline", chunk, doing, ack_deadline_seconds=seconds) and ok
        return ok

    def _call_with_ack_ids(self, method: str, ack_ids: list[str], doing: str, **extra: Any) -> bool:
        """Acknowledge or ModifyAckDeadline; False when Pub/Sub answers that an ack id is invalid."""
        from google.api_core import exceptions as gx

        call = getattr(self.clients.subscriber, method)
        with translate(doing):
            try:
                call(
                    request={"subscription": self.subscription, "ack_ids": ack_ids, **extra},
                    retry=_retry(self.timeout),
                    timeout=self.timeout,
                )
            except gx.InvalidArgument as exc:
                if "ack id" in str(exc.message).lower():
                    return False
                raise
        return True

    # ------------------------------------------------------------ depth, dead letters

    def depth(self) -> int:
        """Not available: Pub/Sub counts a backlog only in Cloud Monitoring, which Mayfly does not read yet."""
        raise Unsupported(
            f"the depth of Pub/Sub subscription {self.name} is not available: Pub/Sub reports a backlog only "
            "through Cloud Monitoring (subscription/num_undelivered_messages), which Mayfly does not read yet"
        )

    def dead_letters(self) -> PubSubQueue | None:
        """The dead-letter topic's subscription named by this subscription's policy; None without a policy."""
        if not self._policy_read:
            found: PubSubQueue | None = None
            with translate(f"reading the dead-letter policy of Pub/Sub subscription {self.name}"):
                sub = self.clients.subscriber.get_subscription(
                    request={"subscription": self.subscription}, retry=_retry(self.timeout), timeout=self.timeout
                )
                topic = str(sub.dead_letter_policy.dead_letter_topic)
                if topic:
                    subs = sorted(
                        str(s)
                        for s in self.clients.publisher.list_topic_subscriptions(
                            request={"topic": topic}, retry=_retry(self.timeout), timeout=self.timeout
                        )
                    )
                    if subs:
                        found = PubSubQueue(
                            topic, subs[0], self.clients, max_body_bytes=self.max_body_bytes, timeout=self.timeout
                        )
            self._dead_letters, self._policy_read = found, True
        return self._dead_letters


def create_queue(
    clients: Clients, project: str, name: str, *, max_delivery_attempts: int = 5, ack_deadline: int = 10
) -> PubSubQueue:
    """Create topic ``name`` and its subscription, with a ``name-dlq`` topic and subscription as dead letters.

    What a stack will create for each of a target's queues (used by the tests until then).
    """
    publisher, subscriber = clients.publisher, clients.subscriber
    topic, dlq_topic = publisher.topic_path(project, name), publisher.topic_path(project, f"{name}-dlq")
    sub, dlq_sub = subscriber.subscription_path(project, name), subscriber.subscription_path(project, f"{name}-dlq")
    with translate(f"creating Pub/Sub queue {name}"):
        publisher.create_topic(request={"name": dlq_topic})
        subscriber.create_subscription(request={"name": dlq_sub, "topic": dlq_topic})
        publisher.create_topic(request={"name": topic})
        subscriber.create_subscription(
            request={
                "name": sub,
                "topic": topic,
                "ack_deadline_seconds": ack_deadline,
                "dead_letter_policy": {"dead_letter_topic": dlq_topic, "max_delivery_attempts": max_delivery_attempts},
            }
        )
    return PubSubQueue(topic, sub, clients)


def delete_queue(queue: PubSubQueue) -> None:
    """Delete a queue made by :func:`create_queue`: its subscription, topic and dead letters."""
    dead = queue.dead_letters()
    with translate(f"deleting Pub/Sub queue {queue.name}"):
        for q in [queue, dead] if dead is not None else [queue]:
            queue.clients.subscriber.delete_subscription(request={"subscription": q.subscription})
            queue.clients.publisher.delete_topic(request={"topic": q.topic})


def _short(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


class PubSubQueueSet(QueueSet):
    """The ``tasks``, ``control`` and ``events`` queues of one target: (topic, subscription) names per kind."""

    def __init__(self, names: Mapping[str, tuple[str, str]], clients: Clients | None = None) -> None:
        missing = [kind for kind in KINDS if not names.get(kind)]
        unknown = sorted(set(names) - set(KINDS))
        if missing or unknown:
            raise InvalidInput(
                f"Pub/Sub topics and subscriptions needed for tasks, control and events "
                f"(missing: {', '.join(missing) or '-'}; unknown: {', '.join(unknown) or '-'})"
            )
        self.clients = clients or Clients()
        self.queues = {kind: PubSubQueue(*names[kind], self.clients) for kind in KINDS}

    @classmethod
    def named(cls, project: str, prefix: str, clients: Clients | None = None) -> PubSubQueueSet:
        """The queues a stack names ``PREFIX-tasks``, ``-control``, ``-events`` (topic id = subscription id)."""
        names = {
            kind: (f"projects/{project}/topics/{prefix}-{kind}", f"projects/{project}/subscriptions/{prefix}-{kind}")
            for kind in KINDS
        }
        return cls(names, clients)

    def get(self, kind: str) -> PubSubQueue:
        """The ``tasks``, ``control`` or ``events`` queue."""
        try:
            return self.queues[kind]
        except KeyError:
            raise InvalidInput(f"unknown queue kind {kind!r}; a target has tasks, control and events") from None

    def close(self) -> None:
        """Close the subscriber's channel."""
        self.clients.close()
