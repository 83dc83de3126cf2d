"""The AWS target as one Pulumi component: ``mayfly:aws:Target``.

What it creates for a target called NAME (all children of the component, named
``NAME-<role>``, physical names auto-suffixed by Pulumi):

- SQS: ``NAME-tasks`` and ``NAME-events`` with dead-letter queues ``NAME-tasks-dlq``
  and ``NAME-events-dlq`` (redrive after ``max_receive_count`` deliveries), and
  ``NAME-control`` (cancel requests); SQS-managed encryption on all five, long polling.
- S3: ``NAME-bucket`` for code packages, payloads, results and logs: AES256
  encryption, public access blocked four ways, ACLs disabled (BucketOwnerEnforced),
  versioning off, TLS-only bucket policy, lifecycle rules expiring ``runs/`` and
  ``logs/`` and aborting incomplete multipart uploads. ``codes/`` never expires.
- ECR: ``NAME-images`` for the runtime images (scan on push, keep the last N).
- ECS: cluster ``NAME-cluster`` with FARGATE and FARGATE_SPOT capacity providers;
  log group ``NAME-logs`` with retention; security group ``NAME-tasks-sg`` (all
  egress, no ingress) in the given subnets or the default VPC's.
- IAM, least privilege, logs included:

  * ``NAME-execution``: the role ECS itself uses to start a task: pull from this
    repository only, write to this log group only.
  * ``NAME-task``: the role the untrusted task code gets. It has no permissions at
    all; tasks reach storage only through the presigned URLs the runner hands them.
  * ``NAME-runner`` policy: what a runner and the control plane need (the three
    queues, the bucket, RunTask of ``mayfly-TARGET-*`` task definitions on this cluster,
    PassRole of the two roles above, reading the log group). Attach it to the
    identity of a runner that runs elsewhere; with ``runner=True`` it is also
    attached to the role of the runner service.

- Optionally the runner as an always-on ECS service (``NAME-runner``): one Fargate
  task running ``mayfly runner --target TARGET`` with the target's settings in its
  environment.

:meth:`AwsTarget.settings_outputs` is exactly the ``ecs`` provider's
:class:`~mayfly.providers.ecs.settings.EcsSettings`, which a deploy records as the
target's settings. Tested with ``pulumi.runtime.set_mocks`` only: no real
``pulumi up`` runs in this project's tests.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pulumi
import pulumi_aws as aws

from mayfly.infra.clouds.aws.stack import AwsStack

#: Type token of the component.
TYPE_TOKEN = "mayfly:aws:Target"
#: Families of the task definitions the ``ecs`` provider registers: ``mayfly-<target>-<hash12>``.
TASK_FAMILY_PREFIX = "mayfly-{target}-"
#: SSM parameters holding the target's task secrets (``mayfly.providers.ecs.secrets.target_path``, no leading "/").
PARAMETER_PATH = "mayfly/{target}"
#: CloudWatch stream prefix of the runner service's own log.
RUNNER_STREAM_PREFIX = "runner"
#: Trusted by the execution, task and runner roles.
ECS_TASKS_PRINCIPAL = "ecs-tasks.amazonaws.com"

CapacityProvider = Literal["FARGATE", "FARGATE_SPOT"]


@dataclass(frozen=True)
class AwsTargetArgs:
    """Inputs of :class:`AwsTarget`. The region is the AWS provider's (``aws:region``)."""

    #: Target name the runner service serves (default: the component's name).
    target: str | None = None
    #: VPC of the tasks' security group; default: the VPC of ``subnet_ids``, else the default VPC.
    vpc_id: str | None = None
    #: Subnets of the tasks; default: the default subnets of the default VPC (all subnets of ``vpc_id``).
    subnet_ids: Sequence[str] | None = None
    #: Give tasks a public IP (public subnets without NAT need it to pull images).
    assign_public_ip: bool = True
    #: Capacity provider the ``ecs`` provider launches on (both are enabled on the cluster).
    capacity_provider: CapacityProvider = "FARGATE"
    #: ECS Container Insights on the cluster (extra CloudWatch cost).
    container_insights: bool = False
    #: CloudWatch Logs retention of the log group in days (0: never expire).
    log_retention_days: int = 14
    #: awslogs stream prefix of task containers.
    log_stream_prefix: str = "mayfly"
    #: How long messages stay in the tasks, control and events queues.
    message_retention_seconds: int = 4 * 86400
    #: Initial visibility timeout; the runner extends it while a task runs.
    visibility_timeout_seconds: int = 60
    #: Deliveries of a message before SQS moves it to the dead-letter queue.
    max_receive_count: int = 5
    #: Days before objects under ``runs/`` (payloads, results, markers) expire.
    runs_expiry_days: int = 30
    #: Days before objects under ``logs/`` expire.
    logs_expiry_days: int = 30
    #: Days after which incomplete multipart uploads are aborted.
    abort_multipart_days: int = 1
    #: Images kept in the ECR repository (older ones expire).
    keep_images: int = 100
    #: Immutable ECR tags (re-pushing a rebuilt runtime under the same tag then fails).
    immutable_tags: bool = False
    #: Let destroy delete a non-empty bucket and repository.
    force_destroy: bool = True
    #: Deploy the runner as an always-on ECS service.
    runner: bool = False
    #: Image of the runner service: Mayfly with the aws extra, and ``sh``.
    runner_image: str | None = None
    #: Runner service task size (a valid Fargate cpu/memory pair).
    runner_cpu: int = 512
    runner_memory: int = 1024
    #: The target's capacity, given to the runner service's target.
    runner_capacity: int = 10
    #: Tags on every resource that takes tags (``mayfly:target`` is added).
    tags: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.runner and not self.runner_image:
            raise ValueError("runner_image is required when runner is on")

    @classmethod
    def from_stack(cls, stack: AwsStack) -> AwsTargetArgs:
        """The component's inputs for a validated stack file."""
        opts = stack.aws
        return cls(
            target=stack.target_name,
            vpc_id=opts.vpc_id,
            subnet_ids=tuple(opts.subnet_ids) if opts.subnet_ids else None,
            assign_public_ip=opts.assign_public_ip,
            capacity_provider=opts.capacity_provider,
            container_insights=opts.container_insights,
            log_retention_days=opts.log_retention_days,
            message_retention_seconds=opts.message_retention_seconds,
            visibility_timeout_seconds=opts.visibility_timeout_seconds,
            max_receive_count=opts.max_receive_count,
            runs_expiry_days=opts.runs_expiry_days,
            logs_expiry_days=opts.logs_expiry_days,
            keep_images=opts.keep_images,
            immutable_tags=opts.immutable_tags,
            force_destroy=opts.force_destroy,
            runner=stack.runner.enabled,
            runner_image=stack.runner.image,
            runner_cpu=stack.runner.cpu,
            runner_memory=stack.runner.memory,
            runner_capacity=stack.capacity,
            tags=dict(stack.tags),
        )


class AwsTarget(pulumi.ComponentResource):
    """Queues, bucket, registry, cluster, logs, roles and network of one ``ecs`` target."""

    #: Region of every resource (the AWS provider's).
    region: pulumi.Output[str]
    #: SQS URL of the task queue (control plane -> runners).
    tasks_queue_url: pulumi.Output[str]
    #: SQS URL of the control queue (cancel requests -> runners).
    control_queue_url: pulumi.Output[str]
    #: SQS URL of the events queue (runners -> control plane).
    events_queue_url: pulumi.Output[str]
    #: SQS URLs of the dead-letter queues of tasks and events (inspect, then redrive or purge).
    tasks_dlq_url: pulumi.Output[str]
    events_dlq_url: pulumi.Output[str]
    #: S3 bucket name: code packages, payloads, results, logs.
    bucket: pulumi.Output[str]
    #: ECR repository URL; runtime ``mayfly/runtime-NAME:V`` is pushed as ``URL:runtime-NAME-V``.
    repository_url: pulumi.Output[str]
    #: ECS cluster name and ARN.
    cluster_name: pulumi.Output[str]
    cluster_arn: pulumi.Output[str]
    #: Subnets and security group of the tasks' network interfaces.
    subnet_ids: pulumi.Output[list[str]]
    security_group_id: pulumi.Output[str]
    #: Role ECS uses to pull images and write logs.
    execution_role_arn: pulumi.Output[str]
    #: Role of the task code itself: no permissions.
    task_role_arn: pulumi.Output[str]
    #: Managed policy with the runner's (and control plane's) permissions, to attach to a runner's identity.
    runner_policy_arn: pulumi.Output[str]
    #: Role of the runner service (None without the runner).
    runner_role_arn: pulumi.Output[str] | None
    #: Name of the runner ECS service (None without the runner).
    runner_service_name: pulumi.Output[str] | None
    #: CloudWatch Logs group of task containers (and of the runner service).
    log_group_name: pulumi.Output[str]

    def __init__(self, name: str, args: AwsTargetArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE_TOKEN, name, None, opts)
        self._name = name
        self._args = args
        self._tags: dict[str, str] = {"mayfly:target": args.target or name, **args.tags}
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOutputOptions(parent=self)

        self.region = aws.get_region_output(opts=invoke).region
        account = aws.get_caller_identity_output(opts=invoke).account_id
        partition = aws.get_partition_output(opts=invoke).partition

        # ---------------------------------------------------------------- queues
        tasks_dlq = self._queue(f"{name}-tasks-dlq", child, retention=14 * 86400)
        tasks = self._queue(f"{name}-tasks", child, dlq=tasks_dlq)
        control = self._queue(f"{name}-control", child)
        events_dlq = self._queue(f"{name}-events-dlq", child, retention=14 * 86400)
        events = self._queue(f"{name}-events", child, dlq=events_dlq)
        queues = (tasks, control, events)

        # ---------------------------------------------------------------- bucket
        bucket = aws.s3.Bucket(f"{name}-bucket", force_destroy=args.force_destroy, tags=self._tags, opts=child)
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-bucket-encryption",
            bucket=bucket.id,
            rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}],
            opts=child,
        )
        public_block = aws.s3.BucketPublicAccessBlock(
            f"{name}-bucket-public-access",
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        # S3 rejects concurrent configuration calls on a new bucket ("OperationAborted"): chain them.
        ownership = aws.s3.BucketOwnershipControls(
            f"{name}-bucket-ownership",
            bucket=bucket.id,
            rule={"object_ownership": "BucketOwnerEnforced"},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[public_block]),
        )
        aws.s3.BucketVersioning(
            f"{name}-bucket-versioning",
            bucket=bucket.id,
            versioning_configuration={"status": "Disabled"},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[ownership]),
        )
        aws.s3.BucketPolicy(
            f"{name}-bucket-policy",
            bucket=bucket.id,
            policy=_policy_json(
                [
                    {
                        "Sid": "DenyInsecureTransport",
                        "Effect": "Deny",
                        "Principal": "*",
                        "Action": "s3:*",
                        "Resource": [bucket.arn, pulumi.Output.concat(bucket.arn, "/*")],
                        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                    }
                ]
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[public_block]),
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-bucket-lifecycle",
            bucket=bucket.id,
            rules=[
                {
                    "id": "expire-runs",
                    "status": "Enabled",
                    "filter": {"prefix": "runs/"},
                    "expiration": {"days": args.runs_expiry_days},
                },
                {
                    "id": "expire-logs",
                    "status": "Enabled",
                    "filter": {"prefix": "logs/"},
                    "expiration": {"days": args.logs_expiry_days},
                },
                {
                    "id": "abort-incomplete-multipart-uploads",
                    "status": "Enabled",
                    "filter": {"prefix": ""},
                    "abort_incomplete_multipart_upload": {"days_after_initiation": args.abort_multipart_days},
                },
            ],
            opts=child,
        )

        # ---------------------------------------------------------------- registry
        repository = aws.ecr.Repository(
            f"{name}-images",
            image_scanning_configuration={"scan_on_push": True},
            image_tag_mutability="IMMUTABLE" if args.immutable_tags else "MUTABLE",
            force_delete=args.force_destroy,
            tags=self._tags,
            opts=child,
        )
        aws.ecr.LifecyclePolicy(
            f"{name}-images-lifecycle",
            repository=repository.name,
            policy=json.dumps(ecr_lifecycle_policy(args.keep_images)),
            opts=child,
        )

        # ---------------------------------------------------------------- cluster, logs, network
        cluster = aws.ecs.Cluster(
            f"{name}-cluster",
            settings=[{"name": "containerInsights", "value": "enabled" if args.container_insights else "disabled"}],
            tags=self._tags,
            opts=child,
        )
        capacity = aws.ecs.ClusterCapacityProviders(
            f"{name}-capacity",
            cluster_name=cluster.name,
            capacity_providers=["FARGATE", "FARGATE_SPOT"],
            default_capacity_provider_strategies=[{"capacity_provider": args.capacity_provider, "weight": 1}],
            opts=child,
        )
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            retention_in_days=args.log_retention_days or None,
            tags=self._tags,
            opts=child,
        )
        vpc_id, subnet_ids = self._network(args, invoke)
        security_group = aws.ec2.SecurityGroup(
            f"{name}-tasks-sg",
            description=f"Mayfly tasks of {args.target or name}: all egress, no ingress",
            vpc_id=vpc_id,
            ingress=[],
            egress=[
                {
                    "description": "tasks fetch code and images and call out; nothing calls in",
                    "protocol": "-1",
                    "from_port": 0,
                    "to_port": 0,
                    "cidr_blocks": ["0.0.0.0/0"],
                    "ipv6_cidr_blocks": ["::/0"],
                }
            ],
            tags=self._tags,
            opts=child,
        )

        # ---------------------------------------------------------------- identities
        target = args.target or name
        ecs_arn = pulumi.Output.format("arn:{0}:ecs:{1}:{2}", partition, self.region, account)
        log_groups_arn = pulumi.Output.format("arn:{0}:logs:{1}:{2}:log-group:*", partition, self.region, account)
        parameters_arn = pulumi.Output.format(
            "arn:{0}:ssm:{1}:{2}:parameter/{3}/*", partition, self.region, account, PARAMETER_PATH.format(target=target)
        )
        kms_keys_arn = pulumi.Output.format("arn:{0}:kms:{1}:{2}:key/*", partition, self.region, account)
        ssm_service = pulumi.Output.format("ssm.{0}.amazonaws.com", self.region)
        trust = _trust_policy(ecs_arn, account)
        execution_role = aws.iam.Role(
            f"{name}-execution",
            description="ECS task execution: pull Mayfly runtime images, write task logs, read task secrets",
            assume_role_policy=trust,
            tags=self._tags,
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-execution",
            role=execution_role.id,
            policy=_policy_json(
                execution_statements(repository.arn, log_group.arn, parameters_arn, kms_keys_arn, ssm_service)
            ),
            opts=child,
        )
        task_role = aws.iam.Role(
            f"{name}-task",
            description="Mayfly task code: no permissions (tasks use presigned URLs only)",
            assume_role_policy=trust,
            tags=self._tags,
            opts=child,
        )
        runner_policy = aws.iam.Policy(
            f"{name}-runner",
            description=f"Mayfly runner and control plane of target {args.target or name}",
            policy=_policy_json(
                runner_statements(
                    queue_arns=[q.arn for q in queues],
                    bucket_arn=bucket.arn,
                    cluster_arn=cluster.arn,
                    task_arns=pulumi.Output.format("{0}:task/{1}/*", ecs_arn, cluster.name),
                    task_definition_arns=pulumi.Output.format(
                        "{0}:task-definition/{1}*", ecs_arn, TASK_FAMILY_PREFIX.format(target=target)
                    ),
                    pass_role_arns=[execution_role.arn, task_role.arn],
                    log_group_arn=log_group.arn,
                    log_groups_arn=log_groups_arn,
                    parameters_arn=parameters_arn,
                )
            ),
            tags=self._tags,
            opts=child,
        )

        # ---------------------------------------------------------------- outputs
        self.tasks_queue_url = tasks.url
        self.control_queue_url = control.url
        self.events_queue_url = events.url
        self.tasks_dlq_url = tasks_dlq.url
        self.events_dlq_url = events_dlq.url
        self.bucket = bucket.bucket
        self.repository_url = repository.repository_url
        self.cluster_name = cluster.name
        self.cluster_arn = cluster.arn
        self.subnet_ids = subnet_ids
        self.security_group_id = security_group.id
        self.execution_role_arn = execution_role.arn
        self.task_role_arn = task_role.arn
        self.runner_policy_arn = runner_policy.arn
        self.log_group_name = log_group.name
        self.runner_role_arn = None
        self.runner_service_name = None

        if args.runner:
            self._runner_service(trust, runner_policy, log_group, cluster, capacity)

        self.register_outputs(self.outputs())

    # ---------------------------------------------------------------- public helpers

    def settings_outputs(self) -> pulumi.Output[dict[str, Any]]:
        """The target settings of the ``ecs`` provider (the fields of ``EcsSettings``), resolved."""
        a = self._args
        return pulumi.Output.all(
            region=self.region,
            cluster=self.cluster_name,
            subnets=self.subnet_ids,
            security_groups=self.security_group_id.apply(lambda sg: [sg]),
            assign_public_ip=a.assign_public_ip,
            execution_role_arn=self.execution_role_arn,
            task_role_arn=self.task_role_arn,
            log_group=self.log_group_name,
            log_stream_prefix=a.log_stream_prefix,
            bucket=self.bucket,
            tasks_queue_url=self.tasks_queue_url,
            control_queue_url=self.control_queue_url,
            events_queue_url=self.events_queue_url,
            image_prefix=self.repository_url,
            capacity_provider=a.capacity_provider,
        )

    def outputs(self) -> dict[str, pulumi.Input[Any]]:
        """Every output by name (what ``register_outputs`` and the stack export)."""
        values: dict[str, pulumi.Input[Any] | None] = {
            "region": self.region,
            "tasks_queue_url": self.tasks_queue_url,
            "control_queue_url": self.control_queue_url,
            "events_queue_url": self.events_queue_url,
            "tasks_dlq_url": self.tasks_dlq_url,
            "events_dlq_url": self.events_dlq_url,
            "bucket": self.bucket,
            "repository_url": self.repository_url,
            "cluster_name": self.cluster_name,
            "cluster_arn": self.cluster_arn,
            "subnet_ids": self.subnet_ids,
            "security_group_id": self.security_group_id,
            "execution_role_arn": self.execution_role_arn,
            "task_role_arn": self.task_role_arn,
            "runner_policy_arn": self.runner_policy_arn,
            "runner_role_arn": self.runner_role_arn,
            "runner_service_name": self.runner_service_name,
            "log_group_name": self.log_group_name,
        }
        return {k: v for k, v in values.items() if v is not None}

    # ---------------------------------------------------------------- parts

    def _queue(
        self, name: str, opts: pulumi.ResourceOptions, *, dlq: aws.sqs.Queue | None = None, retention: int | None = None
    ) -> aws.sqs.Queue:
        a = self._args
        redrive = (
            dlq.arn.apply(lambda arn: json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": a.max_receive_count}))
            if dlq is not None
            else None
        )
        return aws.sqs.Queue(
            name,
            message_retention_seconds=retention or a.message_retention_seconds,
            visibility_timeout_seconds=a.visibility_timeout_seconds,
            receive_wait_time_seconds=20,
            sqs_managed_sse_enabled=True,
            redrive_policy=redrive,
            tags=self._tags,
            opts=opts,
        )

    def _network(
        self, args: AwsTargetArgs, invoke: pulumi.InvokeOutputOptions
    ) -> tuple[pulumi.Input[str], pulumi.Output[list[str]]]:
        """The VPC and subnets: as given, or the default VPC and its default subnets."""
        if args.subnet_ids:
            vpc: pulumi.Input[str] = args.vpc_id or aws.ec2.get_subnet_output(id=args.subnet_ids[0], opts=invoke).vpc_id
            return vpc, pulumi.Output.from_input(list(args.subnet_ids))
        vpc = pulumi.Output.from_input(args.vpc_id or aws.ec2.get_vpc_output(default=True, opts=invoke).id)
        default_only = not args.vpc_id
        filters = vpc.apply(
            lambda vpc_id: [
                aws.ec2.GetSubnetsFilterArgs(name="vpc-id", values=[vpc_id]),
                *([aws.ec2.GetSubnetsFilterArgs(name="default-for-az", values=["true"])] if default_only else []),
            ]
        )
        return vpc, aws.ec2.get_subnets_output(filters=filters, opts=invoke).ids

    def _runner_service(
        self,
        trust: pulumi.Output[str],
        policy: aws.iam.Policy,
        log_group: aws.cloudwatch.LogGroup,
        cluster: aws.ecs.Cluster,
        capacity: aws.ecs.ClusterCapacityProviders,
    ) -> None:
        """The runner as an always-on ECS service: one task, the runner role, the target's settings as env."""
        name, a = self._name, self._args
        child = pulumi.ResourceOptions(parent=self)
        role = aws.iam.Role(
            f"{name}-runner",
            description="Mayfly runner service",
            assume_role_policy=trust,
            tags=self._tags,
            opts=child,
        )
        aws.iam.RolePolicyAttachment(f"{name}-runner", role=role.name, policy_arn=policy.arn, opts=child)
        target = a.target or name
        container = pulumi.Output.all(
            settings=self.settings_outputs(), log_group=log_group.name, region=self.region
        ).apply(
            lambda v: json.dumps(
                [
                    runner_container(
                        image=str(a.runner_image),
                        target=target,
                        settings=v["settings"],
                        capacity=a.runner_capacity,
                        log_group=v["log_group"],
                        region=v["region"],
                    )
                ]
            )
        )
        task_definition = aws.ecs.TaskDefinition(
            f"{name}-runner",
            # Outside the task families (mayfly-<target>-*): the runner's RunTask permission does not cover it.
            family=f"{target}-runner",
            cpu=str(a.runner_cpu),
            memory=str(a.runner_memory),
            network_mode="awsvpc",
            requires_compatibilities=["FARGATE"],
            execution_role_arn=self.execution_role_arn,
            task_role_arn=role.arn,
            container_definitions=container,
            tags=self._tags,
            opts=child,
        )
        service = aws.ecs.Service(
            f"{name}-runner",
            cluster=cluster.arn,
            task_definition=task_definition.arn,
            desired_count=1,
            # On-demand Fargate: a Spot interruption would pause every task launch of the target.
            capacity_provider_strategies=[{"capacity_provider": "FARGATE", "weight": 1}],
            # One runner at a time: the new one starts after the old one stopped (it reattaches its tasks).
            deployment_minimum_healthy_percent=0,
            deployment_maximum_percent=100,
            network_configuration={
                "subnets": self.subnet_ids,
                "security_groups": [self.security_group_id],
                "assign_public_ip": a.assign_public_ip,
            },
            propagate_tags="SERVICE",
            enable_ecs_managed_tags=True,
            tags=self._tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[capacity]),
        )
        self.runner_role_arn = role.arn
        self.runner_service_name = service.name


# ---------------------------------------------------------------- policy documents (plain data, tested)


def execution_statements(
    repository_arn: pulumi.Input[str],
    log_group_arn: pulumi.Input[str],
    parameters_arn: pulumi.Input[str],
    kms_keys_arn: pulumi.Input[str],
    ssm_service: pulumi.Input[str],
) -> list[dict[str, Any]]:
    """The execution role: pull from one repository, write one log group, read the target's secret parameters."""
    return [
        {
            "Sid": "EcrLogin",
            "Effect": "Allow",
            # GetAuthorizationToken is account-wide: IAM cannot scope it to a repository.
            "Action": ["ecr:GetAuthorizationToken"],
            "Resource": "*",
        },
        {
            "Sid": "PullRuntimeImages",
            "Effect": "Allow",
            "Action": ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
            "Resource": repository_arn,
        },
        {
            "Sid": "WriteTaskLogs",
            "Effect": "Allow",
            # CreateLogGroup on this group only: a task definition with awslogs-create-group then still works
            # (the missing permission that broke Prefect's provisioned roles, PrefectHQ/prefect#20237).
            # IAM matches log actions against "<group ARN>:*" (the group and its streams) and CreateLogGroup
            # against the bare group ARN: both forms name this one group.
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": [log_group_arn, pulumi.Output.concat(log_group_arn, ":*")],
        },
        {
            "Sid": "ReadTaskSecrets",
            "Effect": "Allow",
            # ECS resolves a container's `secrets` (SSM SecureString references) with this role at task start.
            "Action": ["ssm:GetParameters"],
            "Resource": parameters_arn,
        },
        {
            "Sid": "DecryptTaskSecrets",
            "Effect": "Allow",
            # SecureStrings use the account's aws/ssm key, whose id is not known here: any key, only through SSM.
            "Action": ["kms:Decrypt"],
            "Resource": kms_keys_arn,
            "Condition": {"StringEquals": {"kms:ViaService": ssm_service}},
        },
    ]


def runner_statements(
    *,
    queue_arns: Sequence[pulumi.Input[str]],
    bucket_arn: pulumi.Input[str],
    cluster_arn: pulumi.Input[str],
    task_arns: pulumi.Input[str],
    task_definition_arns: pulumi.Input[str],
    pass_role_arns: Sequence[pulumi.Input[str]],
    log_group_arn: pulumi.Input[str],
    log_groups_arn: pulumi.Input[str],
    parameters_arn: pulumi.Input[str],
) -> list[dict[str, Any]]:
    """The runner and control plane: the target's queues, bucket, cluster, roles and logs, nothing else."""
    on_cluster = {"ArnEquals": {"ecs:cluster": cluster_arn}}
    return [
        {
            "Sid": "Queues",
            "Effect": "Allow",
            "Action": [
                "sqs:ChangeMessageVisibility",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
                "sqs:ReceiveMessage",
                "sqs:SendMessage",
            ],
            "Resource": list(queue_arns),
        },
        {
            "Sid": "BucketObjects",
            "Effect": "Allow",
            # AbortMultipartUpload: boto3's managed upload aborts a failed multipart upload of a large code package.
            "Action": ["s3:AbortMultipartUpload", "s3:DeleteObject", "s3:GetObject", "s3:PutObject"],
            "Resource": pulumi.Output.concat(bucket_arn, "/*"),
        },
        {"Sid": "BucketList", "Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": bucket_arn},
        {
            "Sid": "RunTasks",
            "Effect": "Allow",
            "Action": ["ecs:RunTask"],
            "Resource": task_definition_arns,
            "Condition": on_cluster,
        },
        {"Sid": "CheckCluster", "Effect": "Allow", "Action": ["ecs:DescribeClusters"], "Resource": cluster_arn},
        {
            "Sid": "WatchTasks",
            "Effect": "Allow",
            "Action": ["ecs:DescribeTasks", "ecs:StopTask"],
            "Resource": task_arns,
            "Condition": on_cluster,
        },
        {
            "Sid": "FindTasks",
            "Effect": "Allow",
            # ListTasks takes no task ARN (its resource is the container instance, which Fargate has not):
            # it is scoped by the cluster condition instead.
            "Action": ["ecs:ListTasks"],
            "Resource": "*",
            "Condition": on_cluster,
        },
        {
            "Sid": "TaskDefinitions",
            "Effect": "Allow",
            # RegisterTaskDefinition and DescribeTaskDefinition support no resource-level permissions in IAM;
            # RunTask above is what limits which definitions can start. Deregister: a task with secrets runs from
            # a definition of its own, deregistered when the attempt is removed (no resource-level permissions either).
            "Action": ["ecs:DeregisterTaskDefinition", "ecs:DescribeTaskDefinition", "ecs:RegisterTaskDefinition"],
            "Resource": "*",
        },
        {
            "Sid": "TaskSecrets",
            "Effect": "Allow",
            # One SecureString per secret of an attempt, under /mayfly/<target>/, deleted with the attempt. No KMS
            # permission: the account's aws/ssm key lets SSM encrypt for any principal of the account.
            "Action": ["ssm:DeleteParameter", "ssm:DeleteParameters", "ssm:GetParametersByPath", "ssm:PutParameter"],
            "Resource": parameters_arn,
        },
        {
            "Sid": "TagOnCreate",
            "Effect": "Allow",
            # Tags on RunTask (the task id, for reattach) and RegisterTaskDefinition need TagResource,
            # allowed only as part of those two calls.
            "Action": ["ecs:TagResource"],
            "Resource": [task_arns, task_definition_arns],
            "Condition": {"StringEquals": {"ecs:CreateAction": ["RegisterTaskDefinition", "RunTask"]}},
        },
        {
            "Sid": "PassTaskRoles",
            "Effect": "Allow",
            "Action": ["iam:PassRole"],
            "Resource": list(pass_role_arns),
            "Condition": {"StringEquals": {"iam:PassedToService": ECS_TASKS_PRINCIPAL}},
        },
        {
            "Sid": "ReadTaskLogs",
            "Effect": "Allow",
            "Action": ["logs:GetLogEvents"],
            "Resource": [log_group_arn, pulumi.Output.concat(log_group_arn, ":*")],
        },
        {
            "Sid": "FindLogGroup",
            "Effect": "Allow",
            # `mayfly target check` looks the group up by prefix; DescribeLogGroups only takes the
            # "log-group:*" pattern (this account and region), not one group's ARN.
            "Action": ["logs:DescribeLogGroups"],
            "Resource": log_groups_arn,
        },
    ]


def ecr_lifecycle_policy(keep: int) -> dict[str, Any]:
    """Expire untagged layers after a day and keep the newest ``keep`` images."""
    return {
        "rules": [
            {
                "rulePriority": 1,
                "description": "expire untagged images (replaced runtime builds) after a day",
                "selection": {
                    "tagStatus": "untagged",
                    "countType": "sinceImagePushed",
                    "countUnit": "days",
                    "countNumber": 1,
                },
                "action": {"type": "expire"},
            },
            {
                "rulePriority": 2,
                "description": f"keep the newest {keep} images",
                "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": keep},
                "action": {"type": "expire"},
            },
        ]
    }


def runner_container(
    *, image: str, target: str, settings: Mapping[str, Any], capacity: int, log_group: str, region: str
) -> dict[str, Any]:
    """The runner service's container: ``mayfly runner`` without a store, its target's settings in its env.

    ``MAYFLY_TARGET_PROVIDER``/``MAYFLY_TARGET_SETTINGS`` make the runner build its
    queues, blob store and provider from the settings alone; ``MAYFLY_HOME_ID`` stays
    the same across restarts of the service, so a new runner task finds the
    containers of the old one by their tags.
    """
    return {
        "name": "runner",
        "image": image,
        "essential": True,
        "command": ["mayfly", "runner", "--target", target, "--capacity", str(capacity)],
        "environment": [
            {"name": "MAYFLY_TARGET_PROVIDER", "value": "ecs"},
            {"name": "MAYFLY_TARGET_SETTINGS", "value": json.dumps(dict(settings), sort_keys=True)},
            {"name": "MAYFLY_HOME_ID", "value": f"runner-{target}"},
        ],
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {
                "awslogs-group": log_group,
                "awslogs-region": region,
                "awslogs-stream-prefix": RUNNER_STREAM_PREFIX,
            },
        },
    }


def _trust_policy(ecs_arn: pulumi.Output[str], account: pulumi.Output[str]) -> pulumi.Output[str]:
    """ECS tasks of this account may assume the role (the conditions stop the confused deputy)."""
    return _policy_json(
        [
            {
                "Effect": "Allow",
                "Principal": {"Service": ECS_TASKS_PRINCIPAL},
                "Action": "sts:AssumeRole",
                "Condition": {
                    "StringEquals": {"aws:SourceAccount": account},
                    "ArnLike": {"aws:SourceArn": pulumi.Output.concat(ecs_arn, ":*")},
                },
            }
        ]
    )


def _policy_json(statements: list[dict[str, Any]]) -> pulumi.Output[str]:
    return pulumi.Output.json_dumps({"Version": "2012-10-17", "Statement": statements})


def stack_program(stack: AwsStack) -> Callable[[], None]:
    """The inline Pulumi program of an AWS stack file: the component, its outputs exported."""

    def program() -> None:
        target = AwsTarget(stack.target_name, AwsTargetArgs.from_stack(stack))
        for key, value in target.outputs().items():
            pulumi.export(key, value)
        pulumi.export("settings", target.settings_outputs())

    return program
