"""A local Azure for Mayfly: an ARM endpoint for container groups that runs real containers, plus Azurite.

``mayfly emulator azure`` (or :class:`ArmEmulator` from Python) serves what an
``aci`` target talks to:

- **Azure Resource Manager for ``Microsoft.ContainerInstance/containerGroups``**
  (api-version 2023-05-01, what ``azure-mgmt-containerinstance`` 10.x speaks),
  implemented here from ACI's REST reference (:mod:`.api`): PUT (create; on an
  existing name an update that replaces the container when it changed), GET
  with the instance view, PATCH of tags, DELETE, POST stop, start and restart,
  list by resource group and by subscription (without instance views, as ARM
  lists), a container's logs (``tail``, ``timestamps``), and ARM's long-running
  operation headers and status endpoints, so ``begin_create_or_update(...)
  .result()``, ``begin_delete``, ``begin_start`` and ``begin_restart`` work
  with the real client. Names, the body and cpu/memory requests are checked as
  ACI checks them (:mod:`.names`, :mod:`.spec`), errors are ARM's
  ``{"error": {"code", "message"}}``. Each group's container really runs in the
  local Docker engine (:mod:`.containers`): image, command (replacing the
  image's entrypoint, as in ACI), environment variables (``secureValue`` ones
  too; they are never returned), cpu and memory as hard limits (exceeding the
  memory is a real OOM kill: exit code 137, detailStatus ``OOMKilled``), the
  restart policy, exit codes, states Waiting / Running / Terminated with their
  times, and events. Which local image an image reference runs is explained in
  :mod:`.images`: nothing is pulled, a missing image is ACI's pull failure.
- **Azurite** (queues and blobs), started by ``mayfly emulator azure`` from the
  project-local npm install (:mod:`.azurite`).

Use :attr:`ArmEmulator.endpoint_url` (``http://172.17.0.1:PORT`` on Linux: the
Docker bridge's gateway, see :mod:`mayfly.providers.emulation.network`) as the
client's ``base_url`` and a target's ``arm_endpoint``. Any bearer token is
accepted, but one must be sent; over plain HTTP ``azure-core`` refuses to send
one, so give the client an ``authentication_policy`` that sets the header.

What it does not do
    No Azure AD, RBAC or policy: any token is accepted, identities are recorded
    and echoed (with made-up principal and client ids), never used. Every
    resource group of every subscription exists; locations are not checked
    (any name is a region). One Linux container per group; init containers,
    volumes, ports, IP addresses, DNS labels, subnets, GPUs, confidential and
    spot SKUs, exec and attach are accepted-and-ignored or refused. No quotas,
    capacity errors or throttling (429) unless a test injects them
    (:mod:`.faults`). Image pulls: none, images must exist locally. A stopped
    group keeps its last instance view (ACI drops it). State is in memory and
    lost on exit.
"""

from mayfly.providers.aci.emulator.server import ArmEmulator

__all__ = ["ArmEmulator"]
