"""The composition root of one Mayfly home: store, blobs, queues, services, control plane, runners.

The CLI and the HTTP API build one :class:`Mayfly` and call its services. The
runtime catalog and the plugins are passed in, so this module imports no
provider and no image tooling.
"""

from __future__ import annotations

import contextlib
from functools import cached_property
from typing import TYPE_CHECKING, Any

from mayfly.core.config import DEFAULT_PROJECT, Home, lease_seconds
from mayfly.core.errors import TaskAlreadyFinished, TaskNotFound

if TYPE_CHECKING:
    # Imported where used: a command that reads one task (``mayfly task show``) loads neither the
    # control plane, nor the runner, nor the queues, nor the providers' plugins (docs/decisions.md,
    # "CLI start-up").
    from mayfly.core.blobs import BlobStore
    from mayfly.core.budgets import BudgetService
    from mayfly.core.codes import CodeService, RuntimeResolver
    from mayfly.core.control import ControlPlane
    from mayfly.core.costs import CostService
    from mayfly.core.delivery import Deliverer
    from mayfly.core.messages import CancelMessage
    from mayfly.core.metrics import Metrics
    from mayfly.core.plugins import Plugins
    from mayfly.core.projects import ProjectService
    from mayfly.core.provider import Provider, Transport
    from mayfly.core.queues import QueueSet
    from mayfly.core.queues.embedded import EmbeddedBroker
    from mayfly.core.queues.store import StoreBroker
    from mayfly.core.runner import Runner
    from mayfly.core.schedules import ScheduleService
    from mayfly.core.secrets import SecretBox
    from mayfly.core.store import Store
    from mayfly.core.targets import TargetService
    from mayfly.core.tasks import TaskService
    from mayfly.core.tokens import TokenService
    from mayfly.core.webhooks import WebhookService


class Mayfly:
    """Everything one home offers, created lazily."""

    def __init__(self, home: Home, runtimes: RuntimeResolver, *, plugins: Plugins | None = None) -> None:
        self.home = home.ensure()
        self.limits = home.limits
        self.resolve_runtime = runtimes
        self._plugins = plugins
        self._transports: dict[str, Transport] = {}

    # ------------------------------------------------------------ parts

    @cached_property
    def plugins(self) -> Plugins:
        from mayfly.core.plugins import default_plugins

        return self._plugins or default_plugins()

    @cached_property
    def store(self) -> Store:
        from mayfly.core.store import Store

        return Store(self.home.db_url)

    @cached_property
    def blobs(self) -> BlobStore:
        """Code packages, and the blobs of targets without a blob store of their own (logs, results, records).

        The home's folder; with PostgreSQL as the store, the store's ``blobs`` table, which every
        server and runner of the installation reads, on whatever machine.
        """
        if self.store.is_postgres:
            from mayfly.core.blobs.store import StoreBlobStore

            return StoreBlobStore(self.store)
        from mayfly.core.blobs.local import LocalBlobStore

        return LocalBlobStore(self.home.blobs_dir)

    @cached_property
    def broker(self) -> EmbeddedBroker:
        from mayfly.core.queues.embedded import EmbeddedBroker

        return EmbeddedBroker(self.home.queue_db)

    @cached_property
    def store_broker(self) -> StoreBroker:
        """The queues in the PostgreSQL store; the home's wake-ups wake this machine's receivers at once."""
        from mayfly.core.queues.store import StoreBroker

        return StoreBroker(self.store, wakeups=self.broker.wakeups)

    @property
    def shared(self) -> bool:
        """True when the store is PostgreSQL: servers and runners on several machines share it (docs/scale.md)."""
        return self.store.is_postgres

    @cached_property
    def secret_box(self) -> SecretBox:
        """Seals and opens secret values with the home's key (``MAYFLY_SECRET_KEY`` or keys/secret.key)."""
        from mayfly.core.secretkeys import any_sealed
        from mayfly.core.secrets import SecretBox

        return SecretBox(self.home.secret_key_file, may_create=lambda: not any_sealed(self.store))

    @cached_property
    def home_id(self) -> str:
        return self.home.id

    @cached_property
    def metrics(self) -> Metrics:
        """This process's counters and histograms (the control plane and deliverer observe, /metrics reads)."""
        from mayfly.core.metrics import Metrics

        return Metrics()

    # ------------------------------------------------------------ services

    @cached_property
    def projects(self) -> ProjectService:
        from mayfly.core.projects import ProjectService

        return ProjectService(self.store)

    @cached_property
    def targets(self) -> TargetService:
        from mayfly.core.targets import TargetService

        # The plugins (entry points, provider modules) load when a provider class is first needed.
        service = TargetService(self.store, lambda name: self.plugins.registry.get(name))
        service.ensure_local()
        return service

    @cached_property
    def codes(self) -> CodeService:
        from mayfly.core.codes import CodeService

        return CodeService(
            self.store, self.blobs, self.limits, self.resolve_runtime, self.targets.admit, secrets=self.secret_box
        )

    @cached_property
    def schedules(self) -> ScheduleService:
        from mayfly.core.schedules import ScheduleService

        return ScheduleService(self.store, self.limits, self.codes.get, self.targets.admit)

    @cached_property
    def tokens(self) -> TokenService:
        from mayfly.core.tokens import TokenService

        return TokenService(self.store)

    @cached_property
    def costs(self) -> CostService:
        """Prices, recorded attempts and their cost (issue 18 part 2)."""
        from mayfly.core.costs import CostService

        return CostService(self.store)

    @cached_property
    def budgets(self) -> BudgetService:
        """Projects' daily and monthly budgets (issue 18 part 3)."""
        from mayfly.core.budgets import BudgetService

        return BudgetService(self.store)

    @cached_property
    def webhooks(self) -> WebhookService:
        from mayfly.core.webhooks import WebhookService

        return WebhookService(self.store)

    @cached_property
    def tasks(self) -> TaskService:
        from mayfly.core.tasks import TaskService

        return TaskService(
            self.store,
            self.limits,
            self.codes.get,
            self.targets.admit,
            self.blobs_for,
            self._send_cancel,
            on_queued=self._wake_router,
            secrets=self.secret_box,
            secrets_refusal=self._secrets_refusal,
        )

    def _wake_router(self) -> None:
        from mayfly.core.control import ROUTER_BELL

        self.broker.wakeups.notify(ROUTER_BELL)

    def _secrets_refusal(self, target: str) -> str | None:
        """Why the target's provider cannot take secrets (it lacks ``Capability.SECRETS``), or None."""
        from mayfly.core.provider import Capability

        cls = self.plugins.registry.get(self.targets.get(target).provider)
        if Capability.SECRETS in cls.capabilities:
            return None
        return cls.unsupported.get(Capability.SECRETS, f"provider {cls.name!r} does not declare the capability")

    def project_id(self, name: str | None = None) -> str:
        """The id of a project (the default one unless named), created on first use."""
        return self.projects.ensure(name or DEFAULT_PROJECT).id

    # ------------------------------------------------------------ per target

    def transport(self, target: str) -> Transport:
        """The target's queues and blob store: its provider's own, or the home's embedded ones."""
        if target not in self._transports:
            from mayfly.core.provider import Transport
            from mayfly.core.queues.embedded import EmbeddedQueueSet
            from mayfly.core.queues.store import StoreQueueSet

            record = self.targets.get(target)
            cls = self.plugins.registry.get(record.provider)
            own = cls.transport(cls.Settings.model_validate(record.settings_dict), target)
            if own is None and self.shared:
                # A Docker target's queues in the store: runners on several machines serve it together.
                own = Transport(StoreQueueSet(self.store_broker, target), self.blobs)
            self._transports[target] = own or Transport(EmbeddedQueueSet(self.broker, target), self.blobs)
        return self._transports[target]

    def queues_for(self, target: str) -> QueueSet:
        """The target's task, control and events queues."""
        return self.transport(target).queues

    def blobs_for(self, target: str) -> BlobStore:
        """The target's blob store (the home's local directory for local targets)."""
        return self.transport(target).blobs

    def _send_cancel(self, target: str, msg: CancelMessage) -> None:
        self.queues_for(target).get("control").send(msg.dumps())

    def provider_for(self, target: str) -> Provider[Any]:
        """A provider instance configured with the target's settings."""
        from mayfly.core.provider import ProviderContext

        record = self.targets.get(target)
        cls = self.plugins.registry.get(record.provider)
        settings = cls.Settings.model_validate(record.settings_dict)
        work_dir = self.home.run_dir / target
        work_dir.mkdir(parents=True, exist_ok=True)
        context = ProviderContext(blobs=self.blobs_for(target), work_dir=work_dir, home_id=self.home_id, target=target)
        return cls(settings, context)

    def control_plane(self, targets: list[str] | None = None) -> ControlPlane:
        """A control plane for the given targets (all by default)."""
        from mayfly.core.control import ROUTER_BELL, ControlPlane, TargetWiring
        from mayfly.core.queues.embedded import EmbeddedQueue
        from mayfly.core.queues.store import StoreQueue
        from mayfly.core.scheduler import fire_due

        names = targets or [t.name for t in self.targets.list()]
        wiring = {
            name: TargetWiring(self.queues_for(name), self.blobs_for(name), self.targets.get(name).capacity)
            for name in names
        }
        # Woken by new tasks (this process or another on the same home) and by embedded events.
        bells = [ROUTER_BELL] + [
            q.name
            for q in (w.queues.get("events") for w in wiring.values())
            if isinstance(q, EmbeddedQueue | StoreQueue)
        ]
        return ControlPlane(
            self.store,
            self.limits,
            wiring,
            wait_for_work=lambda timeout: self.broker.wakeups.wait_any(bells, timeout),
            code_source=self.blobs,
            scheduler=lambda now: fire_due(self.store, self.tasks, now),
            cancel=self._cancel_quietly,
            metrics=self.metrics,
        )

    def deliverer(self) -> Deliverer:
        """Sends completion webhooks from the store's outbox."""
        from mayfly.core.delivery import Deliverer

        return Deliverer(self.store, metrics=self.metrics)

    def _cancel_quietly(self, project_id: str, task_id: str) -> None:
        """Cancel a task unless it already ended (the overlap policy "replace" races the task's own end)."""
        with contextlib.suppress(TaskAlreadyFinished, TaskNotFound):
            self.tasks.cancel(project_id, task_id)

    def runner(self, target: str, *, lease: float | None = None, concurrency: int | None = None) -> Runner:
        """A runner for one target: at most ``concurrency`` attempts at once (default: the target's capacity)."""
        from mayfly.core.queues.store import StoreQueueSet
        from mayfly.core.runner import Runner

        record = self.targets.get(target)
        return Runner(
            target,
            self.provider_for(target),
            self.queues_for(target),
            self.blobs_for(target),
            concurrency=concurrency or record.capacity,
            lease=lease or lease_seconds(),
            open_secrets=self.secret_box.open,
            # Runners on several machines share a target's queues and blobs: each names its own launches.
            owner=self.home_id if self.shared and isinstance(self.queues_for(target), StoreQueueSet) else None,
        )

    def close(self) -> None:
        if "store_broker" in self.__dict__:
            self.store_broker.close()
        if "store" in self.__dict__:
            self.store.close()
        if "broker" in self.__dict__:
            self.broker.close()
