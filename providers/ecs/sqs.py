"""SQS queues of an ``ecs`` target: tasks and cancel requests down to runners, events back up.

Each target has three standard SQS queues (created by its stack): ``tasks``,
``control`` and ``events``. A received message is leased with SQS's visibility
timeout, ``extend`` is ChangeMessageVisibility (the runner's heartbeat) and
``ack`` is DeleteMessage. Receives long-poll (up to 20 s per call).

IAM permissions, on the queue ARNs:

* control plane: ``sqs:SendMessage`` (tasks, control), and ``sqs:ReceiveMessage``,
  ``sqs:DeleteMessage``, ``sqs:ChangeMessageVisibility`` (events);
* runner: ``sqs:ReceiveMessage``, ``sqs:DeleteMessage``, ``sqs:ChangeMessageVisibility``
  (tasks, control) and ``sqs:SendMessage`` (events);
* both: ``sqs:GetQueueAttributes`` for ``depth`` and the redrive policy, and the control
  plane ``sqs:GetQueueUrl``, ``sqs:ReceiveMessage`` and ``sqs:DeleteMessage`` on the
  tasks queue's dead-letter queue. Batch calls need no extra permission.
  Queues encrypted with a customer KMS key also need ``kms:GenerateDataKey`` (send)
  and ``kms:Decrypt`` (receive) on that key.

Limits Mayfly enforces before calling AWS: bodies of at most 256 KiB
(:data:`MAX_BODY_BYTES`; AWS raised its own limit to 1 MiB in 2025, queues made
before keep 256 KiB) with only the characters SQS accepts, delays of at most 900 s,
leases of at most 12 h.

What the local emulator (moto) does not cover:

* a receipt handle stays valid for ever: moto deletes or re-hides a message with
  any receipt it ever issued, while AWS rejects ChangeMessageVisibility with an
  expired receipt and documents that DeleteMessage with an outdated one succeeds
  *without* deleting. :class:`SqsQueue` therefore remembers the newest receipt it
  received per message and refuses older ones itself; across processes only
  AWS's own checks apply, so receivers must stay idempotent (Mayfly's are);
* moto accepts bodies with characters SQS rejects (checked here instead), short
  polls see every message (AWS samples a subset of its servers, so a ``wait=0``
  receive may come back empty while messages are queued), and the message counts
  of ``depth`` are exact (AWS's are approximate).
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mayfly.core.errors import InvalidInput, InvalidSettings, MayflyError, Throttled, Unavailable
from mayfly.core.queues import Message, Queue, QueueSet
from mayfly.core.queues.batching import count_messages, group_by_size
from mayfly.providers.ecs.aws import THROTTLING, Clients, error_code, error_message, translate

if TYPE_CHECKING:
    from mayfly.providers.ecs.settings import EcsSettings

#: Largest message body Mayfly sends (bytes of UTF-8), and the largest total of one batch.
MAX_BODY_BYTES = 256 * 1024
#: SQS's limits on DelaySeconds and VisibilityTimeout, and on messages per batch call.
MAX_DELAY_SECONDS = 900
MAX_LEASE_SECONDS = 12 * 3600
BATCH_SIZE = 10
#: Longest WaitTimeSeconds SQS accepts.
MAX_POLL_SECONDS = 20
KINDS = ("tasks", "control", "events")

# XML 1.0 characters: everything else is refused by SQS with InvalidMessageContents.
_INVALID_CHARS = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# Error codes meaning "this receipt no longer holds the message" (JSON shape names and query-compatible codes).
_LEASE_LOST = frozenset({"ReceiptHandleIsInvalid", "MessageNotInflight", "AWS.SimpleQueueService.MessageNotInflight"})
_BATCH_ATTEMPTS = 3
# Newest receipts remembered per queue (messages in flight in this process; the oldest are forgotten first).
_RECEIPTS_KEPT = 10_000


def _lease_lost(code: str, message: str) -> bool:
    """True when AWS refused a receipt because the delivery is over (expired, redelivered, deleted)."""
    if code in _LEASE_LOST:
        return True
    # AWS: "Value ... for parameter ReceiptHandle is invalid. Reason: The receipt handle has expired."
    # and, past 12 h in flight, "Total VisibilityTimeout for the message is beyond the limit": the
    # message will be redelivered either way.
    message = message.lower()
    return code == "InvalidParameterValue" and ("receipthandle" in message or "total visibilitytimeout" in message)


def check_body(body: str, limit: int = MAX_BODY_BYTES) -> int:
    """Return the size of ``body`` in bytes; raise InvalidInput if SQS would refuse it."""
    bad = _INVALID_CHARS.search(body)
    if bad is not None:
        raise InvalidInput(f"message body has a character SQS refuses ({bad.group()!r} at {bad.start()})")
    size = len(body.encode("utf-8"))
    if size > limit:
        raise InvalidInput(f"message body is {size} bytes; SQS messages are limited to {limit} bytes")
    return size


def _seconds(value: float, limit: int, what: str) -> int:
    """Round a duration up to whole seconds, within SQS's range."""
    if not 0 <= value <= limit:  # also refuses NaN
        raise InvalidInput(f"{what} must be between 0 and {limit} seconds on SQS; got {value}")
    return math.ceil(value)


class SqsQueue(Queue):
    """One SQS standard queue, by URL."""

    def __init__(self, url: str, clients: Clients, *, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self.url = url
        self.name = url.rstrip("/").rsplit("/", 1)[-1]
        self.clients = clients
        self.max_body_bytes = max_body_bytes
        self._lock = threading.Lock()
        self._receipts: OrderedDict[str, str] = OrderedDict()
        self._dead_letters: SqsQueue | None = None
        self._redrive_read = False

    @property
    def _sqs(self) -> Any:
        return self.clients("sqs")

    # ------------------------------------------------------------ send

    def send(self, body: str, *, delay: float = 0.0) -> str:
        """Enqueue ``body`` (visible after ``delay`` ≤ 900 seconds); return its MessageId."""
        check_body(body, self.max_body_bytes)
        delay_seconds = _seconds(delay, MAX_DELAY_SECONDS, "delay")
        with translate(f"sending a message to SQS queue {self.name}"):
            response = self._sqs.send_message(QueueUrl=self.url, MessageBody=body, DelaySeconds=delay_seconds)
        return str(response["MessageId"])

    def send_many(self, bodies: Sequence[str], *, delay: float = 0.0) -> list[str]:
        """Enqueue several bodies in batches of 10; return their MessageIds in order.

        Every body is checked before anything is sent. Entries AWS fails on its
        side are retried; if some still fail, the error is raised after the other
        batches were sent (receivers deduplicate what a retry sends again).
        """
        sizes = [check_body(body, self.max_body_bytes) for body in bodies]
        delay_seconds = _seconds(delay, MAX_DELAY_SECONDS, "delay")
        ids: list[str] = []
        for batch in group_by_size(sizes, BATCH_SIZE, self.max_body_bytes):
            entries = [{"Id": str(i), "MessageBody": bodies[i], "DelaySeconds": delay_seconds} for i in batch]
            doing = f"sending {count_messages(len(entries))} to SQS queue {self.name}"
            sent, failed = self._batch(self._sqs.send_message_batch, entries, doing)
            if failed:
                raise _entry_error(doing, failed)
            ids.extend(str(sent[str(i)]["MessageId"]) for i in batch)
        return ids

    # ------------------------------------------------------------ receive

    def receive(self, max_messages: int = 1, *, wait: float = 0.0, lease: float = 30.0) -> list[Message]:
        """Lease up to ``max_messages`` messages, long-polling up to ``wait`` seconds for the first.

        Once a call returned messages, further calls (for more than 10) do not wait;
        they stop as soon as SQS returns fewer than asked.
        """
        visibility = _seconds(lease, MAX_LEASE_SECONDS, "lease")
        deadline = time.monotonic() + max(wait, 0.0)
        poll = min(MAX_POLL_SECONDS, math.ceil(max(wait, 0.0)))
        got: dict[str, Message] = {}
        while len(got) < max_messages:
            asked = min(BATCH_SIZE, max_messages - len(got))
            with translate(f"receiving messages from SQS queue {self.name}"):
                response = self._sqs.receive_message(
                    QueueUrl=self.url,
                    MaxNumberOfMessages=asked,
                    WaitTimeSeconds=poll,
                    VisibilityTimeout=visibility,
                    MessageSystemAttributeNames=["ApproximateReceiveCount"],
                )
            batch = [_message(raw) for raw in response.get("Messages", [])]
            fresh = sum(1 for m in batch if m.id not in got)
            for m in batch:
                got[m.id] = m  # a lease of 0 s can return one message twice: keep the newest delivery
            if batch:
                poll = 0
                if fresh < asked:
                    break
            else:
                left = deadline - time.monotonic()
                if got or left <= 0 or poll == 0:
                    break
                poll = min(MAX_POLL_SECONDS, math.ceil(left))
        messages = list(got.values())
        with self._lock:
            for m in messages:
                self._receipts[m.id] = m.receipt
                self._receipts.move_to_end(m.id)
            while len(self._receipts) > _RECEIPTS_KEPT:
                self._receipts.popitem(last=False)
        return messages

    # ------------------------------------------------------------ ack / extend

    def _superseded(self, message: Message) -> bool:
        """True when this queue received a newer delivery of ``message`` (AWS would ignore the old receipt)."""
        with self._lock:
            newest = self._receipts.get(message.id)
        return newest is not None and newest != message.receipt

    def _forget(self, message: Message) -> None:
        with self._lock:
            if self._receipts.get(message.id) == message.receipt:
                del self._receipts[message.id]

    def ack(self, message: Message) -> bool:
        """Delete the message; False when its receipt is stale (the message was or will be redelivered)."""
        if self._superseded(message):
            return False
        with translate(f"deleting message {message.id} from SQS queue {self.name}"):
            try:
                self._sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message.receipt)
            except Exception as exc:
                if _lease_lost(error_code(exc), error_message(exc)):
                    self._forget(message)
                    return False
                raise
        self._forget(message)
        return True

    def ack_many(self, messages: Sequence[Message]) -> list[bool]:
        """Delete several messages in batches of 10; one flag per message, as :meth:`ack` returns."""
        done = [False] * len(messages)
        live = [i for i, m in enumerate(messages) if not self._superseded(m)]
        for start in range(0, len(live), BATCH_SIZE):
            chunk = live[start : start + BATCH_SIZE]
            entries = [{"Id": str(i), "ReceiptHandle": messages[i].receipt} for i in chunk]
            doing = f"deleting {count_messages(len(entries))} from SQS queue {self.name}"
            deleted, failed = self._batch(self._sqs.delete_message_batch, entries, doing)
            errors = {
                key: entry
                for key, entry in failed.items()
                if not _lease_lost(str(entry.get("Code", "")), str(entry.get("Message", "")))
            }
            if errors:
                raise _entry_error(doing, errors)
            for i in chunk:
                done[i] = str(i) in deleted
                self._forget(messages[i])
        return done

    def extend(self, message: Message, lease: float) -> bool:
        """Keep the message hidden for ``lease`` more seconds; False when the receipt is stale.

        Also False past SQS's 12 hours in flight: the message will be redelivered then.
        """
        visibility = _seconds(lease, MAX_LEASE_SECONDS, "lease")
        if self._superseded(message):
            return False
        with translate(f"extending the lease of message {message.id} on SQS queue {self.name}"):
            try:
                self._sqs.change_message_visibility(
                    QueueUrl=self.url, ReceiptHandle=message.receipt, VisibilityTimeout=visibility
                )
            except Exception as exc:
                if _lease_lost(error_code(exc), error_message(exc)):
                    return False
                raise
        return True

    def depth(self) -> int:
        """Visible + in flight + delayed messages (approximate on AWS)."""
        names = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ]
        with translate(f"counting the messages of SQS queue {self.name}"):
            attributes = self._sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=names)["Attributes"]
        return sum(int(attributes.get(name, 0)) for name in names)

    def dead_letters(self) -> SqsQueue | None:
        """The queue this one's redrive policy names (the stack's ``...-dlq``); None without a policy."""
        if not self._redrive_read:
            with translate(f"reading the redrive policy of SQS queue {self.name}"):
                attributes = self._sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["RedrivePolicy"])
                policy = attributes.get("Attributes", {}).get("RedrivePolicy")
                found: SqsQueue | None = None
                if policy:
                    dlq_name = str(json.loads(policy)["deadLetterTargetArn"]).rsplit(":", 1)[-1]
                    url = self._sqs.get_queue_url(QueueName=dlq_name)["QueueUrl"]
                    found = SqsQueue(str(url), self.clients, max_body_bytes=self.max_body_bytes)
            self._dead_letters, self._redrive_read = found, True
        return self._dead_letters

    # ------------------------------------------------------------ batches

    def _batch(
        self, call: Callable[..., Any], entries: list[dict[str, Any]], doing: str
    ) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        """Run a batch call, retrying entries that failed on AWS's side; return (successful, failed) by Id."""
        successful: dict[str, dict[str, Any]] = {}
        failed: dict[str, dict[str, Any]] = {}
        pending = entries
        for attempt in range(_BATCH_ATTEMPTS):
            with translate(doing):
                response = call(QueueUrl=self.url, Entries=pending)
            successful.update((entry["Id"], entry) for entry in response.get("Successful", []))
            by_id = {entry["Id"]: entry for entry in pending}
            retry: list[dict[str, Any]] = []
            for entry in response.get("Failed", []):
                if entry.get("SenderFault") or attempt == _BATCH_ATTEMPTS - 1:
                    failed[entry["Id"]] = entry
                else:
                    retry.append(by_id[entry["Id"]])
            if not retry:
                break
            pending = retry
            time.sleep(0.05 * 2**attempt)
        return successful, failed


def _entry_error(doing: str, failed: Mapping[str, Mapping[str, Any]]) -> MayflyError:
    """One error for the entries of a batch AWS refused."""
    entry = next(iter(failed.values()))
    code, message = str(entry.get("Code", "")), str(entry.get("Message", ""))
    detail = f"{code}: {message}" if message else code
    text = f"{doing}: {len(failed)} failed ({detail})"
    if code in THROTTLING:
        return Throttled(text)
    if entry.get("SenderFault"):
        return InvalidInput(text)
    return Unavailable(text)


def _message(raw: Mapping[str, Any]) -> Message:
    return Message(
        id=str(raw["MessageId"]),
        body=str(raw["Body"]),
        receipt=str(raw["ReceiptHandle"]),
        deliveries=int(raw.get("Attributes", {}).get("ApproximateReceiveCount", 1)),
    )


class SqsQueueSet(QueueSet):
    """The ``tasks``, ``control`` and ``events`` SQS queues of one target."""

    def __init__(self, urls: Mapping[str, str], clients: Clients) -> None:
        missing = [kind for kind in KINDS if not urls.get(kind)]
        unknown = sorted(set(urls) - set(KINDS))
        if missing or unknown:
            raise InvalidSettings(
                f"SQS queue URLs needed for tasks, control and events (missing: {', '.join(missing) or '-'}; "
                f"unknown: {', '.join(unknown) or '-'})"
            )
        self.clients = clients
        self.queues = {kind: SqsQueue(urls[kind], clients) for kind in KINDS}

    @classmethod
    def from_settings(cls, settings: EcsSettings, clients: Clients | None = None) -> SqsQueueSet:
        """The queues named in an ``ecs`` target's settings."""
        urls = {
            "tasks": settings.tasks_queue_url,
            "control": settings.control_queue_url,
            "events": settings.events_queue_url,
        }
        return cls(urls, clients or Clients(settings.region, settings.endpoint_url))

    def get(self, kind: str) -> SqsQueue:
        """The ``tasks``, ``control`` or ``events`` queue."""
        try:
            return self.queues[kind]
        except KeyError:
            raise InvalidInput(f"unknown queue kind {kind!r}; an ecs target has tasks, control and events") from None
