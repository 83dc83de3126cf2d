"""Azure Storage queues of an ``aci`` target: tasks and cancel requests down to runners, events back up.

Each target has three queues in its storage account, ``PREFIX-tasks``, ``PREFIX-control`` and
``PREFIX-events`` (``AciSettings.queue_prefix``), each with a ``PREFIX-KIND-poison`` queue for
its dead letters. A received message is leased with its *visibility timeout*: ``receive`` is
Get Messages with ``visibilitytimeout=lease``, ``extend`` is Update Message (the runner's
heartbeat) and ``ack`` is Delete Message.

What Azure Storage Queue does not have, and what Mayfly does instead:

* **stable receipts**: every Get Messages *and every Update Message* returns a new pop
  receipt, and only the newest one deletes or updates the message. :class:`AzureQueue`
  keeps, per message it received, the newest pop receipt behind the receipt it handed
  out (:attr:`Message.receipt` is the pop receipt of the delivery), so a caller's
  ``Message`` keeps working across any number of extensions; a receipt of an older
  delivery is refused (``ack``/``extend`` return False), and so is one Azure refuses
  (``PopReceiptMismatch``, ``MessageNotFound``: the lease was lost);
* **dead letters**: no redrive policy. ``receive`` moves a message delivered more than
  :data:`MAX_DELIVERIES` times (its ``dequeue_count``) to ``PREFIX-KIND-poison`` (copy,
  then delete) instead of returning it; the control plane reads that queue
  (:meth:`AzureQueue.dead_letters`);
* **long polling**: none. ``receive(wait=...)`` polls, backing off from 0.1 to 1 s;
* **batches**: none. ``send_many``, ``ack_many`` and ``extend_many`` run their calls on a few
  threads;
* **large messages**: a message is at most 64 KiB (:data:`MAX_INLINE_BYTES`, UTF-8 of the
  text; https://learn.microsoft.com/rest/api/storageservices/put-message), smaller than a
  task message with a full payload and config. With a blob store (always, for a target's
  queues) a larger body, up to :data:`MAX_BODY_BYTES`, is written to the blob
  ``queues/QUEUE/UUID`` and the message carries only a reference (:data:`BLOB_MARKER` + key);
  ``receive`` reads it back and ``ack`` deletes it after the message. A dead-lettered
  reference keeps its blob until the poison queue's message is acked. Without a blob store,
  larger bodies are refused (``invalid_input``).

Limits Mayfly enforces before calling Azure: characters XML 1.0 allows (Azure carries message
text in XML), delays and leases of at most 7 days (Azure's maximum visibility timeout; leases
round up to whole seconds, at least 1). Messages never expire (``messagettl=-1``), so a task
delayed for 7 days is still there.

Azure RBAC, on the queues: runner and control plane ``Storage Queue Data Contributor``
(send, receive, update, delete, read properties for ``depth``); with overflow bodies, the
blob permissions of :mod:`.blobs` on the ``queues/`` folder.

What Azurite (the emulator) does not cover: its ``ApproximateMessagesCount`` is exact; it
never throttles (``ServerBusy``).
"""

from __future__ import annotations

import contextlib
import math
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from mayfly.core.blobs import BlobStore
from mayfly.core.errors import InvalidInput, InvalidSettings
from mayfly.core.queues import Message, Queue, QueueSet
from mayfly.providers.aci.azure import StorageClients, error_code, status_of, translate

if TYPE_CHECKING:
    from mayfly.providers.aci.settings import AciSettings

#: Largest message text Azure stores (bytes of UTF-8).
MAX_INLINE_BYTES = 64 * 1024
#: Largest body Mayfly sends through a queue with a blob store (the overflow goes to a blob).
MAX_BODY_BYTES = 4 * 1024 * 1024
#: Deliveries after which ``receive`` moves a message to the poison queue.
MAX_DELIVERIES = 5
#: Azure's longest visibility timeout (7 days): the longest lease and delay.
MAX_LEASE_SECONDS = 7 * 24 * 3600
MAX_DELAY_SECONDS = MAX_LEASE_SECONDS
#: Most messages one Get Messages returns.
RECEIVE_BATCH = 32
#: The text of a message whose body is in the blob store: this marker, then the blob key.
BLOB_MARKER = "mayfly-queue-blob:"
KINDS = ("tasks", "control", "events")
POISON_SUFFIX = "-poison"
#: Threads per queue set for the calls Azure cannot batch.
WORKERS = 8

# XML 1.0 characters: anything else cannot travel in Azure's XML bodies.
_INVALID_CHARS = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# Azure's queue names: 3-63 lowercase letters, digits and single hyphens, starting and ending alphanumeric.
_QUEUE_NAME = re.compile(r"^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]\Z")
# Error codes meaning "this pop receipt no longer holds the message" (redelivered, deleted, or gone).
_LEASE_LOST = frozenset({"PopReceiptMismatch", "MessageNotFound"})
_POLL_START, _POLL_MAX = 0.1, 1.0
# Newest receipts remembered per queue (messages in flight in this process; the oldest are forgotten first).
_LEASES_KEPT = 10_000

T = TypeVar("T")
R = TypeVar("R")


def check_body(body: str, limit: int) -> int:
    """Return the size of ``body`` in bytes of UTF-8; raise InvalidInput if it cannot be sent."""
    bad = _INVALID_CHARS.search(body)
    if bad is not None:
        raise InvalidInput(f"message body has a character Azure queues refuse ({bad.group()!r} at {bad.start()})")
    size = len(body.encode("utf-8"))
    if size > limit:
        raise InvalidInput(f"message body is {size} bytes; messages of this Azure queue are limited to {limit} bytes")
    return size


def check_queue_name(name: str) -> str:
    """Return ``name``; raise InvalidSettings when Azure would refuse it as a queue name."""
    if not _QUEUE_NAME.match(name):
        raise InvalidSettings(
            f"{name!r} is not a valid Azure queue name (3-63 lowercase letters, digits and single hyphens, "
            "starting and ending with a letter or digit); choose a shorter or simpler queue_prefix"
        )
    return name


def _seconds(value: float, limit: int, what: str, minimum: int = 0) -> int:
    """Round a duration up to whole seconds, within Azure's range."""
    if not 0 <= value <= limit:  # also refuses NaN
        raise InvalidInput(f"{what} must be between 0 and {limit} seconds on Azure queues; got {value}")
    return max(minimum, math.ceil(value))


def _lease_lost(exc: BaseException) -> bool:
    """True when Azure refused a pop receipt because the delivery is over."""
    return status_of(exc) in (400, 404) and error_code(exc) in _LEASE_LOST


@dataclass
class _Lease:
    """A delivery this process received: the receipt handed out, and Azure's newest pop receipt for it."""

    receipt: str
    pop_receipt: str
    #: The overflow blob holding the body, deleted once the message is.
    blob_key: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class AzureQueue(Queue):
    """One Azure Storage queue, by name, with an optional blob store for bodies over 64 KiB."""

    def __init__(
        self,
        name: str,
        clients: StorageClients,
        *,
        overflow: BlobStore | None = None,
        dead_letter_queue: str | None = None,
        max_deliveries: int = MAX_DELIVERIES,
        pool: ThreadPoolExecutor | None = None,
    ) -> None:
        self.name = check_queue_name(name)
        self.clients = clients
        self.overflow = overflow
        self.max_body_bytes = MAX_BODY_BYTES if overflow is not None else MAX_INLINE_BYTES
        self.max_deliveries = max_deliveries
        self._dead_letter_name = check_queue_name(dead_letter_queue) if dead_letter_queue else None
        self._dead_letters: AzureQueue | None = None
        self._pool = pool
        self._lock = threading.Lock()
        self._leases: OrderedDict[str, _Lease] = OrderedDict()

    @property
    def _client(self) -> Any:
        return self.clients.queue_service.get_queue_client(self.name)

    def _each(self, call: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """``call`` on every item, on the pool's threads when there are several; results in order."""
        if self._pool is None or len(items) < 2:
            return [call(item) for item in items]
        return list(self._pool.map(call, items))

    def create(self) -> None:
        """Create the queue (and its poison queue) unless it exists: the stack does this in Azure."""
        from azure.core.exceptions import ResourceExistsError

        for name in filter(None, (self.name, self._dead_letter_name)):
            with translate(f"creating Azure queue {name}"), contextlib.suppress(ResourceExistsError):
                self.clients.queue_service.get_queue_client(name).create_queue()

    # ------------------------------------------------------------ send

    def send(self, body: str, *, delay: float = 0.0) -> str:
        """Enqueue ``body`` (visible after ``delay`` ≤ 7 days); return its message id."""
        return self.send_many([body], delay=delay)[0]

    def send_many(self, bodies: Sequence[str], *, delay: float = 0.0) -> list[str]:
        """Enqueue several bodies (Azure has no batch call: a few at a time); their message ids in order.

        Every body is checked before anything is sent.
        """
        sizes = [check_body(body, self.max_body_bytes) for body in bodies]
        visibility = _seconds(delay, MAX_DELAY_SECONDS, "delay")
        return self._each(lambda i: self._send_one(bodies[i], sizes[i], visibility), range(len(bodies)))

    def _send_one(self, body: str, size: int, visibility: int) -> str:
        blob_key = None
        text = body
        if self.overflow is not None and (size > MAX_INLINE_BYTES or body.startswith(BLOB_MARKER)):
            # A body that looks like a reference is stored as a blob too: every reference is then a real one.
            blob_key = f"queues/{self.name}/{uuid.uuid4().hex}"
            self.overflow.put(blob_key, body.encode("utf-8"))
            text = BLOB_MARKER + blob_key
        try:
            with translate(f"sending a message to Azure queue {self.name}"):
                sent = self._client.send_message(text, visibility_timeout=visibility, time_to_live=-1)
        except BaseException:
            if blob_key is not None and self.overflow is not None:
                with contextlib.suppress(Exception):
                    self.overflow.delete(blob_key)
            raise
        return str(sent.id)

    # ------------------------------------------------------------ receive

    def receive(self, max_messages: int = 1, *, wait: float = 0.0, lease: float = 30.0) -> list[Message]:
        """Lease up to ``max_messages`` messages, polling up to ``wait`` seconds for the first.

        Messages past :data:`MAX_DELIVERIES` deliveries are moved to the poison queue instead.
        """
        visibility = _seconds(lease, MAX_LEASE_SECONDS, "lease", minimum=1)
        deadline = time.monotonic() + max(wait, 0.0)
        pause = _POLL_START
        got: dict[str, Message] = {}
        while len(got) < max_messages:
            asked = min(RECEIVE_BATCH, max_messages - len(got))
            with translate(f"receiving messages from Azure queue {self.name}"):
                raw = list(
                    self._client.receive_messages(
                        messages_per_page=asked, max_messages=asked, visibility_timeout=visibility
                    )
                )
            for m in self._deliverable(raw):
                got[m.id] = m
            if raw:
                if len(raw) < asked:
                    break
                continue
            left = deadline - time.monotonic()
            if got or left <= 0:
                break
            time.sleep(min(pause, left))
            pause = min(_POLL_MAX, pause * 2)
        return list(got.values())

    def _deliverable(self, raw: Sequence[Any]) -> list[Message]:
        """The received messages to hand out: poison ones moved away, overflow bodies read back."""
        messages: list[Message] = []
        for item in raw:
            if self._dead_letter_name is not None and int(item.dequeue_count) > self.max_deliveries:
                self._move_to_poison(item)
                continue
            text = str(item.content or "")
            body, blob_key = self._body(text)
            message = Message(
                id=str(item.id), body=body, receipt=str(item.pop_receipt), deliveries=int(item.dequeue_count)
            )
            with self._lock:
                self._leases[message.id] = _Lease(message.receipt, message.receipt, blob_key)
                self._leases.move_to_end(message.id)
                while len(self._leases) > _LEASES_KEPT:
                    self._leases.popitem(last=False)
            messages.append(message)
        return messages

    def _body(self, text: str) -> tuple[str, str | None]:
        """The message's body and its overflow blob: the text itself, or the blob it references.

        A reference whose blob is gone is handed out as it is: receivers drop a body they cannot parse.
        """
        if not text.startswith(BLOB_MARKER) or self.overflow is None:
            return text, None
        key = text[len(BLOB_MARKER) :]
        try:
            return self.overflow.get(key).decode("utf-8"), key
        except KeyError:
            return text, None

    def _move_to_poison(self, item: Any) -> None:
        """Copy a message delivered too often to the poison queue, then delete it here."""
        dead = self.dead_letters()
        assert dead is not None
        with translate(f"moving message {item.id} of Azure queue {self.name} to {dead.name}"):
            dead._client.send_message(str(item.content or ""), time_to_live=-1)
            try:
                self._client.delete_message(item.id, item.pop_receipt)
            except Exception as exc:
                if not _lease_lost(exc):
                    raise

    # ------------------------------------------------------------ ack / extend

    def _current_pop(self, message: Message) -> tuple[_Lease | None, str | None]:
        """This process's lease of ``message`` and its newest pop receipt; (None, None) when superseded."""
        with self._lock:
            lease = self._leases.get(message.id)
        if lease is None:
            return None, message.receipt  # received elsewhere: only Azure's own checks apply
        if lease.receipt != message.receipt:
            return None, None
        return lease, lease.pop_receipt

    def _forget(self, message: Message) -> None:
        with self._lock:
            lease = self._leases.get(message.id)
            if lease is not None and lease.receipt == message.receipt:
                del self._leases[message.id]

    def ack(self, message: Message) -> bool:
        """Delete the message, then its overflow blob; False when the lease was lost.

        A crash between the two leaves the blob to the container's lifecycle rule.
        """
        lease, _ = self._current_pop(message)
        with lease.lock if lease is not None else contextlib.nullcontext():
            lease, pop = self._current_pop(message)  # again: an extension may have renewed it meanwhile
            if pop is None:
                return False
            with translate(f"deleting message {message.id} from Azure queue {self.name}"):
                try:
                    self._client.delete_message(message.id, pop)
                except Exception as exc:
                    if _lease_lost(exc):
                        self._forget(message)
                        return False
                    raise
            self._forget(message)
        if lease is not None and lease.blob_key is not None and self.overflow is not None:
            self.overflow.delete(lease.blob_key)
        return True

    def ack_many(self, messages: Sequence[Message]) -> list[bool]:
        """Delete several messages (a few at a time); one flag per message, as :meth:`ack` returns."""
        return self._each(self.ack, messages)

    def extend(self, message: Message, lease: float) -> bool:
        """Keep the message hidden for ``lease`` more seconds (Update Message); False when the lease was lost."""
        visibility = _seconds(lease, MAX_LEASE_SECONDS, "lease")
        held, _ = self._current_pop(message)
        with held.lock if held is not None else contextlib.nullcontext():
            _, pop = self._current_pop(message)
            if pop is None:
                return False
            with translate(f"extending the lease of message {message.id} on Azure queue {self.name}"):
                try:
                    updated = self._client.update_message(message.id, pop, visibility_timeout=visibility)
                except Exception as exc:
                    if _lease_lost(exc):
                        return False
                    raise
            if held is not None:
                held.pop_receipt = str(updated.pop_receipt)
        return True

    def extend_many(self, messages: Sequence[Message], lease: float) -> list[bool]:
        """Extend several leases (a few at a time)."""
        return self._each(lambda m: self.extend(m, lease), messages)

    # ------------------------------------------------------------ depth, dead letters

    def depth(self) -> int:
        """Messages in the queue, visible or not (Azure's ``ApproximateMessagesCount``: never lower than the truth)."""
        with translate(f"counting the messages of Azure queue {self.name}"):
            return int(self._client.get_queue_properties().approximate_message_count or 0)

    def dead_letters(self) -> AzureQueue | None:
        """The ``-poison`` queue messages delivered too often are moved to; None for a queue without one."""
        if self._dead_letter_name is None:
            return None
        if self._dead_letters is None:
            self._dead_letters = AzureQueue(
                self._dead_letter_name, self.clients, overflow=self.overflow, pool=self._pool
            )
        return self._dead_letters


class AzureQueueSet(QueueSet):
    """The ``tasks``, ``control`` and ``events`` queues of one target (and their poison queues)."""

    def __init__(
        self,
        prefix: str,
        clients: StorageClients,
        *,
        overflow: BlobStore | None = None,
        max_deliveries: int = MAX_DELIVERIES,
    ) -> None:
        self.clients = clients
        self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="mayfly-azure-queue")
        self.queues = {
            kind: AzureQueue(
                f"{prefix}-{kind}",
                clients,
                overflow=overflow,
                dead_letter_queue=f"{prefix}-{kind}{POISON_SUFFIX}",
                max_deliveries=max_deliveries,
                pool=self._pool,
            )
            for kind in KINDS
        }

    @classmethod
    def from_settings(
        cls, settings: AciSettings, clients: StorageClients | None = None, *, overflow: BlobStore | None = None
    ) -> AzureQueueSet:
        """The queues an ``aci`` target's settings name (``queue_prefix``), bodies over 64 KiB going to ``overflow``."""
        return cls(settings.queue_prefix, clients or StorageClients(settings), overflow=overflow)

    def get(self, kind: str) -> AzureQueue:
        """The ``tasks``, ``control`` or ``events`` queue."""
        try:
            return self.queues[kind]
        except KeyError:
            raise InvalidInput(f"unknown queue kind {kind!r}; an aci target has tasks, control and events") from None

    def create(self) -> None:
        """Create every queue and poison queue unless it exists (the emulator and tests; the stack in Azure)."""
        for queue in self.queues.values():
            queue.create()

    def close(self) -> None:
        """Stop the worker threads and close the connections."""
        self._pool.shutdown(wait=True)
        self.clients.close()


def queue_names(prefix: str) -> Mapping[str, str]:
    """Every queue a target with ``prefix`` uses, by role (``tasks``, ``tasks-poison``, ...)."""
    names = {kind: f"{prefix}-{kind}" for kind in KINDS}
    names.update({f"{kind}{POISON_SUFFIX}": f"{prefix}-{kind}{POISON_SUFFIX}" for kind in KINDS})
    return names
