"""The ``mayfly:gcp:Target`` component under Pulumi mocks: what it asks Google Cloud for, input by input.

Every IAM binding the component makes is collected as (member, role, resource) and compared with
an explicit allowlist per identity: the task account holds nothing, the runner exactly what it
uses, bound on each resource, and on the project only the roles of ``PROJECT_ROLES``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pulumi
import pytest

from mayfly.infra.clouds.gcp.component import KINDS, PROJECT_ROLES, TYPE_TOKEN, GcpTargetArgs
from mayfly.providers.cloudrun.settings import CloudRunSettings

Build = Callable[..., Any]  # conftest's `build` fixture: (name, args) -> GcpBuilt

PROJECT = "my-project"
NUMBER = "123456789012"
REGION = "europe-west1"
TOPIC = "gcp:pubsub/topic:Topic"
SUBSCRIPTION = "gcp:pubsub/subscription:Subscription"
TOPIC_IAM = "gcp:pubsub/topicIAMMember:TopicIAMMember"
SUBSCRIPTION_IAM = "gcp:pubsub/subscriptionIAMMember:SubscriptionIAMMember"
BUCKET_IAM = "gcp:storage/bucketIAMMember:BucketIAMMember"
ACCOUNT_IAM = "gcp:serviceaccount/iAMMember:IAMMember"
PROJECT_IAM = "gcp:projects/iAMMember:IAMMember"
REPOSITORY_IAM = "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember"
IAM_TYPES = {
    TOPIC_IAM: "topic",
    SUBSCRIPTION_IAM: "subscription",
    BUCKET_IAM: "bucket",
    ACCOUNT_IAM: "serviceAccountId",
    REPOSITORY_IAM: "repository",
}

PUBSUB_AGENT = f"serviceAccount:service-{NUMBER}@gcp-sa-pubsub.iam.gserviceaccount.com"
RUN_AGENT = f"serviceAccount:service-{NUMBER}@serverless-robot-prod.iam.gserviceaccount.com"
RUNNER_EMAIL = f"dev-runner@{PROJECT}.iam.gserviceaccount.com"
TASK_EMAIL = f"dev-task@{PROJECT}.iam.gserviceaccount.com"
RUNNER = f"serviceAccount:{RUNNER_EMAIL}"
BUCKET = "dev-bucket-1a2b3c4"  # the mocks' auto-name


def args(**overrides: Any) -> GcpTargetArgs:
    return GcpTargetArgs(project=PROJECT, region=REGION, **overrides)


def bindings(built: Any) -> set[tuple[str, str, str]]:
    """Every IAM binding as (member, role, resource): ``topic:ID``, ``project:ID``, ..."""
    found = set()
    for res in built.mocks.resources:
        if res.typ == PROJECT_IAM:
            found.add((res.inputs["member"], res.inputs["role"], f"project:{res.inputs['project']}"))
        elif res.typ in IAM_TYPES:
            key = IAM_TYPES[res.typ]
            found.add((res.inputs["member"], res.inputs["role"], f"{key}:{res.inputs[key]}"))
        else:
            assert "IAM" not in res.typ, f"unchecked IAM resource {res.typ}"
    return found


# ---------------------------------------------------------------- queues


def test_three_queues_each_dead_lettering_to_its_own_topic(build: Build) -> None:
    built = build("dev", args(max_delivery_attempts=7, ack_deadline_seconds=90))
    topics = built.mocks.of_type(TOPIC)
    subscriptions = built.mocks.of_type(SUBSCRIPTION)
    names = {f"mayfly-dev-{kind}{dlq}" for kind in KINDS for dlq in ("", "-dlq")}
    assert {t["name"] for t in topics.values()} == names
    assert {s["name"] for s in subscriptions.values()} == names
    for kind in KINDS:
        sub = subscriptions[f"mayfly-dev-{kind}"]
        assert sub["topic"] == f"projects/{PROJECT}/topics/mayfly-dev-{kind}"
        assert sub["deadLetterPolicy"] == {
            "deadLetterTopic": f"projects/{PROJECT}/topics/mayfly-dev-{kind}-dlq",
            "maxDeliveryAttempts": 7.0,
        }
        assert sub["retryPolicy"] == {"minimumBackoff": "10s", "maximumBackoff": "600s"}
        assert sub["ackDeadlineSeconds"] == 90.0
        assert sub["messageRetentionDuration"] == f"{4 * 86400}s"
        # A subscription idle for 31 days would otherwise be deleted with its backlog.
        assert sub["expirationPolicy"] == {"ttl": ""}
        dead = subscriptions[f"mayfly-dev-{kind}-dlq"]
        assert dead["topic"] == f"projects/{PROJECT}/topics/mayfly-dev-{kind}-dlq"
        assert "deadLetterPolicy" not in dead
        assert dead["expirationPolicy"] == {"ttl": ""}
    # The names are the ones the cloudrun provider derives from its queue_prefix.
    assert CloudRunSettings.model_validate(built.settings).queue_prefix == "mayfly-dev"


def test_pubsub_service_agent_can_forward_dead_letters(build: Build) -> None:
    built = build()
    agent = {(role, resource) for member, role, resource in bindings(built) if member == PUBSUB_AGENT}
    expected = {("roles/pubsub.publisher", f"topic:mayfly-dev-{kind}-dlq") for kind in KINDS} | {
        ("roles/pubsub.subscriber", f"subscription:mayfly-dev-{kind}") for kind in KINDS
    }
    assert agent == expected
    (call,) = built.mocks.calls  # the project's number, for the agent's address
    assert (call.token, call.args["projectId"]) == ("gcp:organizations/getProject:getProject", PROJECT)


# ---------------------------------------------------------------- bucket and registry


def test_bucket_is_private_uniform_and_expires_runs_and_logs(build: Build) -> None:
    built = build("dev", args(runs_expiry_days=3, logs_expiry_days=9, force_destroy=False, soft_delete_days=7))
    (bucket,) = built.mocks.of_type("gcp:storage/bucket:Bucket").values()
    assert bucket["publicAccessPrevention"] == "enforced"
    assert bucket["uniformBucketLevelAccess"] is True
    assert bucket["location"] == "EUROPE-WEST1"
    assert bucket["versioning"] == {"enabled": False}
    assert bucket["softDeletePolicy"] == {"retentionDurationSeconds": 7.0 * 86400}
    assert bucket["forceDestroy"] is False
    assert bucket["lifecycleRules"] == [
        {"action": {"type": "Delete"}, "condition": {"age": 3.0, "matchesPrefixes": ["runs/"]}},
        {"action": {"type": "Delete"}, "condition": {"age": 9.0, "matchesPrefixes": ["logs/"]}},
        {"action": {"type": "AbortIncompleteMultipartUpload"}, "condition": {"age": 1.0}},
    ]
    # codes/ (the code packages) never expire.
    assert not any("codes/" in json.dumps(rule) for rule in bucket["lifecycleRules"])
    assert not {"cors", "website"} & set(bucket)


def test_registry_is_a_docker_repository_keeping_the_newest_images(build: Build) -> None:
    built = build("dev", args(keep_images=20, immutable_tags=True))
    (repo,) = built.mocks.of_type("gcp:artifactregistry/repository:Repository").values()
    assert (repo["format"], repo["repositoryId"], repo["location"]) == ("DOCKER", "mayfly-dev", REGION)
    assert repo["dockerConfig"] == {"immutableTags": True}
    assert repo["cleanupPolicyDryRun"] is False
    assert repo["cleanupPolicies"] == [
        {"id": "keep-newest", "action": "KEEP", "mostRecentVersions": {"keepCount": 20.0}},
        {"id": "delete-untagged", "action": "DELETE", "condition": {"tagState": "UNTAGGED", "olderThan": "86400s"}},
    ]
    assert built.outputs["repository_url"] == f"{REGION}-docker.pkg.dev/{PROJECT}/mayfly-dev"


# ---------------------------------------------------------------- identities


def test_each_service_account_holds_only_the_roles_it_uses_where_they_are_bound(build: Build) -> None:
    built = build()
    accounts = built.mocks.of_type("gcp:serviceaccount/account:Account")
    assert {a["accountId"] for a in accounts.values()} == {"dev-runner", "dev-task"}
    runner = {(role, resource) for member, role, resource in bindings(built) if member == RUNNER}
    on_queues = set()
    for kind in KINDS:
        on_queues |= {
            ("roles/pubsub.publisher", f"topic:mayfly-dev-{kind}"),
            ("roles/pubsub.viewer", f"topic:mayfly-dev-{kind}"),
            ("roles/pubsub.subscriber", f"subscription:mayfly-dev-{kind}"),
            ("roles/pubsub.viewer", f"subscription:mayfly-dev-{kind}"),
            ("roles/pubsub.subscriber", f"subscription:mayfly-dev-{kind}-dlq"),
        }
    assert runner == on_queues | {
        ("roles/storage.objectUser", f"bucket:{BUCKET}"),
        ("roles/storage.legacyBucketReader", f"bucket:{BUCKET}"),
        # actAs on the task account only (to run jobs as it), signBlob on itself only.
        ("roles/iam.serviceAccountUser", f"serviceAccountId:projects/{PROJECT}/serviceAccounts/{TASK_EMAIL}"),
        ("roles/iam.serviceAccountTokenCreator", f"serviceAccountId:projects/{PROJECT}/serviceAccounts/{RUNNER_EMAIL}"),
        ("roles/run.developer", f"project:{PROJECT}"),
        ("roles/logging.viewer", f"project:{PROJECT}"),
    }
    # The task containers' account holds nothing anywhere; nobody else is granted anything.
    members = {member for member, _, _ in bindings(built)}
    assert members == {RUNNER, PUBSUB_AGENT, RUN_AGENT}
    # Cloud Run's service agent pulls the task images from this repository, and does nothing else.
    assert {(role, resource) for member, role, resource in bindings(built) if member == RUN_AGENT} == {
        ("roles/artifactregistry.reader", "repository:mayfly-dev")
    }
    # Project-level roles are exactly the documented ones, each with its reason.
    project_level = {role for _, role, resource in bindings(built) if resource.startswith("project:")}
    assert project_level == set(PROJECT_ROLES) == {"roles/run.developer", "roles/logging.viewer"}
    assert all(PROJECT_ROLES.values())


def test_operators_may_act_as_the_runner_and_nothing_else(build: Build) -> None:
    built = build("dev", args(operators=("user:ops@example.com", "group:team@example.com")))
    runner_account = f"serviceAccountId:projects/{PROJECT}/serviceAccounts/{RUNNER_EMAIL}"
    granted = {b for b in bindings(built) if b[0] not in {RUNNER, PUBSUB_AGENT, RUN_AGENT}}
    assert granted == {
        (member, "roles/iam.serviceAccountTokenCreator", runner_account)
        for member in ("user:ops@example.com", "group:team@example.com")
    }


def test_apis_are_enabled_first_and_never_disabled(build: Build) -> None:
    built = build()
    services = built.mocks.of_type("gcp:projects/service:Service")
    assert {s["service"] for s in services.values()} >= {
        "pubsub.googleapis.com",
        "run.googleapis.com",
        "storage.googleapis.com",
        "artifactregistry.googleapis.com",
        "iamcredentials.googleapis.com",
        "logging.googleapis.com",
    }
    assert all(s["disableOnDestroy"] is False for s in services.values())
    api_urns = {
        urn
        for urn in {str(d) for deps in built.monitor.dependencies.values() for d in deps}
        if "gcp:projects/service:Service" in urn
    }
    for typ, name in [(TOPIC, "mayfly-dev-tasks"), ("gcp:storage/bucket:Bucket", "dev-bucket")]:
        assert set(built.monitor.dependencies[(typ, name)]) >= api_urns
    assert len(api_urns) == len(services)


def test_apis_are_left_alone_when_asked(build: Build) -> None:
    built = build("dev", args(enable_apis=False))
    assert built.mocks.of_type("gcp:projects/service:Service") == {}


# ---------------------------------------------------------------- runner


def test_no_runner_unless_enabled(build: Build) -> None:
    built = build()
    assert built.mocks.of_type("gcp:cloudrunv2/workerPool:WorkerPool") == {}
    assert "runner_worker_pool" not in built.outputs


def test_runner_worker_pool_runs_the_runner_with_the_target_settings(build: Build) -> None:
    image = f"{REGION}-docker.pkg.dev/{PROJECT}/tools/mayfly:runner"
    built = build("dev", args(runner=True, runner_image=image, runner_cpu=2048, runner_memory=2048, runner_capacity=7))
    (pool,) = built.mocks.of_type("gcp:cloudrunv2/workerPool:WorkerPool").values()
    assert (pool["name"], pool["location"], pool["deletionProtection"]) == ("dev-runner", REGION, False)
    assert pool["scaling"] == {"scalingMode": "MANUAL", "manualInstanceCount": 1.0}
    template = pool["template"]
    assert template["serviceAccount"] == RUNNER_EMAIL
    (container,) = template["containers"]
    assert container["image"] == image
    assert [*container["commands"], *container["args"]] == ["mayfly", "runner", "--target", "dev", "--capacity", "7"]
    assert container["resources"] == {"limits": {"cpu": "2", "memory": "2048Mi"}}
    env = {e["name"]: e["value"] for e in container["envs"]}
    assert env["MAYFLY_TARGET_PROVIDER"] == "cloudrun"
    assert env["MAYFLY_HOME_ID"] == "runner-dev"
    settings = CloudRunSettings.model_validate(json.loads(env["MAYFLY_TARGET_SETTINGS"]))
    assert settings == CloudRunSettings.model_validate(built.settings)
    # In the cloud the runner signs URLs through IAM as itself: no key file.
    assert (settings.signer_service_account, settings.credentials_file) == (RUNNER_EMAIL, None)
    assert built.outputs["runner_worker_pool"] == "dev-runner"
    # It starts once its account holds its roles.
    deps = built.monitor.dependencies[("gcp:cloudrunv2/workerPool:WorkerPool", "dev-runner")]
    assert {"dev-runner-run-developer", "dev-runner-objectUser", "dev-runner-signs-blobs"} <= {
        str(urn).rsplit("::", 1)[-1] for urn in deps
    }


def test_runner_needs_an_image() -> None:
    with pytest.raises(ValueError, match="runner_image is required"):
        GcpTargetArgs(project=PROJECT, region=REGION, runner=True)


# ---------------------------------------------------------------- outputs


def test_outputs_are_registered_and_settings_are_cloudrun_settings(build: Build) -> None:
    built = build("dev", args(vpc_network="default", vpc_subnetwork="tasks", vpc_egress="ALL_TRAFFIC", launch_burst=3))
    settings = CloudRunSettings.model_validate(built.settings)
    assert settings.model_dump(exclude_defaults=True) == {
        "project": PROJECT,
        "region": REGION,
        "queue_prefix": "mayfly-dev",
        "bucket": BUCKET,
        "job_prefix": "mayfly-dev",
        "task_service_account": TASK_EMAIL,
        "signer_service_account": RUNNER_EMAIL,
        "image_prefix": f"{REGION}-docker.pkg.dev/{PROJECT}/mayfly-dev",
        "vpc_network": "default",
        "vpc_subnetwork": "tasks",
        "vpc_egress": "ALL_TRAFFIC",
        "launch_burst": 3,
    }
    # Unset, the launch rate is the provider's own default (sized to Cloud Run's quota), not the stack's.
    assert "launches_per_second" not in built.settings
    (registered,) = built.monitor.registered_outputs.values()
    assert set(registered) == set(built.outputs)
    assert built.outputs["tasks_dlq_topic"] == "mayfly-dev-tasks-dlq"


def test_every_child_is_parented_to_the_component_and_labelled(build: Build) -> None:
    built = build("dev", args(labels={"team": "data"}))
    parents = {key: parent for key, parent in built.monitor.parents.items() if key[0] != TYPE_TOKEN}
    assert parents
    assert all(parent.endswith(f"{TYPE_TOKEN}::dev") for parent in parents.values()), parents
    labelled = [r for r in built.mocks.resources if "labels" in r.inputs]
    assert len(labelled) == 6 + 6 + 2  # topics, subscriptions, bucket, repository
    assert all(r.inputs["labels"] == {"mayfly-target": "dev", "team": "data"} for r in labelled)


def test_the_component_also_builds_in_a_preview(gcp_mocks: Any) -> None:
    from mayfly.infra.clouds.gcp.component import GcpTarget

    recording, monitor = gcp_mocks
    pulumi.runtime.set_mocks(recording, project="mayfly", stack="test", preview=True, monitor=monitor)

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def program() -> pulumi.Output[Any]:
        target = GcpTarget("dev", args(runner=True, runner_image="r:1"))
        return target.settings_outputs()

    program()
    assert len(recording.of_type(SUBSCRIPTION)) == 6
