"""The ``mayfly:azure:Target`` component under Pulumi mocks: what it asks Azure for, input by input.

Every role assignment is collected as (principal, role definition, scope) and compared with the
exact set each identity needs, scopes being the ids Azure gives the resources the component made.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from mayfly.infra.clouds.azure import roles
from mayfly.infra.clouds.azure.component import TYPE_TOKEN, AzureTargetArgs, queue_names
from mayfly.infra.clouds.azure.registry import destinations
from mayfly.providers.aci.groups import image_of
from mayfly.providers.aci.settings import AciSettings

Build = Callable[..., Any]  # conftest's `build_azure` fixture: (name, args) -> Built

SUBSCRIPTION = "00000000-1111-2222-3333-444444444444"  # conftest.AZURE_SUBSCRIPTION
STORAGE = "azure-native:storage:StorageAccount"
ASSIGNMENT = "azure-native:authorization:RoleAssignment"
ROLE_DEFINITION = "azure-native:authorization:RoleDefinition"
IDENTITY = "azure-native:managedidentity:UserAssignedIdentity"
GROUP = "azure-native:containerinstance:ContainerGroup"
ME = "11111111-2222-3333-4444-555555555555"


def args(**overrides: Any) -> AzureTargetArgs:
    values: dict[str, Any] = {
        "subscription": SUBSCRIPTION,
        "location": "westeurope",
        "resource_group": "mayfly-dev",
        "storage_account": "mayflydev0a1b2c3d",
        "registry": "MayflyDev0a1b2c3d",
        "target": "dev",
        "queue_prefix": "dev",
    }
    return AzureTargetArgs(**(values | overrides))


def builtin(role: roles.BuiltInRole) -> str:
    return role.definition_id(SUBSCRIPTION)


def grants(built: Any) -> dict[str, set[tuple[str, str]]]:
    """Role assignments as principal id -> {(role definition id, scope)}."""
    out: dict[str, set[tuple[str, str]]] = {}
    for inputs in built.mocks.of_type(ASSIGNMENT).values():
        out.setdefault(inputs["principalId"], set()).add((inputs["roleDefinitionId"], inputs["scope"]))
    return out


# ---------------------------------------------------------------- storage


def test_storage_account_is_hardened(build_azure: Build) -> None:
    built = build_azure("dev", args())
    account = built.mocks.one(STORAGE, "dev-storage")
    assert account["accountName"] == "mayflydev0a1b2c3d"
    assert account["minimumTlsVersion"] == "TLS1_2"
    assert account["allowBlobPublicAccess"] is False
    assert account["enableHttpsTrafficOnly"] is True
    # No account key works: the runner uses its identity and signs user-delegation SAS URLs.
    assert account["allowSharedKeyAccess"] is False
    assert account["allowCrossTenantReplication"] is False
    assert account["defaultToOAuthAuthentication"] is True
    assert account["kind"] == "StorageV2"
    container = built.mocks.one("azure-native:storage:BlobContainer", "dev-container")
    assert (container["containerName"], container["publicAccess"]) == ("mayfly", "None")


def test_shared_key_access_only_when_asked(build_azure: Build) -> None:
    built = build_azure("dev", args(shared_key_access=True))
    assert built.mocks.one(STORAGE, "dev-storage")["allowSharedKeyAccess"] is True


def test_lifecycle_rules_delete_runs_and_logs_but_never_code_packages(build_azure: Build) -> None:
    built = build_azure("dev", args(container="blobs", runs_expiry_days=7, logs_expiry_days=90))
    policy = built.mocks.one("azure-native:storage:ManagementPolicy", "dev-lifecycle")
    assert policy["managementPolicyName"] == "default"
    expiring = {}
    for rule in policy["policy"]["rules"]:
        assert (rule["enabled"], rule["type"]) == (True, "Lifecycle")
        definition = rule["definition"]
        assert set(definition["actions"]) == {"baseBlob"}  # no snapshot or version rules: neither is enabled
        (prefix,) = definition["filters"]["prefixMatch"]
        expiring[prefix] = definition["actions"]["baseBlob"]["delete"]["daysAfterModificationGreaterThan"]
        assert set(definition["filters"]["blobTypes"]) == {"blockBlob", "appendBlob"}
    assert expiring == {"blobs/runs/": 7, "blobs/logs/": 90}


def test_three_queues_each_with_a_poison_queue(build_azure: Build) -> None:
    built = build_azure("dev", args(queue_prefix="jobs"))
    queues = {q["queueName"] for q in built.mocks.of_type("azure-native:storage:Queue").values()}
    expected = {f"jobs-{kind}{suffix}" for kind in ("tasks", "control", "events") for suffix in ("", "-poison")}
    assert queues == expected == set(queue_names("jobs"))
    assert sorted(built.outputs["queues"]) == sorted(expected)


# ---------------------------------------------------------------- registry and identities


def test_registry_admin_user_and_anonymous_pull_are_disabled(build_azure: Build) -> None:
    built = build_azure("dev", args(registry_sku="Premium"))
    registry = built.mocks.one("azure-native:containerregistry:Registry", "dev-registry")
    assert (registry["registryName"], registry["sku"]) == ("MayflyDev0a1b2c3d", {"name": "Premium"})
    assert registry["adminUserEnabled"] is False
    assert registry["anonymousPullEnabled"] is False
    # ACR lowercases the login server; the image prefix follows it.
    assert built.outputs["registry_server"] == "mayflydev0a1b2c3d.azurecr.io"
    assert built.outputs["image_prefix"] == "mayflydev0a1b2c3d.azurecr.io/mayfly"


def test_each_identity_is_granted_exactly_the_resources_it_uses(build_azure: Build) -> None:
    built = build_azure("dev", args())
    out = built.outputs
    pull = built.mocks.one(IDENTITY, "dev-pull")
    runner = built.mocks.one(IDENTITY, "dev-runner")
    assert (pull["resourceName"], runner["resourceName"]) == ("dev-pull", "dev-runner")
    by_principal = grants(built)
    assert set(by_principal) == {out["runner_identity_principal_id"], out["pull_identity_principal_id"]}
    # The pull identity: pull images from this registry, nothing else.
    assert by_principal[out["pull_identity_principal_id"]] == {(builtin(roles.ACR_PULL), out["registry_id"])}
    # The runner: each role on the narrowest scope Azure allows for it.
    assert by_principal[out["runner_identity_principal_id"]] == {
        (builtin(roles.STORAGE_QUEUE_DATA_CONTRIBUTOR), out["storage_account_id"] + "/queueServices/default"),
        (builtin(roles.STORAGE_BLOB_DATA_CONTRIBUTOR), out["container_id"]),
        (builtin(roles.STORAGE_BLOB_DELEGATOR), out["storage_account_id"]),
        (out["container_group_role_id"], out["resource_group_id"]),
        (builtin(roles.MANAGED_IDENTITY_OPERATOR), out["pull_identity_id"]),
    }
    for inputs in built.mocks.of_type(ASSIGNMENT).values():
        assert inputs["principalType"] == "ServicePrincipal"  # managed identities; ARM refuses a wrong type
        assert inputs["scope"].startswith(out["resource_group_id"] + "/") or inputs["scope"] == out["resource_group_id"]


def test_the_container_group_role_is_exactly_the_container_group_actions_on_the_group(build_azure: Build) -> None:
    built = build_azure("dev", args())
    (role,) = built.mocks.of_type(ROLE_DEFINITION).values()
    rg = built.outputs["resource_group_id"]
    assert (role["scope"], role["assignableScopes"], role["roleType"]) == (rg, [rg], "CustomRole")
    (permission,) = role["permissions"]
    assert permission["notActions"] == []
    assert "dataActions" not in permission
    assert sorted(permission["actions"]) == sorted(
        [
            "Microsoft.ContainerInstance/containerGroups/read",
            "Microsoft.ContainerInstance/containerGroups/write",
            "Microsoft.ContainerInstance/containerGroups/delete",
            "Microsoft.ContainerInstance/containerGroups/stop/action",
            "Microsoft.ContainerInstance/containerGroups/containers/logs/read",
            "Microsoft.ContainerInstance/containerGroups/operationResults/read",
        ]
    )
    # A stable GUID per resource group, so an update keeps (and a redeploy finds) the same role.
    assert role["roleDefinitionId"] == roles.container_group_role_guid(SUBSCRIPTION, "mayfly-dev")
    assert built.outputs["container_group_role_id"].endswith("/" + role["roleDefinitionId"])


def test_listed_principals_get_the_runners_roles_with_their_type(build_azure: Build) -> None:
    group = "99999999-8888-7777-6666-555555555555"
    built = build_azure("dev", args(principals=((ME, "User"), (group, "Group"))))
    by_principal = grants(built)
    runner = by_principal[built.outputs["runner_identity_principal_id"]]
    assert by_principal[ME] == by_principal[group] == runner
    types = {i["principalId"]: i["principalType"] for i in built.mocks.of_type(ASSIGNMENT).values()}
    assert (types[ME], types[group]) == ("User", "Group")


# ---------------------------------------------------------------- the runner container group


def test_no_runner_group_unless_enabled(build_azure: Build) -> None:
    built = build_azure("dev", args())
    assert built.mocks.of_type(GROUP) == {}
    assert "runner_group_name" not in built.outputs


def test_runner_group_runs_the_runner_with_its_identity_and_the_target_settings(build_azure: Build) -> None:
    image = "mayflydev0a1b2c3d.azurecr.io/mayfly/runner:1"
    built = build_azure("dev", args(runner=True, runner_image=image, runner_cpu=1024, runner_memory=2048))
    group = built.mocks.one(GROUP, "dev-runner")
    out = built.outputs
    assert (group["containerGroupName"], group["osType"], group["restartPolicy"]) == ("dev-runner", "Linux", "Always")
    assert "ipAddress" not in group  # nothing calls in
    # The runner identity for Azure calls; the pull identity only to pull its image from the stack's registry.
    assert group["identity"] == {
        "type": "UserAssigned",
        "userAssignedIdentities": [out["runner_identity_id"], out["pull_identity_id"]],
    }
    credentials = [{"server": out["registry_server"], "identity": out["pull_identity_id"]}]
    assert group["imageRegistryCredentials"] == credentials
    (container,) = group["containers"]
    assert container["image"] == image
    assert container["command"] == ["mayfly", "runner", "--target", "dev", "--capacity", "10"]
    assert container["resources"] == {"requests": {"cpu": 1.0, "memoryInGB": 2.0}}
    env = {e["name"]: e["value"] for e in container["environmentVariables"]}
    assert (env["MAYFLY_TARGET_PROVIDER"], env["MAYFLY_HOME_ID"]) == ("aci", "runner-dev")
    settings = AciSettings.model_validate_json(env["MAYFLY_TARGET_SETTINGS"])
    # In Azure the runner authenticates as its managed identity; everything else is the recorded settings.
    assert settings.runner_client_id == out["runner_identity_client_id"]
    assert settings.model_dump(exclude={"runner_client_id"}) == AciSettings.model_validate(built.settings).model_dump(
        exclude={"runner_client_id"}
    )
    assert out["runner_group_name"] == "dev-runner"


def test_a_public_runner_image_needs_no_registry_credentials(build_azure: Build) -> None:
    built = build_azure("dev", args(runner=True, runner_image="ghcr.io/example/mayfly:1"))
    group = built.mocks.one(GROUP, "dev-runner")
    assert group["identity"]["userAssignedIdentities"] == [built.outputs["runner_identity_id"]]
    assert "imageRegistryCredentials" not in group


def test_runner_needs_an_image() -> None:
    with pytest.raises(ValueError, match="runner_image is required"):
        args(runner=True)


# ---------------------------------------------------------------- structure and outputs


def test_every_child_is_parented_to_the_component(build_azure: Build) -> None:
    built = build_azure("dev", args(runner=True, runner_image="img:1", principals=((ME, "User"),)))
    m = built.mocks
    component = f"urn:pulumi:{m.stack}::{m.project}::pulumi:pulumi:Stack${TYPE_TOKEN}::dev"
    children = {k: v for k, v in built.monitor.parents.items() if k[0] not in ("pulumi:pulumi:Stack", TYPE_TOKEN)}
    assert len(children) == len(m.resources) - 1  # every resource but the component itself
    assert set(children.values()) == {component}


def test_settings_output_is_aci_settings(build_azure: Build) -> None:
    built = build_azure("dev", args())
    (registered,) = [v for k, v in built.monitor.registered_outputs.items() if TYPE_TOKEN in k]
    assert set(registered) == set(built.outputs)
    settings = AciSettings.model_validate(built.settings)
    assert settings.model_dump(exclude_defaults=True) == {
        "subscription_id": SUBSCRIPTION,
        "resource_group": "mayfly-dev",
        "location": "westeurope",
        "storage_account": "mayflydev0a1b2c3d",
        "queue_prefix": "dev",
        "container": "mayfly",
        "registry_server": "mayflydev0a1b2c3d.azurecr.io",
        "image_prefix": "mayflydev0a1b2c3d.azurecr.io/mayfly",
        "pull_identity_id": built.outputs["pull_identity_id"],
    }
    # Neither an account key nor emulator endpoints: the real services, Entra ID credentials.
    assert (settings.account_key, settings.blob_endpoint, settings.arm_endpoint) == (None, None, None)


def test_tags_on_every_taggable_resource(build_azure: Build) -> None:
    built = build_azure("dev", args(target="azure-dev", tags={"team": "data"}, runner=True, runner_image="i:1"))
    tagged = [r for r in built.mocks.resources if "tags" in r.inputs]
    assert len(tagged) == 6  # resource group, storage account, registry, two identities, runner group
    for r in tagged:
        assert r.inputs["tags"] == {"mayfly:target": "azure-dev", "team": "data"}, r.name


def test_runtime_images_go_where_the_aci_provider_runs_them(build_azure: Build) -> None:
    settings = AciSettings.model_validate(build_azure("dev", args()).settings)
    assert settings.image_prefix is not None
    local = ["mayfly/runtime-python-3.11:1", "mayfly/runtime-node-20:2"]
    pushed = destinations(local, settings.image_prefix)
    assert pushed == [
        ("mayfly/runtime-python-3.11:1", "mayflydev0a1b2c3d.azurecr.io/mayfly/runtime-python-3.11", "1"),
        ("mayfly/runtime-node-20:2", "mayflydev0a1b2c3d.azurecr.io/mayfly/runtime-node-20", "2"),
    ]
    # Exactly the image a task's container group names.
    assert [f"{repository}:{tag}" for _, repository, tag in pushed] == [image_of(i, settings) for i in local]
