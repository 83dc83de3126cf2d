"""In-process metrics: plain counters and histograms, with no dependency on a metrics library.

The control plane observes launch latency and run duration when it applies
STARTED and terminal events; the deliverer counts webhook outcomes. The HTTP
API renders them, with gauges read from the store, in Prometheus' text format
(``mayfly.api.metrics``). Values live in this process: they start from zero on
restart, as Prometheus counters and histograms are expected to.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

LabelValues = tuple[str, ...]


class Timed(Protocol):
    """What the observations read of a task: a ``Task`` record, or the control plane's few columns of it."""

    @property
    def target(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def run_at(self) -> float: ...
    @property
    def dispatched_at(self) -> float | None: ...
    @property
    def start_time(self) -> float | None: ...
    @property
    def end_time(self) -> float | None: ...


#: Seconds from dispatch (or from being due) to a running container.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)
#: Seconds a task's container ran.
DURATION_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0)


@dataclass(frozen=True)
class Sample:
    """One line of the exposition: a name (with its suffix), labels and a value."""

    name: str
    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class Family:
    """A metric family: ``kind`` is ``counter``, ``gauge`` or ``histogram``."""

    name: str
    kind: str
    help: str
    samples: list[Sample] = field(default_factory=list)


class Counter:
    """A monotonically increasing count per label set."""

    def __init__(self, name: str, help_: str, labels: Sequence[str]) -> None:
        self.name, self.help, self.labels = name, help_, tuple(labels)
        self._lock = threading.Lock()
        self._values: dict[LabelValues, float] = {}

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        with self._lock:
            self._values[labels] = self._values.get(labels, 0.0) + amount

    def value(self, *labels: str) -> float:
        with self._lock:
            return self._values.get(labels, 0.0)

    def collect(self) -> Family:
        with self._lock:
            items = sorted(self._values.items())
        family = Family(self.name, "counter", self.help)
        family.samples.extend(Sample(f"{self.name}_total", dict(zip(self.labels, k, strict=True)), v) for k, v in items)
        return family


class Histogram:
    """Cumulative buckets, a sum and a count per label set."""

    def __init__(self, name: str, help_: str, labels: Sequence[str], buckets: Sequence[float]) -> None:
        self.name, self.help, self.labels = name, help_, tuple(labels)
        self.buckets = tuple(sorted(buckets))
        self._lock = threading.Lock()
        # Per label set: a count per bucket (non-cumulative, +Inf last), and the sum.
        self._counts: dict[LabelValues, list[int]] = {}
        self._sums: dict[LabelValues, float] = {}

    def observe(self, value: float, *labels: str) -> None:
        index = next((i for i, bound in enumerate(self.buckets) if value <= bound), len(self.buckets))
        with self._lock:
            counts = self._counts.setdefault(labels, [0] * (len(self.buckets) + 1))
            counts[index] += 1
            self._sums[labels] = self._sums.get(labels, 0.0) + value

    def count(self, *labels: str) -> int:
        with self._lock:
            return sum(self._counts.get(labels, ()))

    def collect(self) -> Family:
        with self._lock:
            items = [(k, list(v), self._sums[k]) for k, v in sorted(self._counts.items())]
        family = Family(self.name, "histogram", self.help)
        for key, counts, total in items:
            labels = dict(zip(self.labels, key, strict=True))
            running = 0
            for bound, n in zip((*self.buckets, math.inf), counts, strict=True):
                running += n
                family.samples.append(Sample(f"{self.name}_bucket", {**labels, "le": _bound(bound)}, running))
            family.samples.append(Sample(f"{self.name}_sum", labels, total))
            family.samples.append(Sample(f"{self.name}_count", labels, running))
        return family


def _bound(value: float) -> str:
    return "+Inf" if math.isinf(value) else repr(value)


class Metrics:
    """The metrics one Mayfly process keeps."""

    def __init__(self) -> None:
        self.launch_latency = Histogram(
            "mayfly_task_launch_latency_seconds",
            "Seconds from dispatch (a slot reserved, the task message sent) to the container running.",
            ("target",),
            LATENCY_BUCKETS,
        )
        self.queue_wait = Histogram(
            "mayfly_task_queue_wait_seconds",
            "Seconds from when a task was due (created plus delay, or its retry time) to its container running.",
            ("target",),
            LATENCY_BUCKETS,
        )
        self.run_duration = Histogram(
            "mayfly_task_run_duration_seconds",
            "Seconds from a task's start to its end, by the terminal status it reached.",
            ("target", "status"),
            DURATION_BUCKETS,
        )
        self.webhook_deliveries = Counter(
            "mayfly_webhook_deliveries",
            "Webhook delivery attempts by outcome: delivered, failed (retried later), gave_up, refused.",
            ("outcome",),
        )

    def collect(self) -> list[Family]:
        return [m.collect() for m in (self.launch_latency, self.queue_wait, self.run_duration, self.webhook_deliveries)]

    def observe_started(self, tasks: Iterable[Timed]) -> None:
        """Tasks whose STARTED event was just applied."""
        for task in tasks:
            if task.start_time is None:
                continue
            if task.dispatched_at is not None:
                # Runner and control plane clocks may differ by a little: never a negative latency.
                self.launch_latency.observe(max(0.0, task.start_time - task.dispatched_at), task.target)
            self.queue_wait.observe(max(0.0, task.start_time - task.run_at), task.target)

    def observe_ended(self, tasks: Iterable[Timed]) -> None:
        """Tasks that an event just made terminal (those that never started have no duration)."""
        for task in tasks:
            if task.start_time is not None and task.end_time is not None:
                self.run_duration.observe(max(0.0, task.end_time - task.start_time), task.target, task.status)
