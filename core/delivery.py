"""The webhook deliverer: sends due outbox rows, records every attempt, schedules the next one.

It runs in a thread of its own (``Serving``), not in the control plane's loop:
a receiver that takes its full timeout must not delay events and dispatch.

* Claim: an attempt is taken by pushing its due time forward by a lease, in a
  compare-and-set; a deliverer that dies mid-send leaves the lease to expire
  and the attempt is sent again. Delivery is therefore at least once, and
  receivers dedupe on ``X-Mayfly-Delivery``, which every attempt repeats.
* Send: the URL is checked again (:mod:`.webhook_urls`) and the request goes
  to the addresses that check resolved, over ``http.client``, which follows no
  redirect; a 2xx answer within the timeout is delivered, anything else fails.
* Retry: after attempt n fails, attempt n + 1 is due ``backoff[n - 1]`` seconds
  later; after ``len(backoff) + 1`` attempts the delivery is given up. The task
  itself is never touched.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import func, insert, select, update

from mayfly.core import __version__
from mayfly.core.budgets import alert_body
from mayfly.core.errors import InvalidInput
from mayfly.core.lifecycle import load_task
from mayfly.core.metrics import Metrics
from mayfly.core.outage import Outage, forever
from mayfly.core.records import Delivery
from mayfly.core.store import Store
from mayfly.core.store import schema as s
from mayfly.core.webhook_urls import Endpoint, Policy, Resolver, endpoint, system_resolve
from mayfly.core.webhooks import WebhookService, event_name, sign

log = logging.getLogger("mayfly.webhooks")

#: Seconds before attempts 2, 3, 4, 5 and 6; then the delivery is given up.
BACKOFF = (10.0, 30.0, 120.0, 600.0, 3600.0)
TIMEOUT = 5.0
#: How long a claimed attempt stays invisible to other deliverers (well above the timeout).
LEASE = 60.0
_WD = s.webhook_deliveries

#: Sends one request: (endpoint, body, headers, timeout) → HTTP status; raises OSError or HTTPException.
Sender = Callable[[Endpoint, bytes, Mapping[str, str], float], int]


@dataclass(frozen=True)
class Result:
    """What one attempt got: an HTTP status, or an error."""

    status_code: int | None = None
    error: str | None = None
    #: The SSRF guard refused the URL at send time.
    refused: bool = False

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class Deliverer:
    """Sends completion webhooks from the ``webhook_deliveries`` outbox."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
        timeout: float = TIMEOUT,
        backoff: Sequence[float] = BACKOFF,
        lease: float = LEASE,
        batch: int = 20,
        workers: int = 4,
        policy: Policy | None = None,
        resolve: Resolver = system_resolve,
        send: Sender | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.timeout = timeout
        self.backoff = tuple(backoff)
        self.lease = lease
        self.batch = batch
        self.workers = workers
        #: None: read MAYFLY_WEBHOOK_ALLOW_PRIVATE before every send.
        self.policy = policy
        self.resolve = resolve
        self.send = send or post
        self.metrics = metrics
        self.secrets = WebhookService(store, clock)
        self.outage = Outage("webhook deliveries", log)

    @property
    def max_attempts(self) -> int:
        return len(self.backoff) + 1

    def run(self, stop: threading.Event, idle_wait: float = 0.5) -> None:
        """Deliver until ``stop`` is set; a store that fails pauses deliveries with a backoff (:mod:`.outage`)."""

        def one_pass() -> None:
            if not self.step():
                stop.wait(idle_wait)

        forever(stop, self.outage, one_pass)

    def step(self) -> int:
        """Send every attempt due now (concurrently, up to ``workers``); return how many were made."""
        claimed = self._claim(self.clock())
        if len(claimed) <= 1 or self.workers <= 1:
            for d in claimed:
                self._deliver(d)
        else:
            with ThreadPoolExecutor(max_workers=min(self.workers, len(claimed)), thread_name_prefix="webhook") as ex:
                list(ex.map(self._deliver, claimed))
        return len(claimed)

    def due(self) -> int:
        """How many attempts are due now (``mayfly run`` waits for them before it exits)."""
        with self.store.read() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(_WD)
                    .where(_WD.c.attempted_at.is_(None), _WD.c.next_attempt_at <= self.clock())
                ).scalar_one()
            )

    def _claim(self, now: float) -> list[Delivery]:
        due = _WD.c.attempted_at.is_(None) & (_WD.c.next_attempt_at <= now)
        with self.store.read() as conn:  # the idle loop takes no write lock
            ids = conn.execute(select(_WD.c.id).where(due).order_by(_WD.c.next_attempt_at).limit(self.batch)).all()
        if not ids:
            return []
        with self.store.write() as conn:
            rows = conn.execute(
                update(_WD)
                .where(_WD.c.id.in_([r[0] for r in ids]), due)
                .values(next_attempt_at=now + self.lease)
                .returning(*_WD.c)
            ).mappings()
            return sorted((Delivery.from_row(r) for r in rows), key=lambda d: d.id)

    def _deliver(self, d: Delivery) -> None:
        result = self._attempt(d)
        self._record(d, result, self.clock())

    def _attempt(self, d: Delivery) -> Result:
        try:
            target = endpoint(d.url, self.policy or Policy.from_env(), self.resolve)
        except InvalidInput as exc:
            return Result(error=exc.message, refused=True)
        except OSError as exc:
            return Result(error=f"cannot resolve the webhook host: {_describe(exc, self.timeout)}")
        alert = d.status.startswith("budget.")
        with self.store.read() as conn:
            task = load_task(conn, d.task_id)
            content = alert_body(conn, d.delivery_id) if alert else None
        if task is None:  # pragma: no cover - deliveries reference their task
            return Result(error="task not found")
        # A budget alert (core.budgets) rides the same outbox; its body is the budget's, not the task's.
        name = d.status if alert else event_name(d.status)
        content = content or {**task.to_json(with_payload=False), "event": name}
        body = json.dumps(content).encode()
        timestamp = int(self.clock())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"mayfly/{__version__}",
            "X-Mayfly-Event": name,
            "X-Mayfly-Delivery": d.delivery_id,
            "X-Mayfly-Attempt": str(d.attempt),
            "X-Mayfly-Timestamp": str(timestamp),
            "X-Mayfly-Signature": sign(self.secrets.secret(d.project_id), timestamp, body),
        }
        try:
            return Result(status_code=self.send(target, body, headers, self.timeout))
        except (OSError, http.client.HTTPException) as exc:
            return Result(error=_describe(exc, self.timeout))

    def _record(self, d: Delivery, result: Result, now: float) -> None:
        retry = not result.delivered and d.attempt < self.max_attempts
        with self.store.write() as conn:
            conn.execute(
                update(_WD)
                .where(_WD.c.id == d.id)
                .values(
                    attempted_at=now, status_code=result.status_code, error=result.error, delivered=result.delivered
                )
            )
            if retry:
                conn.execute(
                    insert(_WD).values(
                        delivery_id=d.delivery_id,
                        task_id=d.task_id,
                        project_id=d.project_id,
                        status=d.status,
                        attempt=d.attempt + 1,
                        url=d.url,
                        created_at=now,
                        next_attempt_at=now + self.backoff[d.attempt - 1],
                        delivered=False,
                    )
                )
        outcome = "delivered" if result.delivered else "refused" if result.refused else "failed" if retry else "gave_up"
        if not result.delivered and not retry:
            log.warning("gave up webhook %s of task %s after %d attempts", d.delivery_id, d.task_id, d.attempt)
        if self.metrics is not None:
            self.metrics.webhook_deliveries.inc(outcome)


def post(target: Endpoint, body: bytes, headers: Mapping[str, str], timeout: float) -> int:
    """POST to the checked addresses of ``target``; never follows a redirect."""
    conn: http.client.HTTPConnection
    if target.scheme == "https":
        conn = _PinnedHTTPS(target.host, target.port, target.addresses, timeout, ssl.create_default_context())
    else:
        conn = _PinnedHTTP(target.host, target.port, target.addresses, timeout)
    try:
        conn.request("POST", target.target, body=body, headers=dict(headers))
        return conn.getresponse().status
    finally:
        conn.close()


def _connect(addresses: Sequence[str], port: int, timeout: float | None) -> socket.socket:
    error: OSError = OSError("no address")
    for address in addresses:
        try:
            return socket.create_connection((address, port), timeout=timeout)
        except OSError as exc:
            error = exc
    raise error


class _PinnedHTTP(http.client.HTTPConnection):
    """Connects to addresses the SSRF guard checked, never to a fresh lookup of the name."""

    def __init__(self, host: str, port: int, addresses: Sequence[str], timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.addresses = addresses

    def connect(self) -> None:
        self.sock = _connect(self.addresses, self.port, self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to checked addresses; the certificate is verified against the URL's host name."""

    def __init__(self, host: str, port: int, addresses: Sequence[str], timeout: float, context: ssl.SSLContext) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self.addresses = addresses
        self.tls = context

    def connect(self) -> None:
        sock = _connect(self.addresses, self.port, self.timeout)
        self.sock = self.tls.wrap_socket(sock, server_hostname=self.host)


def _describe(exc: BaseException, timeout: float) -> str:
    """One line for the delivery log."""
    if isinstance(exc, TimeoutError):
        text = f"no answer within {timeout:g}s"
    elif isinstance(exc, ConnectionRefusedError):
        text = "connection refused"
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text[:500]
