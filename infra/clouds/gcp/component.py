"""The Google Cloud target as one Pulumi component: ``mayfly:gcp:Target``.

What it creates for a target called NAME in project PROJECT (all children of the
component; ``PREFIX`` is ``mayfly-NAME``, the ``queue_prefix`` and ``job_prefix`` of the
``cloudrun`` settings):

- the APIs the target uses, enabled (``enable_apis``; never disabled on destroy, other
  things in the project may use them);
- Pub/Sub: topics ``PREFIX-tasks``, ``PREFIX-control`` and ``PREFIX-events``, each with a
  pull subscription of the same id (ack deadline, message retention, no expiry, a retry
  policy with exponential backoff) whose dead-letter policy sends a message delivered
  ``max_delivery_attempts`` times to the topic ``PREFIX-KIND-dlq``, which has a subscription
  of the same id to inspect them. Pub/Sub's service agent
  (``service-PROJECT_NUMBER@gcp-sa-pubsub.iam.gserviceaccount.com``) gets publisher on each
  dead-letter topic and subscriber on each source subscription: without them nothing is
  dead-lettered;
- Cloud Storage: ``NAME-bucket-*`` (an auto-named bucket in the region) for code packages,
  payloads, results and logs: uniform bucket-level access (no ACLs), public access
  prevention enforced, versioning off, soft delete off by default, lifecycle rules deleting
  ``runs/`` and ``logs/`` after their days and aborting incomplete multipart uploads.
  ``codes/`` never expires;
- Artifact Registry: a docker repository ``PREFIX`` (``REGION-docker.pkg.dev/PROJECT/PREFIX``)
  for the runtime images, keeping the newest ``keep_images`` versions of each;
- IAM, least privilege, roles bound on the resources wherever Google allows it:

  * ``NAME-task@``: the identity of the untrusted task containers. No roles at all: tasks
    reach storage only through the signed URLs the runner hands them;
  * ``NAME-runner@``: the runner and the control plane. On the resources: publisher and
    viewer (``get``, which ``mayfly target check`` and the queue's dead-letter lookup make)
    on the three topics, subscriber and viewer on the three subscriptions, subscriber on the
    three dead-letter subscriptions, ``storage.objectUser`` (objects: get, create, delete,
    list) and ``storage.legacyBucketReader`` (the bucket's metadata) on the bucket,
    ``iam.serviceAccountUser`` on the task account only (to run jobs as it) and
    ``iam.serviceAccountTokenCreator`` on itself only (IAM signBlob: the V4 signed URLs, no
    key file). On the project, because nothing narrower exists: ``run.developer`` (the job
    templates are created on first use, named ``PREFIX-<hash>``, so there is no resource to
    bind on at deploy time, and Cloud Run has no IAM condition on job names) and
    ``logging.viewer`` (a task's output is read from Cloud Logging, whose read access is
    granted on the project or on a view of its ``_Default`` bucket, which holds the
    project's logs all the same). See :data:`PROJECT_ROLES`;
  * ``operators`` (people who run the control plane or a runner outside Google Cloud):
    ``iam.serviceAccountTokenCreator`` on the runner account only, to act as it;
  * Cloud Run's service agent (``service-PROJECT_NUMBER@serverless-robot-prod``): reader on
    the repository, to pull the task images.

- Optionally the runner in the cloud: a Cloud Run worker pool ``NAME-runner`` (one
  instance, no HTTP endpoint: made for pull workloads) running ``mayfly runner --target
  NAME`` as ``NAME-runner@`` with the target's settings in its environment.

:meth:`GcpTarget.settings_outputs` is exactly the ``cloudrun`` provider's
:class:`~mayfly.providers.cloudrun.settings.CloudRunSettings`, which a deploy records as
the target's settings. Tested with ``pulumi.runtime.set_mocks`` only: no real ``pulumi
up`` runs in this project's tests.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import pulumi
import pulumi_gcp as gcp

from mayfly.infra.clouds.gcp.stack import GcpStack

# The three queues of a target, as the provider's queue set names them (``CloudRunSettings.queue_prefix``:
# PREFIX-KIND, dead letters PREFIX-KIND-dlq). The module imports no Google library until a client is made.
from mayfly.providers.cloudrun.pubsub import KINDS

#: Type token of the component.
TYPE_TOKEN = "mayfly:gcp:Target"
#: Queue, job and repository prefix of a target: ``mayfly-NAME``.
PREFIX = "mayfly-{target}"
#: APIs a target uses: Pub/Sub, Cloud Storage, Cloud Run, Artifact Registry, Cloud Logging, IAM signBlob.
APIS = (
    "artifactregistry.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    "logging.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "storage.googleapis.com",
)
#: The runner's only project-level roles, and why each cannot be bound on a resource.
PROJECT_ROLES: dict[str, str] = {
    "roles/run.developer": "Cloud Run job templates are created by the runner on first use (PREFIX-<hash>): "
    "no job exists at deploy time to bind on, and Cloud Run has no IAM condition on job names",
    "roles/logging.viewer": "task output is read from Cloud Logging, which grants read access on the project "
    "(or a view of its _Default bucket, which holds every log of the project anyway)",
}
#: Environment variable of a Cloud Run runner: its target's settings (see ``mayfly runner --settings``).
RUNNER_ENV = ("MAYFLY_TARGET_PROVIDER", "MAYFLY_TARGET_SETTINGS", "MAYFLY_HOME_ID")

VpcEgress = Literal["ALL_TRAFFIC", "PRIVATE_RANGES_ONLY"]


@dataclass(frozen=True)
class GcpTargetArgs:
    """Inputs of :class:`GcpTarget`."""

    #: Project every resource is created in.
    project: str
    #: Region of the bucket, the repository, the jobs and the runner.
    region: str
    #: Target name (default: the component's name).
    target: str | None = None
    #: Enable the APIs in :data:`APIS` (each stays enabled on destroy).
    enable_apis: bool = True
    ack_deadline_seconds: int = 60
    max_delivery_attempts: int = 5
    retry_minimum_backoff_seconds: int = 10
    retry_maximum_backoff_seconds: int = 600
    message_retention_seconds: int = 4 * 86400
    dead_letter_retention_seconds: int = 7 * 86400
    runs_expiry_days: int = 30
    logs_expiry_days: int = 30
    abort_multipart_days: int = 1
    soft_delete_days: int = 0
    keep_images: int = 100
    immutable_tags: bool = False
    force_destroy: bool = True
    #: IAM members who may act as the runner account (token creator on it): people running the control plane.
    operators: tuple[str, ...] = ()
    vpc_network: str | None = None
    vpc_subnetwork: str | None = None
    vpc_egress: VpcEgress = "PRIVATE_RANGES_ONLY"
    #: RunJob rate and burst of the runner (None: the cloudrun provider's defaults, sized to Cloud Run's quota).
    launches_per_second: float | None = None
    launch_burst: int | None = None
    #: Deploy the runner as a Cloud Run worker pool.
    runner: bool = False
    runner_image: str | None = None
    #: Runner cpu units (1024 = one vCPU) and memory (MiB), a Cloud Run size.
    runner_cpu: int = 1024
    runner_memory: int = 1024
    runner_capacity: int = 10
    #: Labels on every resource that takes them (``mayfly-target`` is added).
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.runner and not self.runner_image:
            raise ValueError("runner_image is required when runner is on")

    @classmethod
    def from_stack(cls, stack: GcpStack) -> GcpTargetArgs:
        """The component's inputs for a validated stack file."""
        o = stack.gcp
        return cls(
            project=o.project,
            region=stack.region,
            target=stack.target_name,
            enable_apis=o.enable_apis,
            ack_deadline_seconds=o.ack_deadline_seconds,
            max_delivery_attempts=o.max_delivery_attempts,
            retry_minimum_backoff_seconds=o.retry_minimum_backoff_seconds,
            retry_maximum_backoff_seconds=o.retry_maximum_backoff_seconds,
            message_retention_seconds=o.message_retention_seconds,
            dead_letter_retention_seconds=o.dead_letter_retention_seconds,
            runs_expiry_days=o.runs_expiry_days,
            logs_expiry_days=o.logs_expiry_days,
            soft_delete_days=o.soft_delete_days,
            keep_images=o.keep_images,
            immutable_tags=o.immutable_tags,
            force_destroy=o.force_destroy,
            operators=tuple(o.operators),
            vpc_network=o.vpc_network,
            vpc_subnetwork=o.vpc_subnetwork,
            vpc_egress=o.vpc_egress,
            launches_per_second=o.launches_per_second,
            launch_burst=o.launch_burst,
            runner=stack.runner.enabled,
            runner_image=stack.runner.image,
            runner_cpu=stack.runner.cpu,
            runner_memory=stack.runner.memory,
            runner_capacity=stack.capacity,
            labels=dict(stack.tags),
        )


@dataclass
class _Queue:
    topic: gcp.pubsub.Topic
    subscription: gcp.pubsub.Subscription
    dlq_topic: gcp.pubsub.Topic
    dlq_subscription: gcp.pubsub.Subscription


class GcpTarget(pulumi.ComponentResource):
    """Topics, subscriptions, bucket, repository and service accounts of one ``cloudrun`` target."""

    #: Project and region of every resource.
    project: str
    region: str
    #: ``mayfly-NAME``: topic/subscription ids PREFIX-KIND, job templates PREFIX-<hash>.
    queue_prefix: str
    job_prefix: str
    #: Topic ids by kind, and their dead-letter topics.
    topics: dict[str, pulumi.Output[str]]
    dead_letter_topics: dict[str, pulumi.Output[str]]
    #: Bucket name: code packages, payloads, results, logs.
    bucket: pulumi.Output[str]
    #: ``REGION-docker.pkg.dev/PROJECT/REPO``: runtime ``mayfly/runtime-NAME:V`` runs as ``URL/runtime-NAME:V``.
    repository_url: pulumi.Output[str]
    #: Emails of the runner (and control plane) and of the task containers.
    runner_service_account: pulumi.Output[str]
    task_service_account: pulumi.Output[str]
    #: Name of the runner's Cloud Run worker pool (None without the runner).
    runner_worker_pool: pulumi.Output[str] | None

    def __init__(self, name: str, args: GcpTargetArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE_TOKEN, name, None, opts)
        self._name, self._args = name, args
        target = args.target or name
        self.project, self.region = args.project, args.region
        self.queue_prefix = self.job_prefix = PREFIX.format(target=target)
        self._labels = {"mayfly-target": target, **args.labels}
        invoke = pulumi.InvokeOutputOptions(parent=self)

        apis = self._apis() if args.enable_apis else []
        after_apis = pulumi.ResourceOptions(parent=self, depends_on=apis)
        child = pulumi.ResourceOptions(parent=self)
        number = gcp.organizations.get_project_output(project_id=args.project, opts=invoke).number
        pubsub_agent = pulumi.Output.format("serviceAccount:service-{0}@gcp-sa-pubsub.iam.gserviceaccount.com", number)
        run_agent = pulumi.Output.format(
            "serviceAccount:service-{0}@serverless-robot-prod.iam.gserviceaccount.com", number
        )

        # ---------------------------------------------------------------- queues
        queues = {kind: self._queue(kind, pubsub_agent, after_apis) for kind in KINDS}

        # ---------------------------------------------------------------- bucket
        bucket = gcp.storage.Bucket(
            f"{name}-bucket",
            project=args.project,
            location=args.region.upper(),
            uniform_bucket_level_access=True,
            public_access_prevention="enforced",
            force_destroy=args.force_destroy,
            versioning={"enabled": False},
            soft_delete_policy={"retention_duration_seconds": args.soft_delete_days * 86400},
            lifecycle_rules=bucket_lifecycle_rules(
                args.runs_expiry_days, args.logs_expiry_days, args.abort_multipart_days
            ),
            labels=self._labels,
            opts=after_apis,
        )

        # ---------------------------------------------------------------- registry
        repository = gcp.artifactregistry.Repository(
            f"{name}-images",
            project=args.project,
            location=args.region,
            repository_id=self.queue_prefix,
            format="DOCKER",
            description=f"Mayfly runtime images of target {target}",
            docker_config={"immutable_tags": args.immutable_tags},
            cleanup_policy_dry_run=False,
            cleanup_policies=registry_cleanup_policies(args.keep_images),
            labels=self._labels,
            opts=after_apis,
        )
        # Cloud Run's service agent pulls the task images: reader on this repository (in the same project its
        # default role already allows it; the binding keeps working when that default has been removed).
        gcp.artifactregistry.RepositoryIamMember(
            f"{name}-images-run-agent-reader",
            project=args.project,
            location=repository.location,
            repository=repository.name,
            role="roles/artifactregistry.reader",
            member=run_agent,
            opts=child,
        )

        # ---------------------------------------------------------------- identities
        task_sa = gcp.serviceaccount.Account(
            f"{name}-task",
            project=args.project,
            account_id=f"{target}-task",
            display_name=f"Mayfly tasks of {target}",
            description="Identity of Mayfly task containers: no roles (tasks use signed URLs only)",
            opts=after_apis,
        )
        runner_sa = gcp.serviceaccount.Account(
            f"{name}-runner",
            project=args.project,
            account_id=f"{target}-runner",
            display_name=f"Mayfly runner of {target}",
            description="Mayfly runner and control plane: the target's topics, bucket and Cloud Run jobs",
            opts=after_apis,
        )
        runner = pulumi.Output.concat("serviceAccount:", runner_sa.email)
        grants = self._grant_runner(name, runner, queues, bucket, task_sa, runner_sa, child)

        # ---------------------------------------------------------------- outputs
        self.topics = {kind: q.topic.name for kind, q in queues.items()}
        self.dead_letter_topics = {kind: q.dlq_topic.name for kind, q in queues.items()}
        self.bucket = bucket.name
        self.repository_url = pulumi.Output.format(
            "{0}-docker.pkg.dev/{1}/{2}", repository.location, repository.project, repository.repository_id
        )
        self.runner_service_account = runner_sa.email
        self.task_service_account = task_sa.email
        self.runner_worker_pool = None
        if args.runner:
            # Started once its account holds its roles: a runner without them would fail its first calls.
            self._runner_pool(runner_sa, pulumi.ResourceOptions(parent=self, depends_on=[*apis, *grants]))
        self.register_outputs(self.outputs())

    # ---------------------------------------------------------------- public helpers

    def settings_outputs(self) -> pulumi.Output[dict[str, Any]]:
        """The target settings of the ``cloudrun`` provider (fields of ``CloudRunSettings``), resolved."""
        a = self._args
        values: dict[str, Any] = {
            "project": a.project,
            "region": a.region,
            "queue_prefix": self.queue_prefix,
            "bucket": self.bucket,
            "job_prefix": self.job_prefix,
            "task_service_account": self.task_service_account,
            "signer_service_account": self.runner_service_account,
            "image_prefix": self.repository_url,
            "vpc_egress": a.vpc_egress,
        }
        optional = {
            "vpc_network": a.vpc_network,
            "vpc_subnetwork": a.vpc_subnetwork,
            "launches_per_second": a.launches_per_second,
            "launch_burst": a.launch_burst,
        }
        values |= {k: v for k, v in optional.items() if v is not None}
        return pulumi.Output.all(**values)

    def outputs(self) -> dict[str, pulumi.Input[Any]]:
        """Every output by name (what ``register_outputs`` and the stack export)."""
        values: dict[str, pulumi.Input[Any] | None] = {
            "project": self.project,
            "region": self.region,
            "queue_prefix": self.queue_prefix,
            "job_prefix": self.job_prefix,
            **{f"{kind}_topic": topic for kind, topic in self.topics.items()},
            **{f"{kind}_dlq_topic": topic for kind, topic in self.dead_letter_topics.items()},
            "bucket": self.bucket,
            "repository_url": self.repository_url,
            "runner_service_account": self.runner_service_account,
            "task_service_account": self.task_service_account,
            "runner_worker_pool": self.runner_worker_pool,
        }
        return {k: v for k, v in values.items() if v is not None}

    # ---------------------------------------------------------------- parts

    def _apis(self) -> list[pulumi.Resource]:
        child = pulumi.ResourceOptions(parent=self)
        return [
            gcp.projects.Service(
                f"{self._name}-{api.split('.')[0]}-api",
                project=self._args.project,
                service=api,
                disable_on_destroy=False,
                disable_dependent_services=False,
                opts=child,
            )
            for api in APIS
        ]

    def _queue(self, kind: str, pubsub_agent: pulumi.Output[str], opts: pulumi.ResourceOptions) -> _Queue:
        """Topic PREFIX-KIND and its subscription, dead-lettering to PREFIX-KIND-dlq (and that topic's subscription)."""
        a, name = self._args, f"{self.queue_prefix}-{kind}"
        labels = self._labels

        def topic(topic_id: str) -> gcp.pubsub.Topic:
            return gcp.pubsub.Topic(topic_id, project=a.project, name=topic_id, labels=labels, opts=opts)

        dlq_topic = topic(f"{name}-dlq")
        dlq_subscription = gcp.pubsub.Subscription(
            f"{name}-dlq",
            project=a.project,
            name=f"{name}-dlq",
            topic=dlq_topic.id,
            ack_deadline_seconds=a.ack_deadline_seconds,
            message_retention_duration=f"{a.dead_letter_retention_seconds}s",
            expiration_policy={"ttl": ""},  # never deleted for inactivity
            labels=labels,
            opts=opts,
        )
        main_topic = topic(name)
        subscription = gcp.pubsub.Subscription(
            name,
            project=a.project,
            name=name,
            topic=main_topic.id,
            ack_deadline_seconds=a.ack_deadline_seconds,
            message_retention_duration=f"{a.message_retention_seconds}s",
            expiration_policy={"ttl": ""},
            retry_policy={
                "minimum_backoff": f"{a.retry_minimum_backoff_seconds}s",
                "maximum_backoff": f"{a.retry_maximum_backoff_seconds}s",
            },
            dead_letter_policy={"dead_letter_topic": dlq_topic.id, "max_delivery_attempts": a.max_delivery_attempts},
            labels=labels,
            opts=opts,
        )
        child = pulumi.ResourceOptions(parent=self)
        # Pub/Sub's service agent forwards dead letters: it publishes to the dead-letter topic and acks the
        # message on the source subscription. Without either binding nothing is dead-lettered.
        gcp.pubsub.TopicIAMMember(
            f"{name}-dlq-agent-publisher",
            project=a.project,
            topic=dlq_topic.name,
            role="roles/pubsub.publisher",
            member=pubsub_agent,
            opts=child,
        )
        gcp.pubsub.SubscriptionIAMMember(
            f"{name}-agent-subscriber",
            project=a.project,
            subscription=subscription.name,
            role="roles/pubsub.subscriber",
            member=pubsub_agent,
            opts=child,
        )
        return _Queue(main_topic, subscription, dlq_topic, dlq_subscription)

    def _grant_runner(
        self,
        name: str,
        runner: pulumi.Output[str],
        queues: Mapping[str, _Queue],
        bucket: gcp.storage.Bucket,
        task_sa: gcp.serviceaccount.Account,
        runner_sa: gcp.serviceaccount.Account,
        child: pulumi.ResourceOptions,
    ) -> list[pulumi.Resource]:
        """The runner's (and control plane's) roles: on each resource it uses, on the project only where it must."""
        project = self._args.project
        grants: list[pulumi.Resource] = []
        for kind, q in queues.items():
            # viewer: `get` of the topic and subscription (`mayfly target check`; the queue reads its dead-letter
            # policy), which neither publisher nor subscriber grants.
            for role in ("roles/pubsub.publisher", "roles/pubsub.viewer"):
                grants.append(
                    gcp.pubsub.TopicIAMMember(
                        f"{name}-runner-{kind}-topic-{role.rsplit('.', 1)[1]}",
                        project=project,
                        topic=q.topic.name,
                        role=role,
                        member=runner,
                        opts=child,
                    )
                )
            for role in ("roles/pubsub.subscriber", "roles/pubsub.viewer"):
                grants.append(
                    gcp.pubsub.SubscriptionIAMMember(
                        f"{name}-runner-{kind}-{role.rsplit('.', 1)[1]}",
                        project=project,
                        subscription=q.subscription.name,
                        role=role,
                        member=runner,
                        opts=child,
                    )
                )
            # Dead letters are read (inspected, redriven) through the dead-letter topic's subscription.
            grants.append(
                gcp.pubsub.SubscriptionIAMMember(
                    f"{name}-runner-{kind}-dlq-subscriber",
                    project=project,
                    subscription=q.dlq_subscription.name,
                    role="roles/pubsub.subscriber",
                    member=runner,
                    opts=child,
                )
            )
        # objectUser: get, create, delete and list objects (code packages, payloads, results, launch records);
        # legacyBucketReader: the bucket's own metadata (`mayfly target check` asks whether it exists).
        for role in ("roles/storage.objectUser", "roles/storage.legacyBucketReader"):
            grants.append(
                gcp.storage.BucketIAMMember(
                    f"{name}-runner-{role.rsplit('.', 1)[1]}", bucket=bucket.name, role=role, member=runner, opts=child
                )
            )
        # Run jobs as the task account (actAs) - on that account only, not on every account of the project.
        grants.append(
            gcp.serviceaccount.IAMMember(
                f"{name}-runner-acts-as-task",
                service_account_id=task_sa.name,
                role="roles/iam.serviceAccountUser",
                member=runner,
                opts=child,
            )
        )
        # IAM signBlob of its own account: the V4 signed URLs of code, payload and result, without a key file.
        grants.append(
            gcp.serviceaccount.IAMMember(
                f"{name}-runner-signs-blobs",
                service_account_id=runner_sa.name,
                role="roles/iam.serviceAccountTokenCreator",
                member=runner,
                opts=child,
            )
        )
        # People who run the control plane (or a runner) outside Google Cloud act as the runner account
        # (`gcloud auth application-default login --impersonate-service-account ...`): on that account only.
        for member in self._args.operators:
            grants.append(
                gcp.serviceaccount.IAMMember(
                    f"{name}-operator-{re.sub(r'[^a-z0-9]+', '-', member.lower())}",
                    service_account_id=runner_sa.name,
                    role="roles/iam.serviceAccountTokenCreator",
                    member=member,
                    opts=child,
                )
            )
        for role in PROJECT_ROLES:
            grants.append(
                gcp.projects.IAMMember(
                    f"{name}-runner-{role.removeprefix('roles/').replace('.', '-')}",
                    project=project,
                    role=role,
                    member=runner,
                    opts=child,
                )
            )
        return grants

    def _runner_pool(self, runner_sa: gcp.serviceaccount.Account, opts: pulumi.ResourceOptions) -> None:
        """The runner as a Cloud Run worker pool: one instance, the runner account, the target's settings as env."""
        a, name = self._args, self._name
        target = a.target or name
        env = self.settings_outputs().apply(lambda settings: runner_env(target, settings))
        container: gcp.cloudrunv2.WorkerPoolTemplateContainerArgsDict = {
            "name": "runner",
            "image": str(a.runner_image),
            "commands": ["mayfly"],
            "args": runner_args(target, a.runner_capacity),
            "envs": env,
            "resources": {"limits": {"cpu": str(a.runner_cpu // 1024), "memory": f"{a.runner_memory}Mi"}},
        }
        pool = gcp.cloudrunv2.WorkerPool(
            f"{name}-runner",
            project=a.project,
            location=a.region,
            name=f"{target}-runner",
            # Worker pools are a Cloud Run preview feature: the BETA launch stage opts in (as the Terraform
            # provider's own worker pool examples do; https://cloud.google.com/run/docs/configuring/workerpools).
            launch_stage="BETA",
            deletion_protection=False,
            scaling={"scaling_mode": "MANUAL", "manual_instance_count": 1},
            template={
                "service_account": runner_sa.email,
                "labels": self._labels,
                "containers": [container],
            },
            labels=self._labels,
            opts=opts,
        )
        self.runner_worker_pool = pool.name


# ---------------------------------------------------------------- plain data (tested)


def bucket_lifecycle_rules(
    runs_days: int, logs_days: int, abort_days: int
) -> list[gcp.storage.BucketLifecycleRuleArgsDict]:
    """Delete ``runs/`` and ``logs/`` objects after their days; abort incomplete multipart uploads."""
    return [
        {"action": {"type": "Delete"}, "condition": {"age": runs_days, "matches_prefixes": ["runs/"]}},
        {"action": {"type": "Delete"}, "condition": {"age": logs_days, "matches_prefixes": ["logs/"]}},
        {"action": {"type": "AbortIncompleteMultipartUpload"}, "condition": {"age": abort_days}},
    ]


def registry_cleanup_policies(keep: int) -> list[gcp.artifactregistry.RepositoryCleanupPolicyArgsDict]:
    """Keep the newest ``keep`` versions of each image; delete untagged versions (replaced builds) after a day."""
    return [
        {"id": "keep-newest", "action": "KEEP", "most_recent_versions": {"keep_count": keep}},
        {"id": "delete-untagged", "action": "DELETE", "condition": {"tag_state": "UNTAGGED", "older_than": "86400s"}},
    ]


def runner_args(target: str, capacity: int) -> list[str]:
    """``mayfly runner`` for one target, without a store (its settings come from the environment)."""
    return ["runner", "--target", target, "--capacity", str(capacity)]


def runner_env(target: str, settings: Mapping[str, Any]) -> list[gcp.cloudrunv2.WorkerPoolTemplateContainerEnvArgsDict]:
    """The runner's environment: ``MAYFLY_TARGET_PROVIDER``/``MAYFLY_TARGET_SETTINGS`` make it build its
    queues, blob store and provider from the settings alone (the worker pool's service account is its
    identity); ``MAYFLY_HOME_ID`` stays the same across restarts, so a new instance finds the executions
    of the old one."""
    values = ("cloudrun", json.dumps(dict(settings), sort_keys=True), f"runner-{target}")
    return [{"name": k, "value": v} for k, v in zip(RUNNER_ENV, values, strict=True)]


def stack_program(stack: GcpStack) -> Callable[[], None]:
    """The inline Pulumi program of a Google Cloud stack file: the component, its outputs exported."""

    def program() -> None:
        target = GcpTarget(stack.target_name, GcpTargetArgs.from_stack(stack))
        for key, value in target.outputs().items():
            pulumi.export(key, value)
        pulumi.export("settings", target.settings_outputs())

    return program
