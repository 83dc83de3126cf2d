"""The Azure target as one Pulumi component: ``mayfly:azure:Target`` (pulumi-azure-native).

What it creates for a target called NAME (all children of the component):

- a resource group (``mayfly-NAME`` unless named) holding everything below, and the ``aci``
  provider's container groups later;
- a storage account (StorageV2): HTTPS only, TLS 1.2 at least, no public blob access, no
  cross-tenant replication, Entra ID by default; Shared Key access off unless the stack asks
  for it (the runner authenticates with its identity and signs user-delegation SAS URLs, so no
  account key exists to leak); a lifecycle management policy deleting ``runs/`` (payloads,
  results) and ``logs/`` after N days. ``codes/`` (content-addressed packages) never expires;
- queues ``PREFIX-tasks``, ``PREFIX-control``, ``PREFIX-events`` and a ``-poison`` queue for
  each (where messages past the dequeue limit go), as ``AciSettings.queue_prefix`` says;
- a private blob container;
- a container registry with the admin user disabled (pulls and pushes use Entra ID);
- two user-assigned identities, each with role assignments scoped to the resources it uses
  (:mod:`.roles` has the table and the sources):

  * ``NAME-pull``: put on every task container group to pull its image; AcrPull on the
    registry only. Task code gets no identity that reaches storage: it uses SAS URLs;
  * ``NAME-runner``: the runner's. Queue data on the account's queue service, blob data on
    the container, user-delegation keys on the account, the custom "Mayfly container groups"
    role (exactly the containerGroups actions) on the resource group, and Managed Identity
    Operator on the pull identity (assigning it to a group needs that);

  the ``principals`` of the stack file get the runner's roles too (a runner outside Azure);
- optionally the runner itself: a container group ``NAME-runner`` running
  ``mayfly runner --target TARGET`` with the runner identity and the target's settings in its
  environment (restart policy Always; no public IP: it only calls out).

:meth:`AzureTarget.settings_outputs` is exactly the ``aci`` provider's
:class:`~mayfly.providers.aci.settings.AciSettings`. Tested with ``pulumi.runtime.set_mocks``
only: no real ``pulumi up`` runs in this project's tests.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_azure_native as azure

from mayfly.infra.clouds.azure import roles
from mayfly.infra.clouds.azure.stack import AzureStack

#: Type token of the component.
TYPE_TOKEN = "mayfly:azure:Target"
#: The queue kinds of a target; each has a ``-poison`` queue.
QUEUE_KINDS = ("tasks", "control", "events")
#: Blob prefixes the lifecycle policy expires (``codes/`` never does).
EXPIRING_PREFIXES = ("runs/", "logs/")


@dataclass(frozen=True)
class AzureTargetArgs:
    """Inputs of :class:`AzureTarget` (names already validated by the stack file)."""

    subscription: str
    location: str
    resource_group: str
    storage_account: str
    registry: str
    target: str
    queue_prefix: str
    container: str = "mayfly"
    image_repository: str = "mayfly"
    storage_sku: str = "Standard_LRS"
    registry_sku: str = "Basic"
    shared_key_access: bool = False
    runs_expiry_days: int = 30
    logs_expiry_days: int = 30
    #: Entra principals (object id, principal type) that get the runner's roles (a runner outside Azure).
    principals: Sequence[tuple[str, str]] = ()
    #: Run the runner as a container group.
    runner: bool = False
    runner_image: str | None = None
    #: Runner size: cpu units (1024 = one vCPU) and MiB.
    runner_cpu: int = 512
    runner_memory: int = 1024
    runner_capacity: int = 10
    tags: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.runner and not self.runner_image:
            raise ValueError("runner_image is required when runner is on")

    @classmethod
    def from_stack(cls, stack: AzureStack) -> AzureTargetArgs:
        """The component's inputs for a validated stack file."""
        opts = stack.azure
        return cls(
            subscription=opts.subscription,
            location=stack.region,
            resource_group=stack.resource_group,
            storage_account=stack.storage_account,
            registry=stack.registry,
            target=stack.target_name,
            queue_prefix=stack.queue_prefix,
            container=opts.container,
            image_repository=opts.image_repository,
            storage_sku=opts.storage_sku,
            registry_sku=opts.registry_sku,
            shared_key_access=opts.shared_key_access,
            runs_expiry_days=opts.runs_expiry_days,
            logs_expiry_days=opts.logs_expiry_days,
            principals=tuple((p.id, p.type) for p in opts.principals),
            runner=stack.runner.enabled,
            runner_image=stack.runner.image,
            runner_cpu=stack.runner.cpu,
            runner_memory=stack.runner.memory,
            runner_capacity=stack.capacity,
            tags=dict(stack.tags),
        )

    @property
    def login_server(self) -> str:
        """The registry's login server (ACR lowercases the name)."""
        return f"{self.registry.lower()}.azurecr.io"

    @property
    def image_prefix(self) -> str:
        """``AciSettings.image_prefix``: runtime ``mayfly/runtime-NAME:V`` runs as ``PREFIX/runtime-NAME:V``."""
        return f"{self.login_server}/{self.image_repository}"


class AzureTarget(pulumi.ComponentResource):
    """Resource group, storage, queues, container, registry and identities of one ``aci`` target."""

    resource_group_name: pulumi.Output[str]
    resource_group_id: pulumi.Output[str]
    storage_account_name: pulumi.Output[str]
    storage_account_id: pulumi.Output[str]
    container_name: pulumi.Output[str]
    container_id: pulumi.Output[str]
    queue_names: list[pulumi.Output[str]]
    registry_name: pulumi.Output[str]
    registry_id: pulumi.Output[str]
    registry_server: pulumi.Output[str]
    pull_identity_id: pulumi.Output[str]
    pull_identity_client_id: pulumi.Output[str]
    pull_identity_principal_id: pulumi.Output[str]
    runner_identity_id: pulumi.Output[str]
    runner_identity_client_id: pulumi.Output[str]
    runner_identity_principal_id: pulumi.Output[str]
    container_group_role_id: pulumi.Output[str]
    runner_group_name: pulumi.Output[str] | None

    def __init__(self, name: str, args: AzureTargetArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE_TOKEN, name, None, opts)
        self._name, self._args = name, args
        self._tags: dict[str, str] = {"mayfly:target": args.target, **args.tags}
        child = pulumi.ResourceOptions(parent=self)
        location, tags = args.location, self._tags

        group = azure.resources.ResourceGroup(
            f"{name}-rg", resource_group_name=args.resource_group, location=location, tags=tags, opts=child
        )
        rg = group.name

        # ---------------------------------------------------------------- storage
        account = azure.storage.StorageAccount(
            f"{name}-storage",
            account_name=args.storage_account,
            kind="StorageV2",
            sku={"name": args.storage_sku},
            access_tier=azure.storage.AccessTier.HOT,
            enable_https_traffic_only=True,
            minimum_tls_version="TLS1_2",
            allow_blob_public_access=False,
            allow_shared_key_access=args.shared_key_access,
            allow_cross_tenant_replication=False,
            default_to_o_auth_authentication=True,
            resource_group_name=rg,
            location=location,
            tags=tags,
            opts=child,
        )
        container = azure.storage.BlobContainer(
            f"{name}-container",
            container_name=args.container,
            public_access=azure.storage.PublicAccess.NONE,
            account_name=account.name,
            resource_group_name=rg,
            opts=child,
        )
        policy: Any = {"rules": lifecycle_rules(args.container, args.runs_expiry_days, args.logs_expiry_days)}
        azure.storage.ManagementPolicy(
            f"{name}-lifecycle",
            management_policy_name="default",  # the only name Azure accepts
            policy=policy,
            account_name=account.name,
            resource_group_name=rg,
            opts=child,
        )
        queues = [
            azure.storage.Queue(
                f"{name}-{queue.removeprefix(args.queue_prefix + '-')}",
                queue_name=queue,
                account_name=account.name,
                resource_group_name=rg,
                opts=child,
            )
            for queue in queue_names(args.queue_prefix)
        ]

        # ---------------------------------------------------------------- registry
        registry = azure.containerregistry.Registry(
            f"{name}-registry",
            registry_name=args.registry,
            sku={"name": args.registry_sku},
            admin_user_enabled=False,
            anonymous_pull_enabled=False,
            resource_group_name=rg,
            location=location,
            tags=tags,
            opts=child,
        )

        # ---------------------------------------------------------------- identities and their roles
        pull, runner = (
            azure.managedidentity.UserAssignedIdentity(
                f"{name}-{role}",
                resource_name_=f"{args.target}-{role}",
                resource_group_name=rg,
                location=location,
                tags=tags,
                opts=child,
            )
            for role in ("pull", "runner")
        )
        role_guid = roles.container_group_role_guid(args.subscription, args.resource_group)
        container_groups_role = azure.authorization.RoleDefinition(
            f"{name}-container-groups",
            role_definition_id=role_guid,
            role_name=roles.container_group_role_name(args.subscription, args.resource_group),
            description=f"Mayfly runner of target {args.target}: create, watch, read logs of, stop and delete "
            "container groups in this resource group",
            role_type="CustomRole",
            scope=group.id,
            assignable_scopes=[group.id],
            permissions=[{"actions": list(roles.CONTAINER_GROUP_ACTIONS), "not_actions": []}],
            opts=child,
        )
        self._assign(f"{name}-pull-acrpull", pull.principal_id, roles.ACR_PULL, registry.id)
        grants: list[tuple[str, roles.BuiltInRole | pulumi.Output[str], pulumi.Input[str]]] = [
            ("queues", roles.STORAGE_QUEUE_DATA_CONTRIBUTOR, account.id.apply(lambda i: f"{i}/queueServices/default")),
            ("blobs", roles.STORAGE_BLOB_DATA_CONTRIBUTOR, container.id),
            ("delegator", roles.STORAGE_BLOB_DELEGATOR, account.id),
            ("container-groups", container_groups_role.id, group.id),
            ("assign-pull", roles.MANAGED_IDENTITY_OPERATOR, pull.id),
        ]
        self._runner_assignments = [
            self._assign(f"{name}-runner-{what}", runner.principal_id, role, scope) for what, role, scope in grants
        ]
        for index, (principal, kind) in enumerate(args.principals):
            for what, role, scope in grants:
                self._assign(f"{name}-principal{index}-{what}", principal, role, scope, principal_type=kind)

        # ---------------------------------------------------------------- outputs
        self.resource_group_name = group.name
        self.resource_group_id = group.id
        self.storage_account_name = account.name
        self.storage_account_id = account.id
        self.container_name = container.name
        self.container_id = container.id
        self.queue_names = [q.name for q in queues]
        self.registry_name = registry.name
        self.registry_id = registry.id
        self.registry_server = registry.login_server
        self.pull_identity_id = pull.id
        self.pull_identity_client_id = pull.client_id
        self.pull_identity_principal_id = pull.principal_id
        self.runner_identity_id = runner.id
        self.runner_identity_client_id = runner.client_id
        self.runner_identity_principal_id = runner.principal_id
        self.container_group_role_id = container_groups_role.id
        self.runner_group_name = None
        if args.runner:
            self._runner_group(group, pull, runner)
        self.register_outputs(self.outputs())

    # ---------------------------------------------------------------- public helpers

    def settings_outputs(self, *, runner_client_id: pulumi.Input[str] | None = None) -> pulumi.Output[dict[str, Any]]:
        """The target settings of the ``aci`` provider (the fields of ``AciSettings``), resolved.

        ``runner_client_id`` is left out of what a deploy records (a runner outside Azure uses its own
        credentials); the runner container group gets its identity's client id.
        """
        a = self._args
        values: dict[str, pulumi.Input[Any]] = {
            "subscription_id": a.subscription,
            "resource_group": self.resource_group_name,
            "location": a.location,
            "storage_account": self.storage_account_name,
            "queue_prefix": a.queue_prefix,
            "container": self.container_name,
            "registry_server": self.registry_server,
            "image_prefix": self.registry_server.apply(lambda server: f"{server}/{a.image_repository}"),
            "pull_identity_id": self.pull_identity_id,
        }
        if runner_client_id is not None:
            values["runner_client_id"] = runner_client_id
        return pulumi.Output.all(**values)

    def outputs(self) -> dict[str, pulumi.Input[Any]]:
        """Every output by name (what ``register_outputs`` and the stack export)."""
        values: dict[str, pulumi.Input[Any] | None] = {
            "subscription_id": self._args.subscription,
            "location": self._args.location,
            "resource_group": self.resource_group_name,
            "resource_group_id": self.resource_group_id,
            "storage_account": self.storage_account_name,
            "storage_account_id": self.storage_account_id,
            "container": self.container_name,
            "container_id": self.container_id,
            "queues": pulumi.Output.all(*self.queue_names),
            "registry_name": self.registry_name,
            "registry_id": self.registry_id,
            "registry_server": self.registry_server,
            "image_prefix": self.registry_server.apply(lambda server: f"{server}/{self._args.image_repository}"),
            "pull_identity_id": self.pull_identity_id,
            "pull_identity_client_id": self.pull_identity_client_id,
            "pull_identity_principal_id": self.pull_identity_principal_id,
            "runner_identity_id": self.runner_identity_id,
            "runner_identity_client_id": self.runner_identity_client_id,
            "runner_identity_principal_id": self.runner_identity_principal_id,
            "container_group_role_id": self.container_group_role_id,
            "runner_group_name": self.runner_group_name,
        }
        return {k: v for k, v in values.items() if v is not None}

    # ---------------------------------------------------------------- parts

    def _assign(
        self,
        name: str,
        principal: pulumi.Input[str],
        role: roles.BuiltInRole | pulumi.Output[str],
        scope: pulumi.Input[str],
        *,
        principal_type: str = "ServicePrincipal",
    ) -> azure.authorization.RoleAssignment:
        """One role assignment (managed identities are ServicePrincipals; ARM refuses a wrong type)."""
        definition = role.definition_id(self._args.subscription) if isinstance(role, roles.BuiltInRole) else role
        return azure.authorization.RoleAssignment(
            name,
            principal_id=principal,
            principal_type=principal_type,
            role_definition_id=definition,
            scope=scope,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _runner_group(
        self,
        group: azure.resources.ResourceGroup,
        pull: azure.managedidentity.UserAssignedIdentity,
        runner: azure.managedidentity.UserAssignedIdentity,
    ) -> None:
        """The runner as a container group: the runner identity, the target's settings in its environment."""
        a = self._args
        from_registry = str(a.runner_image).lower().startswith(a.login_server + "/")
        identities: list[pulumi.Input[str]] = [runner.id, *([pull.id] if from_registry else [])]
        settings = self.settings_outputs(runner_client_id=runner.client_id)
        environment = settings.apply(lambda s: runner_environment(a.target, s))
        container: Any = {
            "name": "runner",
            "image": a.runner_image,
            "command": ["mayfly", "runner", "--target", a.target, "--capacity", str(a.runner_capacity)],
            "environment_variables": environment,
            "resources": {"requests": {"cpu": a.runner_cpu / 1024, "memory_in_gb": round(a.runner_memory / 1024, 1)}},
        }
        identity: Any = {"type": "UserAssigned", "user_assigned_identities": identities}
        credentials: Any = [{"server": a.login_server, "identity": pull.id}] if from_registry else None
        runner_group = azure.containerinstance.ContainerGroup(
            f"{self._name}-runner",
            container_group_name=f"{a.target}-runner",
            resource_group_name=group.name,
            location=a.location,
            os_type="Linux",
            # One runner, restarted when it exits; a new one reattaches the old one's groups by their tags.
            restart_policy="Always",
            identity=identity,
            image_registry_credentials=credentials,
            containers=[container],
            tags=self._tags,
            # Its roles first: a runner that starts before them fails its first calls.
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(self._runner_assignments)),
        )
        self.runner_group_name = runner_group.name


# ---------------------------------------------------------------- plain data (tested)


def queue_names(prefix: str) -> list[str]:
    """Every queue of a target: ``PREFIX-KIND`` and ``PREFIX-KIND-poison``, as ``AciSettings`` describes."""
    return [name for kind in QUEUE_KINDS for name in (f"{prefix}-{kind}", f"{prefix}-{kind}-poison")]


def lifecycle_rules(container: str, runs_days: int, logs_days: int) -> list[dict[str, Any]]:
    """Delete payloads and results (``runs/``) and logs (``logs/``) N days after their last change."""
    days = {"runs/": runs_days, "logs/": logs_days}
    return [
        {
            "name": f"expire-{prefix.rstrip('/')}",
            "enabled": True,
            "type": "Lifecycle",
            "definition": {
                # Lifecycle prefixes start with the container's name.
                "filters": {"blob_types": ["blockBlob", "appendBlob"], "prefix_match": [f"{container}/{prefix}"]},
                "actions": {"base_blob": {"delete": {"days_after_modification_greater_than": days[prefix]}}},
            },
        }
        for prefix in EXPIRING_PREFIXES
    ]


def runner_environment(target: str, settings: Mapping[str, Any]) -> list[dict[str, str]]:
    """The runner group's environment: it builds its queues, blobs and provider from the settings alone.

    ``MAYFLY_HOME_ID`` stays the same across restarts, so a new runner finds the old one's groups.
    """
    return [
        {"name": "MAYFLY_TARGET_PROVIDER", "value": "aci"},
        {"name": "MAYFLY_TARGET_SETTINGS", "value": json.dumps(dict(settings), sort_keys=True)},
        {"name": "MAYFLY_HOME_ID", "value": f"runner-{target}"},
    ]


def stack_program(stack: AzureStack) -> Callable[[], None]:
    """The inline Pulumi program of an Azure stack file: the component, its outputs exported."""

    def program() -> None:
        target = AzureTarget(stack.target_name, AzureTargetArgs.from_stack(stack))
        for key, value in target.outputs().items():
            pulumi.export(key, value)
        pulumi.export("settings", target.settings_outputs())

    return program
