"""Azure Resource Manager access for the ``aci`` provider: container groups as ARM's JSON, errors as data.

Every call goes through ``azure-mgmt-containerinstance`` (api-version 2023-05-01),
imported lazily so ``mayfly`` starts without the ``azure`` extra. Results are ARM's
own camelCase JSON (``cls`` hands back the raw response), which is what the
provider's diagnosis reads and what the tests record.

Credentials: ``runner_client_id`` set means the runner's user-assigned managed
identity (``ManagedIdentityCredential``); unset means ``DefaultAzureCredential``
(environment, workload identity, Azure CLI; no interactive browser). Over plain HTTP
(``arm_endpoint`` ``http://...``: the local emulator) azure-core refuses to send a
bearer token, so the client gets its own authentication policy, which sets a fixed
header; no credential is asked for at all.

Failures: 404 on a read is "absent" (``None``); an :class:`ArmError` carries the
HTTP status, ARM's error code and message of a refusal for the provider to
diagnose; transport failures and bad credentials become ``Unavailable`` and
``CredentialsMissing``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from mayfly.core.errors import (
    AccessDenied,
    CredentialsMissing,
    MayflyError,
    MissingDependency,
    NotFound,
    Throttled,
    Unavailable,
)
from mayfly.providers.aci.settings import AciSettings

if TYPE_CHECKING:
    from azure.mgmt.containerinstance import ContainerInstanceManagementClient

API_VERSION = "2023-05-01"
#: Seconds a single ARM request may take to connect / to answer.
CONNECT_TIMEOUT = 10
READ_TIMEOUT = 60


class ArmError(Exception):
    """ARM refused a request: its HTTP status, error code and message, for the provider to diagnose."""

    def __init__(self, status: int, code: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


def _raw(pipeline_response: Any, _deserialized: Any, _headers: Any) -> Any:
    """``cls`` for the SDK's operations: ARM's JSON as it came."""
    response = pipeline_response.http_response
    text = response.text() if callable(getattr(response, "text", None)) else ""
    return json.loads(text) if text else {}


def _error(exc: Any) -> ArmError:
    """An ArmError from an azure-core HttpResponseError."""
    status = int(getattr(exc, "status_code", None) or 0)
    code, message = "", str(getattr(exc, "message", "") or exc)
    err = getattr(exc, "error", None)
    if err is not None:
        code = str(getattr(err, "code", "") or "")
        message = str(getattr(err, "message", "") or message)
    retry_after = None
    response = getattr(exc, "response", None)
    if response is not None:
        try:
            retry_after = float(response.headers.get("Retry-After") or "")
        except (TypeError, ValueError, AttributeError):
            retry_after = None
        if not code:
            try:
                body = json.loads(response.text())
                code = str((body.get("error") or {}).get("code") or "")
                message = str((body.get("error") or {}).get("message") or message)
            except (ValueError, AttributeError, TypeError):
                pass
    return ArmError(status, code, message.splitlines()[0] if message else "", retry_after)


@contextmanager
def translate(doing: str) -> Iterator[None]:
    """Azure SDK failures of a call as ArmError (refusals) or MayflyError (transport, credentials)."""
    from azure.core import exceptions as ax

    try:
        yield
    except ax.ClientAuthenticationError as exc:
        raise CredentialsMissing(f"Azure rejected the runner's credentials while {doing}: {_error(exc)}") from exc
    except ax.HttpResponseError as exc:
        raise _error(exc) from exc
    except ax.ServiceRequestError as exc:
        raise Unavailable(f"cannot reach Azure Resource Manager while {doing}: {exc}") from exc
    except ax.AzureError as exc:
        raise Unavailable(f"Azure failed while {doing}: {exc}") from exc
    except ImportError as exc:  # pragma: no cover - only without the extra
        raise MissingDependency("the aci provider needs the azure extra: pip install 'mayfly-tasks[azure]'") from exc
    except Exception as exc:
        # azure-identity raises its own CredentialUnavailableError (a ClientAuthenticationError subclass
        # above) and ValueErrors for bad endpoints; anything else from a request is the service's failure.
        if type(exc).__module__.startswith("azure"):
            raise Unavailable(f"Azure failed while {doing}: {exc}") from exc
        raise


def as_mayfly(exc: ArmError, doing: str) -> MayflyError:
    """The MayflyError of a refusal outside a create: denied, throttled, missing, or unavailable."""
    what = f"{exc.code or exc.status}: {exc.message}"
    if exc.status == 403 or exc.code in ("AuthorizationFailed", "LinkedAuthorizationFailed"):
        return AccessDenied(f"access denied while {doing} ({what})")
    if exc.status == 429:
        return Throttled(f"Azure throttled the runner while {doing} ({what})")
    if exc.status == 404:
        return NotFound(f"not found while {doing} ({what})")
    return Unavailable(f"Azure refused {doing} ({what})")


def _credential(settings: AciSettings) -> Any:
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    if settings.runner_client_id:
        return ManagedIdentityCredential(client_id=settings.runner_client_id)
    return DefaultAzureCredential(exclude_interactive_browser_credential=True)


def _plain_http_policy() -> Any:
    """An authentication policy for the emulator over http: a fixed bearer header, no token service."""
    from azure.core.pipeline.policies import SansIOHTTPPolicy

    class EmulatorAuth(SansIOHTTPPolicy):  # type: ignore[type-arg]
        def on_request(self, request: Any) -> None:
            request.http_request.headers["Authorization"] = "Bearer mayfly-emulator"

    return EmulatorAuth()


class _NoCredential:
    """Stands in for a credential where the authentication policy needs none (the emulator)."""

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:  # pragma: no cover - never called
        raise CredentialsMissing("no credential is used over plain http")


class Arm:
    """The container group operations of one target's resource group, on ARM."""

    def __init__(self, settings: AciSettings, *, transport: Any = None) -> None:
        """``transport``: an azure-core HttpTransport instead of the default one (recorded responses in tests)."""
        self.settings = settings
        self._transport = transport
        self._client: ContainerInstanceManagementClient | None = None

    @property
    def client(self) -> ContainerInstanceManagementClient:
        """The SDK client, built on first use."""
        if self._client is None:
            with translate("building the Azure client"):
                from azure.mgmt.containerinstance import ContainerInstanceManagementClient

                s = self.settings
                kwargs: dict[str, Any] = {
                    "api_version": API_VERSION,
                    "connection_timeout": CONNECT_TIMEOUT,
                    "read_timeout": READ_TIMEOUT,
                    "retry_total": 3,
                }
                credential: Any
                if s.arm_endpoint and s.arm_endpoint.startswith("http://"):
                    credential = _NoCredential()
                    kwargs["authentication_policy"] = _plain_http_policy()
                    kwargs["polling_interval"] = 0
                else:
                    credential = _credential(s)
                if self._transport is not None:
                    kwargs["transport"] = self._transport
                if s.arm_endpoint:
                    kwargs["base_url"] = s.arm_endpoint.rstrip("/")
                self._client = ContainerInstanceManagementClient(credential, s.subscription_id, **kwargs)
        return self._client

    def _absent_is_none(self, call: Callable[[], Any], doing: str) -> Any:
        """``call()``; None when ARM answers 404, other refusals as MayflyError."""
        try:
            with translate(doing):
                return call()
        except ArmError as exc:
            if exc.status == 404:
                return None
            raise as_mayfly(exc, doing) from exc

    # ------------------------------------------------------------ container groups

    def get(self, name: str) -> dict[str, Any] | None:
        """The group's JSON with its instance view, or None when it does not exist."""
        rg = self.settings.resource_group
        found: dict[str, Any] | None = self._absent_is_none(
            lambda: self.client.container_groups.get(rg, name, cls=_raw), f"reading container group {name}"
        )
        return found

    def create(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """PUT a new group, only if none of that name exists (``If-None-Match: *``); no retries, no polling.

        Raises:
            ArmError: ARM refused (412 or 409: the group exists; 429; ServiceUnavailable; ...).
        """
        rg = self.settings.resource_group
        content = json.dumps(body).encode()  # bytes: the SDK sends them as they are
        with translate(f"creating container group {name}"):
            poller = self.client.container_groups.begin_create_or_update(  # type: ignore[call-overload]
                rg,
                name,
                content,
                content_type="application/json",
                headers={"If-None-Match": "*"},
                polling=False,
                retry_total=0,
                cls=_raw,
            )
            created: dict[str, Any] = poller.result()  # cls=_raw: ARM's JSON
        return created

    def delete(self, name: str) -> None:
        """Start deleting the group (ARM finishes asynchronously); an absent group is fine."""
        rg = self.settings.resource_group
        self._absent_is_none(
            lambda: self.client.container_groups.begin_delete(rg, name, polling=False),
            f"deleting container group {name}",
        )

    def stop(self, name: str) -> bool:
        """Stop the group's containers; False when the group does not exist."""
        rg = self.settings.resource_group
        done = self._absent_is_none(
            lambda: self.client.container_groups.stop(rg, name) or True, f"stopping container group {name}"
        )
        return bool(done)

    def list(self) -> list[dict[str, Any]]:
        """Every group of the resource group (without instance views: ARM's list omits them)."""
        rg = self.settings.resource_group
        doing = f"listing the container groups of resource group {rg}"
        try:
            with translate(doing):
                pages = self.client.container_groups.list_by_resource_group(rg)
                return [dict(g.serialize(keep_readonly=True)) for g in pages]
        except ArmError as exc:
            raise as_mayfly(exc, doing) from exc

    def logs(self, name: str, container: str) -> str | None:
        """The container's whole log as ACI keeps it, or None when the group (or its log) is gone."""
        rg = self.settings.resource_group
        found = self._absent_is_none(
            lambda: self.client.containers.list_logs(rg, name, container), f"reading the log of {name}"
        )
        if found is None:
            return None
        return str(getattr(found, "content", "") or "")

    def close(self) -> None:
        """Close the SDK client's connections."""
        if self._client is not None:
            self._client.close()
