"""Azure RBAC roles of an ``aci`` target: built-in role ids and the one custom role (plain data, no Pulumi).

Built-in role definition ids are the same GUID in every tenant. Source of each id:
"Azure built-in roles" (https://learn.microsoft.com/azure/role-based-access-control/built-in-roles),
the pages for the Storage, Containers and Identity categories, which print each role's JSON
with its ``"name"`` (the GUID below).

Who gets what, each scoped to the one resource it is about (never the subscription):

============================  =====================================  ==================================
identity                      role                                   scope
============================  =====================================  ==================================
pull (task container groups)  AcrPull                                the registry
runner                        Storage Queue Data Contributor         the account's queue service
runner                        Storage Blob Data Contributor          the blob container
runner                        Storage Blob Delegator                 the storage account
runner                        Mayfly container groups (custom)       the resource group
runner                        Managed Identity Operator              the pull identity
============================  =====================================  ==================================

Storage Blob Delegator sits on the account because Get User Delegation Key is an account-level
operation: "the ``generateUserDelegationKey`` action must be scoped at the level of the storage
account, the resource group, or the subscription" ("Create a user delegation SAS",
https://learn.microsoft.com/rest/api/storageservices/create-user-delegation-sas). It grants
that one action and no data access.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class BuiltInRole:
    """A built-in role: its name and definition GUID."""

    name: str
    guid: str

    def definition_id(self, subscription: str) -> str:
        """The role definition's resource id as a role assignment names it."""
        return f"/subscriptions/{subscription}/providers/Microsoft.Authorization/roleDefinitions/{self.guid}"


#: Containers category: pull artifacts from a container registry.
ACR_PULL = BuiltInRole("AcrPull", "7f951dda-4ed3-4680-a7ca-43fe172d538d")
#: Storage category: read, write and delete queues and queue messages.
STORAGE_QUEUE_DATA_CONTRIBUTOR = BuiltInRole("Storage Queue Data Contributor", "974c5e8b-45b9-4653-ba55-5f855dd0fb88")
#: Storage category: read, write and delete blob containers and blobs.
STORAGE_BLOB_DATA_CONTRIBUTOR = BuiltInRole("Storage Blob Data Contributor", "ba92f5b4-2d11-453d-a403-e96b0029c9fe")
#: Storage category: get a user delegation key (to sign user-delegation SAS URLs), nothing else.
STORAGE_BLOB_DELEGATOR = BuiltInRole("Storage Blob Delegator", "db58b8e5-c6ad-4a2a-8342-4190687cbf4a")
#: Identity category: read and assign a user-assigned identity (to put it on a container group).
MANAGED_IDENTITY_OPERATOR = BuiltInRole("Managed Identity Operator", "f1a07417-d97a-45cb-824c-7a7467783830")

#: The custom role of the runner on the resource group: exactly what the ``aci`` provider calls.
#: Action names from "Azure permissions for Containers", Microsoft.ContainerInstance
#: (https://learn.microsoft.com/azure/role-based-access-control/permissions/containers).
#: No built-in role is this narrow: Contributor covers every resource type of the group.
CONTAINER_GROUP_ACTIONS = (
    "Microsoft.ContainerInstance/containerGroups/read",  # state and instance view; list by tags (reattach)
    "Microsoft.ContainerInstance/containerGroups/write",  # create a task's group
    "Microsoft.ContainerInstance/containerGroups/delete",  # cancel and cleanup
    "Microsoft.ContainerInstance/containerGroups/stop/action",  # cancel: stop before delete
    "Microsoft.ContainerInstance/containerGroups/containers/logs/read",  # list_logs
    "Microsoft.ContainerInstance/containerGroups/operationResults/read",  # long-running operation status
)

#: Fixed namespace of the custom role's GUID (a role definition's name must be a GUID).
_ROLE_NAMESPACE = uuid.UUID("3f1d6c1e-5a0b-4a44-9a51-6d0f0c9a7c11")


def container_group_role_guid(subscription: str, resource_group: str) -> str:
    """The custom role's definition GUID: stable per resource group, so an update keeps the same role."""
    return str(uuid.uuid5(_ROLE_NAMESPACE, f"{subscription.lower()}/{resource_group.lower()}"))


def container_group_role_name(subscription: str, resource_group: str) -> str:
    """The custom role's display name: unique in the tenant, as Azure requires of custom role names."""
    return f"Mayfly container groups ({subscription[:8]}/{resource_group})"
