"""Dead letters: what a target's queues gave up on, turned back into task outcomes.

A message delivered too many times without an ack moves to its queue's dead letters
(the embedded queues and the cloud stacks' redrive policies alike; see
:meth:`mayfly.core.queues.Queue.dead_letters`). Left there, its task would wait for
ever. The control plane drains them every few seconds:

* a **task message** (no runner ever finished launching it: runners crashed or lost the
  lease on it again and again) ends its attempt as ``lost``, not retried — relaunching
  a message that keeps killing runners would only do it again;
* a **dead event** (the control plane failed to apply it, e.g. through a long store
  outage) is applied again: events are idempotent, and dropping one would leave its
  task ``running`` for ever;
* a **cancel message** nobody took is dropped: the task is cancelled in the store
  already, and a runner that launches it later is stopped by the control plane.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from mayfly.core.messages import CancelMessage, Event, EventKind, parse_down
from mayfly.core.queues import Message, Queue, QueueSet

log = logging.getLogger("mayfly.control")

#: How often a control plane looks at its targets' dead letters, in seconds.
DRAIN_INTERVAL = 5.0


def lost_events(messages: Sequence[Message], now: float) -> tuple[list[str], list[Message]]:
    """The ``lost`` event bodies for dead-lettered task messages, and the messages to ack.

    Messages that cannot be parsed (or are cancels) produce no event and are acked all the same.
    """
    bodies: list[str] = []
    for m in messages:
        try:
            down = parse_down(m.body)
        except (ValueError, KeyError, TypeError) as exc:
            log.error("dropping a malformed dead-lettered task message %s: %s", m.id, exc)
            continue
        if isinstance(down, CancelMessage):
            continue
        reason = "its task message was delivered too many times without a runner finishing it (dead-lettered)"
        data = {"message": reason, "retryable": False}
        bodies.append(Event(down.task_id, down.attempt, EventKind.LOST, now, data).dumps())
    return bodies, list(messages)


def drain_tasks(queues: QueueSet, now: float, batch: int) -> int:
    """Turn the tasks queue's dead letters into ``lost`` events on the events queue; how many were drained."""
    dlq = queues.get("tasks").dead_letters()
    messages = dlq.receive(batch, lease=60.0) if dlq is not None else []
    if not messages or dlq is None:
        return 0
    bodies, done = lost_events(messages, now)
    log.warning("%d task message(s) were dead-lettered; their attempts end as lost", len(bodies))
    queues.get("events").send_and_ack(bodies, dlq, done)
    return len(messages)


def drain_cancels(queues: QueueSet, batch: int) -> int:
    """Drop cancel messages no runner took (the store has the task cancelled already)."""
    dlq = queues.get("control").dead_letters()
    messages = dlq.receive(batch, lease=60.0) if dlq is not None else []
    if dlq is not None and messages:
        dlq.ack_many(messages)
    return len(messages)


def dead_events(queues: QueueSet) -> Queue | None:
    """The events queue's dead letters, applied by the control plane like the events queue itself."""
    return queues.get("events").dead_letters()
