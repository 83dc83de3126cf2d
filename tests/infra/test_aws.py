"""The ``mayfly:aws:Target`` component under Pulumi mocks: what it asks AWS for, input by input.

Every IAM document is parsed and compared with an explicit allowlist of
(action, resource) pairs per identity; wildcards are allowed only where IAM
cannot scope the action, and each of those is listed here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from mayfly.infra.clouds.aws.component import PARAMETER_PATH, TASK_FAMILY_PREFIX, TYPE_TOKEN, AwsTargetArgs
from mayfly.providers.ecs.settings import EcsSettings

Mocks = Any  # conftest.RecordingMocks (test modules cannot import conftest under importlib mode)
Build = Callable[..., Any]  # conftest's `build` fixture: (name, args) -> Built

QUEUE = "aws:sqs/queue:Queue"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
POLICY = "aws:iam/policy:Policy"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
#: Actions IAM cannot scope to a resource ARN; nothing else may name Resource "*".
UNSCOPABLE = {
    "ecr:GetAuthorizationToken",  # account-wide login token
    "ecs:ListTasks",  # scoped by the ecs:cluster condition instead
    "ecs:RegisterTaskDefinition",  # no resource-level permissions
    "ecs:DescribeTaskDefinition",  # no resource-level permissions
    "ecs:DeregisterTaskDefinition",  # no resource-level permissions
}
# Wildcards inside ARNs are checked by the exact allowlists: the group's own "<log group ARN>:*", the
# "task/<cluster>/*" tasks, the "mayfly-<target>-*" task definitions, and logs:DescribeLogGroups on
# "log-group:*" of the account and region (it takes no single group's ARN).


def pairs(*actions: str, resources: list[str]) -> set[tuple[str, str]]:
    return {(a, r) for a in actions for r in resources}


class Names:
    """Physical names and ARNs the mocks give the resources of a component named "dev"."""

    def __init__(self, m: Mocks) -> None:
        self.m = m
        account, region, p = m.account, m.region, m.physical
        self.account, self.region = account, region
        self.repo_arn = f"arn:aws:ecr:{region}:{account}:repository/{p('dev-images')}"
        self.log_group_arn = f"arn:aws:logs:{region}:{account}:log-group:{p('dev-logs')}"
        self.log_streams = f"{self.log_group_arn}:*"
        self.log_groups = f"arn:aws:logs:{region}:{account}:log-group:*"
        self.bucket_arn = f"arn:aws:s3:::{p('dev-bucket')}"
        self.cluster = p("dev-cluster")
        self.cluster_arn = f"arn:aws:ecs:{region}:{account}:cluster/{self.cluster}"
        self.tasks = f"arn:aws:ecs:{region}:{account}:task/{self.cluster}/*"
        family_prefix = TASK_FAMILY_PREFIX.format(target="dev")
        self.task_definitions = f"arn:aws:ecs:{region}:{account}:task-definition/{family_prefix}*"
        self.execution_role_arn = self.role_arn("dev-execution")
        self.task_role_arn = self.role_arn("dev-task")
        self.parameters = f"arn:aws:ssm:{region}:{account}:parameter/{PARAMETER_PATH.format(target='dev')}/*"
        self.kms_keys = f"arn:aws:kms:{region}:{account}:key/*"

    def physical(self, name: str) -> str:
        return str(self.m.physical(name))

    def role_arn(self, name: str) -> str:
        return f"arn:aws:iam::{self.account}:role/{self.physical(name)}"

    def queue_arn(self, name: str) -> str:
        return f"arn:aws:sqs:{self.region}:{self.account}:{self.physical(name)}"

    def execution_allowed(self) -> set[tuple[str, str]]:
        """The execution role (used by ECS to start a task): pull from its repository, write its log group."""
        return (
            pairs("ecr:GetAuthorizationToken", resources=["*"])
            | pairs(
                "ecr:BatchCheckLayerAvailability",
                "ecr:BatchGetImage",
                "ecr:GetDownloadUrlForLayer",
                resources=[self.repo_arn],
            )
            | pairs(
                "logs:CreateLogGroup",
                "logs:CreateLogStream",
                "logs:PutLogEvents",
                resources=[self.log_group_arn, self.log_streams],
            )
            | pairs("ssm:GetParameters", resources=[self.parameters])
            | pairs("kms:Decrypt", resources=[self.kms_keys])
        )

    def runner_allowed(self) -> set[tuple[str, str]]:
        """The runner (and control plane): exactly the target's queues, bucket, cluster, roles and log group."""
        queues = [self.queue_arn("dev-tasks"), self.queue_arn("dev-control"), self.queue_arn("dev-events")]
        return (
            pairs(
                "sqs:SendMessage",
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:ChangeMessageVisibility",
                "sqs:GetQueueAttributes",
                resources=queues,
            )
            | pairs(
                "s3:GetObject",
                "s3:PutObject",
                "s3:DeleteObject",
                "s3:AbortMultipartUpload",
                resources=[f"{self.bucket_arn}/*"],
            )
            | pairs("s3:ListBucket", resources=[self.bucket_arn])
            | pairs("ecs:RunTask", resources=[self.task_definitions])
            | pairs("ecs:DescribeClusters", resources=[self.cluster_arn])
            | pairs("ecs:DescribeTasks", "ecs:StopTask", resources=[self.tasks])
            | pairs("ecs:ListTasks", resources=["*"])
            | pairs(
                "ecs:RegisterTaskDefinition",
                "ecs:DescribeTaskDefinition",
                "ecs:DeregisterTaskDefinition",
                resources=["*"],
            )
            | pairs(
                "ssm:PutParameter",
                "ssm:DeleteParameter",
                "ssm:DeleteParameters",
                "ssm:GetParametersByPath",
                resources=[self.parameters],
            )
            | pairs("ecs:TagResource", resources=[self.tasks, self.task_definitions])
            | pairs("iam:PassRole", resources=[self.execution_role_arn, self.task_role_arn])
            | pairs("logs:GetLogEvents", resources=[self.log_group_arn, self.log_streams])
            | pairs("logs:DescribeLogGroups", resources=[self.log_groups])
        )


def statements(doc: dict[str, Any]) -> list[dict[str, Any]]:
    assert doc["Version"] == "2012-10-17"
    result: list[dict[str, Any]] = doc["Statement"]
    return result


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def granted(doc: dict[str, Any]) -> set[tuple[str, str]]:
    """(action, resource) pairs an identity policy allows; fails on anything but plain Allow statements."""
    out: set[tuple[str, str]] = set()
    for st in statements(doc):
        assert st["Effect"] == "Allow", st
        assert not {"NotAction", "NotResource", "Principal"} & set(st), st
        for action in as_list(st["Action"]):
            assert "*" not in action, f"wildcard action {action}"
            for resource in as_list(st["Resource"]):
                if resource == "*":
                    assert action in UNSCOPABLE, f"{action} on Resource '*'"
                out.add((action, resource))
    return out


def condition_of(doc: dict[str, Any], action: str) -> dict[str, Any]:
    (st,) = [s for s in statements(doc) if action in as_list(s["Action"])]
    condition: dict[str, Any] = st.get("Condition", {})
    return condition


# ---------------------------------------------------------------- queues


def test_three_queues_and_two_dead_letter_queues_with_redrive(build: Build) -> None:
    built = build(args=AwsTargetArgs(max_receive_count=7, visibility_timeout_seconds=90))
    n = Names(built.mocks)
    queues = built.mocks.of_type(QUEUE)
    assert set(queues) == {"dev-tasks", "dev-tasks-dlq", "dev-control", "dev-events", "dev-events-dlq"}
    for source, dlq in (("dev-tasks", "dev-tasks-dlq"), ("dev-events", "dev-events-dlq")):
        redrive = json.loads(queues[source]["redrivePolicy"])
        assert redrive == {"deadLetterTargetArn": n.queue_arn(dlq), "maxReceiveCount": 7}
    for name in ("dev-control", "dev-tasks-dlq", "dev-events-dlq"):
        assert "redrivePolicy" not in queues[name]
    for name, inputs in queues.items():
        assert inputs["sqsManagedSseEnabled"] is True, name
        assert inputs["receiveWaitTimeSeconds"] == 20, name
        assert inputs["visibilityTimeoutSeconds"] == 90, name
    # Dead letters are kept the longest SQS allows, so there is time to look at them.
    assert queues["dev-tasks-dlq"]["messageRetentionSeconds"] == 14 * 86400
    assert queues["dev-tasks"]["messageRetentionSeconds"] == 4 * 86400


# ---------------------------------------------------------------- bucket


def test_bucket_is_encrypted_private_and_expires_runs_and_logs(build: Build) -> None:
    built = build(args=AwsTargetArgs(runs_expiry_days=9, logs_expiry_days=21, force_destroy=False))
    m, n = built.mocks, Names(built.mocks)
    bucket_id = n.physical("dev-bucket")
    assert m.one("aws:s3/bucket:Bucket", "dev-bucket")["forceDestroy"] is False

    sse = m.one(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        "dev-bucket-encryption",
    )
    assert sse["bucket"] == bucket_id
    assert sse["rules"] == [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}]

    block = m.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "dev-bucket-public-access")
    assert block["bucket"] == bucket_id
    for key in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"):
        assert block[key] is True, key

    ownership = m.one("aws:s3/bucketOwnershipControls:BucketOwnershipControls", "dev-bucket-ownership")
    assert ownership["rule"] == {"objectOwnership": "BucketOwnerEnforced"}
    versioning = m.one("aws:s3/bucketVersioning:BucketVersioning", "dev-bucket-versioning")
    assert versioning["versioningConfiguration"]["status"] == "Disabled"

    (deny,) = statements(built.policy("aws:s3/bucketPolicy:BucketPolicy", "dev-bucket-policy"))
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert deny["Resource"] == [n.bucket_arn, f"{n.bucket_arn}/*"]

    lifecycle = m.one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "dev-bucket-lifecycle")
    rules = {r["id"]: r for r in lifecycle["rules"]}
    assert rules["expire-runs"]["filter"] == {"prefix": "runs/"}
    assert rules["expire-runs"]["expiration"] == {"days": 9}
    assert rules["expire-logs"]["filter"] == {"prefix": "logs/"}
    assert rules["expire-logs"]["expiration"] == {"days": 21}
    abort = rules["abort-incomplete-multipart-uploads"]
    assert abort["abortIncompleteMultipartUpload"] == {"daysAfterInitiation": 1}
    assert "expiration" not in abort
    assert all(r["status"] == "Enabled" for r in rules.values())
    # Code packages (codes/) are never expired: only runs/ and logs/ rules expire anything.
    assert {r["filter"]["prefix"] for r in rules.values() if "expiration" in r} == {"runs/", "logs/"}


# ---------------------------------------------------------------- registry, cluster, logs, network


def test_ecr_repository_scans_and_keeps_the_newest_images(build: Build) -> None:
    built = build(args=AwsTargetArgs(keep_images=25, immutable_tags=True))
    repo = built.mocks.one("aws:ecr/repository:Repository", "dev-images")
    assert repo["imageScanningConfiguration"] == {"scanOnPush": True}
    assert repo["imageTagMutability"] == "IMMUTABLE"
    lifecycle = built.mocks.one("aws:ecr/lifecyclePolicy:LifecyclePolicy", "dev-images-lifecycle")
    assert lifecycle["repository"] == Names(built.mocks).physical("dev-images")
    rules = json.loads(lifecycle["policy"])["rules"]
    keep = [r for r in rules if r["selection"]["countType"] == "imageCountMoreThan"]
    assert keep == [
        {
            "rulePriority": 2,
            "description": "keep the newest 25 images",
            "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 25},
            "action": {"type": "expire"},
        }
    ]
    # ECR requires the "any" rule to have the lowest priority (highest number).
    assert max(r["rulePriority"] for r in rules) == 2


def test_log_group_retention_and_cluster_capacity_providers(build: Build) -> None:
    built = build(args=AwsTargetArgs(log_retention_days=30, capacity_provider="FARGATE_SPOT", container_insights=True))
    assert built.mocks.one("aws:cloudwatch/logGroup:LogGroup", "dev-logs")["retentionInDays"] == 30
    cluster = built.mocks.one("aws:ecs/cluster:Cluster", "dev-cluster")
    assert cluster["settings"] == [{"name": "containerInsights", "value": "enabled"}]
    capacity = built.mocks.one("aws:ecs/clusterCapacityProviders:ClusterCapacityProviders", "dev-capacity")
    assert capacity["clusterName"] == Names(built.mocks).cluster
    assert capacity["capacityProviders"] == ["FARGATE", "FARGATE_SPOT"]
    assert capacity["defaultCapacityProviderStrategies"] == [{"capacityProvider": "FARGATE_SPOT", "weight": 1}]
    assert built.settings["capacity_provider"] == "FARGATE_SPOT"


def test_security_group_allows_egress_only(build: Build) -> None:
    built = build()
    sg = built.mocks.one("aws:ec2/securityGroup:SecurityGroup", "dev-tasks-sg")
    assert sg["ingress"] == []
    (egress,) = sg["egress"]
    assert (egress["protocol"], egress["fromPort"], egress["toPort"]) == ("-1", 0, 0)
    assert egress["cidrBlocks"] == ["0.0.0.0/0"]
    assert sg["vpcId"] == built.mocks.default_vpc


def test_default_vpc_and_its_default_subnets_unless_given(build: Build) -> None:
    built = build()
    m = built.mocks
    (vpc_call,) = [c for c in m.calls if c.token == "aws:ec2/getVpc:getVpc"]
    assert vpc_call.args == {"default": True}
    (subnets_call,) = [c for c in m.calls if c.token == "aws:ec2/getSubnets:getSubnets"]
    assert subnets_call.args["filters"] == [
        {"name": "vpc-id", "values": [m.default_vpc]},
        {"name": "default-for-az", "values": ["true"]},
    ]
    assert built.settings["subnets"] == m.default_subnets


def test_given_subnets_are_used_and_their_vpc_found(build: Build) -> None:
    built = build(args=AwsTargetArgs(subnet_ids=["subnet-1", "subnet-2"], assign_public_ip=False))
    tokens = [c.token for c in built.mocks.calls]
    assert "aws:ec2/getVpc:getVpc" not in tokens
    assert "aws:ec2/getSubnets:getSubnets" not in tokens
    assert built.mocks.one("aws:ec2/securityGroup:SecurityGroup", "dev-tasks-sg")["vpcId"] == "vpc-0given"
    assert built.settings["subnets"] == ["subnet-1", "subnet-2"]
    assert built.settings["assign_public_ip"] is False


# ---------------------------------------------------------------- IAM


def test_every_iam_policy_grants_exactly_the_allowlist(build: Build) -> None:
    built = build()
    m, n = built.mocks, Names(built.mocks)
    # Exactly these identity policies exist: a new one must be added to this test.
    assert set(m.of_type(ROLE_POLICY)) == {"dev-execution"}
    assert set(m.of_type(POLICY)) == {"dev-runner"}
    assert m.of_type(ATTACHMENT) == {}

    execution = built.policy(ROLE_POLICY, "dev-execution")
    assert m.one(ROLE_POLICY, "dev-execution")["role"] == n.physical("dev-execution")
    assert granted(execution) == n.execution_allowed()

    runner = built.policy(POLICY, "dev-runner")
    assert granted(runner) == n.runner_allowed()
    on_cluster = {"ArnEquals": {"ecs:cluster": n.cluster_arn}}
    for action in ("ecs:RunTask", "ecs:DescribeTasks", "ecs:ListTasks"):
        assert condition_of(runner, action) == on_cluster, action
    assert condition_of(runner, "iam:PassRole") == {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}
    assert condition_of(runner, "ecs:TagResource") == {
        "StringEquals": {"ecs:CreateAction": ["RegisterTaskDefinition", "RunTask"]}
    }


def test_task_role_has_no_permissions(build: Build) -> None:
    built = build(args=AwsTargetArgs(runner=True, runner_image="img:1"))
    m, n = built.mocks, Names(built.mocks)
    task_role = m.one(ROLE, "dev-task")
    assert "managedPolicyArns" not in task_role
    assert "inlinePolicies" not in task_role
    with_policies = {p["role"] for p in m.of_type(ROLE_POLICY).values()}
    with_policies |= {a["role"] for a in m.of_type(ATTACHMENT).values()}
    assert n.physical("dev-task") not in with_policies
    assert with_policies == {n.physical("dev-execution"), n.physical("dev-runner")}


def test_roles_trust_only_ecs_tasks_of_this_account(build: Build) -> None:
    built = build(args=AwsTargetArgs(runner=True, runner_image="img:1"))
    n = Names(built.mocks)
    assert set(built.mocks.of_type(ROLE)) == {"dev-execution", "dev-task", "dev-runner"}
    for name in ("dev-execution", "dev-task", "dev-runner"):
        (trust,) = statements(built.policy(ROLE, name, key="assumeRolePolicy"))
        assert trust == {
            "Effect": "Allow",
            "Principal": {"Service": "ecs-tasks.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {
                "StringEquals": {"aws:SourceAccount": n.account},
                "ArnLike": {"aws:SourceArn": f"arn:aws:ecs:{n.region}:{n.account}:*"},
            },
        }, name


# ---------------------------------------------------------------- runner service


def test_no_runner_service_unless_enabled(build: Build) -> None:
    built = build()
    for typ in ("aws:ecs/service:Service", "aws:ecs/taskDefinition:TaskDefinition", ATTACHMENT):
        assert built.mocks.of_type(typ) == {}, typ
    assert "dev-runner" not in built.mocks.of_type(ROLE)
    assert "runner_service_name" not in built.outputs
    assert "runner_role_arn" not in built.outputs


def test_runner_service_runs_the_runner_with_the_target_settings(build: Build) -> None:
    args = AwsTargetArgs(
        target="aws-dev", runner=True, runner_image="repo/mayfly:runner", runner_cpu=1024, runner_memory=2048
    )
    built = build(args=args)
    m, n = built.mocks, Names(built.mocks)
    runner_role_arn = n.role_arn("dev-runner")
    assert m.one(ATTACHMENT, "dev-runner") == {
        "role": n.physical("dev-runner"),
        "policyArn": f"arn:aws:iam::{n.account}:policy/{n.physical('dev-runner')}",
    }

    definition = m.one("aws:ecs/taskDefinition:TaskDefinition", "dev-runner")
    assert definition["family"] == "aws-dev-runner"
    # The runner may not RunTask its own definition.
    assert not definition["family"].startswith(TASK_FAMILY_PREFIX.format(target="aws-dev"))
    assert (definition["cpu"], definition["memory"]) == ("1024", "2048")
    assert definition["requiresCompatibilities"] == ["FARGATE"]
    assert definition["networkMode"] == "awsvpc"
    assert definition["taskRoleArn"] == runner_role_arn
    assert definition["executionRoleArn"] == n.execution_role_arn
    (container,) = json.loads(definition["containerDefinitions"])
    assert container["image"] == "repo/mayfly:runner"
    assert container["command"] == ["mayfly", "runner", "--target", "aws-dev", "--capacity", "10"]
    env = {e["name"]: e["value"] for e in container["environment"]}
    assert (env["MAYFLY_TARGET_PROVIDER"], env["MAYFLY_HOME_ID"]) == ("ecs", "runner-aws-dev")
    from_env = EcsSettings.model_validate(json.loads(env["MAYFLY_TARGET_SETTINGS"]))
    assert from_env == EcsSettings.model_validate(built.settings)
    assert container["logConfiguration"]["options"]["awslogs-group"] == n.physical("dev-logs")

    service = m.one("aws:ecs/service:Service", "dev-runner")
    assert service["desiredCount"] == 1
    assert service["cluster"] == n.cluster_arn
    assert service["capacityProviderStrategies"] == [{"capacityProvider": "FARGATE", "weight": 1}]
    assert service["networkConfiguration"] == {
        "subnets": m.default_subnets,
        "securityGroups": ["sg-0123456789abcdef0"],
        "assignPublicIp": True,
    }
    assert built.outputs["runner_role_arn"] == runner_role_arn


def test_runner_needs_an_image() -> None:
    with pytest.raises(ValueError, match="runner_image is required"):
        AwsTargetArgs(runner=True)


# ---------------------------------------------------------------- structure and outputs


def test_every_child_is_parented_to_the_component(build: Build) -> None:
    built = build(args=AwsTargetArgs(runner=True, runner_image="img:1"))
    m = built.mocks
    component = f"urn:pulumi:{m.stack}::{m.project}::pulumi:pulumi:Stack${TYPE_TOKEN}::dev"
    children = {k: v for k, v in built.monitor.parents.items() if k[0] not in ("pulumi:pulumi:Stack", TYPE_TOKEN)}
    assert len(children) == len(m.resources) - 1  # every resource but the component itself
    assert set(children.values()) == {component}
    for _, name in children:
        assert name.startswith("dev-"), name


def test_outputs_are_registered_and_settings_are_ecs_settings(build: Build) -> None:
    built = build()
    n = Names(built.mocks)
    (registered,) = [v for k, v in built.monitor.registered_outputs.items() if TYPE_TOKEN in k]
    assert set(registered) == set(built.outputs)
    assert {"tasks_queue_url", "events_queue_url", "bucket", "repository_url", "runner_policy_arn"} <= set(registered)

    settings = EcsSettings.model_validate(built.settings)
    # Every field a deploy must produce is there; none is left to a default by accident.
    assert set(built.settings) == {
        "region",
        "cluster",
        "subnets",
        "security_groups",
        "assign_public_ip",
        "execution_role_arn",
        "task_role_arn",
        "log_group",
        "log_stream_prefix",
        "bucket",
        "tasks_queue_url",
        "control_queue_url",
        "events_queue_url",
        "image_prefix",
        "capacity_provider",
    }
    assert settings.region == n.region
    assert settings.cluster == n.cluster
    assert settings.tasks_queue_url.endswith(n.physical("dev-tasks"))
    assert settings.image_prefix == f"{n.account}.dkr.ecr.{n.region}.amazonaws.com/{n.physical('dev-images')}"
    assert settings.execution_role_arn == n.execution_role_arn
    assert settings.task_role_arn == n.task_role_arn


def test_tags_on_every_taggable_resource(build: Build) -> None:
    built = build(args=AwsTargetArgs(target="aws-dev", tags={"team": "data"}))
    tagged = [r for r in built.mocks.resources if "tags" in r.inputs]
    assert len(tagged) >= 12
    for r in tagged:
        assert r.inputs["tags"] == {"mayfly:target": "aws-dev", "team": "data"}, r.name


def test_task_family_prefix_matches_the_ecs_provider_families() -> None:
    from mayfly.providers.ecs.taskdefs import TaskDefinitionSpec

    spec = TaskDefinitionSpec(
        image="img:1",
        cpu=256,
        memory=512,
        execution_role_arn="arn:aws:iam::1:role/x",
        task_role_arn=None,
        log_group="g",
        log_stream_prefix="mayfly",
        region="eu-west-1",
        stop_timeout=30,
    )
    assert spec.family("aws-dev").startswith(TASK_FAMILY_PREFIX.format(target="aws-dev"))


def test_parameter_path_matches_where_the_ecs_provider_puts_secrets() -> None:
    """The execution role and the runner are granted exactly the folder the provider writes to."""
    from mayfly.providers.ecs.secrets import attempt_path, target_path

    assert target_path("aws-dev") == "/" + PARAMETER_PATH.format(target="aws-dev")
    assert attempt_path("aws-dev", "h", "t", 1).startswith(target_path("aws-dev") + "/")


def test_execution_role_decrypts_only_through_ssm(build: Build) -> None:
    built = build()
    (decrypt,) = [s for s in statements(built.policy(ROLE_POLICY, "dev-execution")) if s["Action"] == ["kms:Decrypt"]]
    assert decrypt["Condition"] == {"StringEquals": {"kms:ViaService": f"ssm.{built.mocks.region}.amazonaws.com"}}


def test_the_component_also_builds_in_a_preview(mocks: Any) -> None:
    """`mayfly preview` runs the program with unknown outputs: nothing may need a resolved value."""
    import pulumi

    from mayfly.infra.clouds.aws.component import AwsTarget

    recording, monitor = mocks
    pulumi.runtime.set_mocks(recording, project=recording.project, stack=recording.stack, preview=True, monitor=monitor)

    @pulumi.runtime.test  # type: ignore[untyped-decorator]  # pulumi's test helper is untyped
    def program() -> pulumi.Output[Any]:
        return AwsTarget("dev", AwsTargetArgs(runner=True, runner_image="img:1")).settings_outputs()

    program()
    assert {r.name for r in recording.resources} >= {"dev-tasks", "dev-runner", "dev-bucket-lifecycle"}
