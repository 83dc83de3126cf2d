"""Azure SDK access for an ``aci`` target: lazy imports, credentials from its settings, errors as Mayfly errors.

The Azure SDKs are an optional dependency (``pip install "mayfly-tasks[azure]"``); nothing
imports them until a client is needed, and a missing one is one
:class:`~mayfly.core.errors.MissingDependency` line with the install command. Every Azure
exception is translated at this boundary (:func:`translate`), so callers only ever see
:class:`~mayfly.core.errors.MayflyError` subclasses:

========================================================  ==========================
Azure                                                     Mayfly
========================================================  ==========================
no credential found / token refused (azure-identity)      ``credentials_missing``
HTTP 401, 403 (AuthorizationFailure, AuthenticationFailed) ``access_denied``
HTTP 404 (QueueNotFound, ContainerNotFound, ...)           ``not_found``
HTTP 429, 503 ``ServerBusy``                               ``throttled``
HTTP 400, 413 (bad request, body too large)                ``invalid_input``
other HTTP errors, 503, connection failures, timeouts     ``unavailable``
========================================================  ==========================

Credentials (:func:`credential`): the storage account key when the settings carry one (only
the emulator: Azurite's well-known key); else ``ManagedIdentityCredential`` with the
runner's ``runner_client_id``; else ``DefaultAzureCredential`` (environment, workload
identity, managed identity, Azure CLI). Tests always pass the key, so no credential ever
probes a metadata server there.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from mayfly.core.errors import (
    AccessDenied,
    CredentialsMissing,
    InvalidInput,
    MayflyError,
    MissingDependency,
    NotFound,
    Throttled,
    Unavailable,
)

if TYPE_CHECKING:
    from mayfly.providers.aci.settings import AciSettings

INSTALL_HINT = (
    'Azure support needs azure-storage-queue, azure-storage-blob and azure-identity: pip install "mayfly-tasks[azure]"'
)
#: Retries of a failed storage call (connection errors, 5xx, throttling), backing off 1, 3, 5 s (± 1 s).
#: The SDKs' default waits 15, 18 and 24 s; and credential failures are not retried at all.
RETRY_TOTAL = 3
RETRY_INITIAL_BACKOFF = 1
RETRY_INCREMENT_BASE = 2
RETRY_JITTER = 1
#: Seconds to connect and to wait for a response, per HTTP request.
CONNECTION_TIMEOUT = 20
READ_TIMEOUT = 60


def _import(module: str) -> Any:
    """Import an Azure SDK module, or raise MissingDependency with the install command."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependency(INSTALL_HINT) from None


def queue_module() -> Any:
    """``azure.storage.queue``."""
    return _import("azure.storage.queue")


def blob_module() -> Any:
    """``azure.storage.blob``."""
    return _import("azure.storage.blob")


def identity_module() -> Any:
    """``azure.identity``."""
    return _import("azure.identity")


def account_url(settings: AciSettings, service: str) -> str:
    """The queue or blob service URL of the target's storage account (the emulator's when set)."""
    override = settings.queue_endpoint if service == "queue" else settings.blob_endpoint
    if override:
        return override.rstrip("/")
    return f"https://{settings.storage_account}.{service}.core.windows.net"


def credential(settings: AciSettings) -> Any:
    """The credential of the target's storage calls (see the module docstring)."""
    if settings.account_key:
        credentials = _import("azure.core.credentials")
        return credentials.AzureNamedKeyCredential(settings.storage_account, settings.account_key)
    identity = identity_module()
    with translate("creating the Azure credential"):
        if settings.runner_client_id:
            return _Checked(identity.ManagedIdentityCredential(client_id=settings.runner_client_id))
        return _Checked(identity.DefaultAzureCredential(exclude_interactive_browser_credential=True))


class _Checked:
    """A token credential whose every failure is a ClientAuthenticationError.

    azure-identity lets some errors through as they are (a workload identity's missing token
    file is a bare FileNotFoundError); wrapped, they become ``credentials_missing`` like the rest.
    """

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        from azure.core.exceptions import AzureError, ClientAuthenticationError

        try:
            return getattr(self._inner, method)(*args, **kwargs)
        except AzureError:
            raise
        except Exception as exc:
            raise ClientAuthenticationError(message=f"{type(self._inner).__name__}: {exc}") from exc

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        """The inner credential's token (``TokenCredential``)."""
        return self._call("get_token", *scopes, **kwargs)

    def get_token_info(self, *scopes: str, **kwargs: Any) -> Any:
        """The inner credential's token (``SupportsTokenInfo``)."""
        return self._call("get_token_info", *scopes, **kwargs)

    def close(self) -> None:
        """Close the inner credential's transport."""
        self._inner.close()


@functools.cache
def _retry_class(base: type[Any]) -> type[Any]:
    """A storage SDK's ExponentialRetry that does not retry a credential that found no token."""
    from azure.core.exceptions import ClientAuthenticationError

    def increment(self: Any, settings: Any, request: Any, response: Any = None, error: Any = None) -> bool:
        if isinstance(error, ClientAuthenticationError) and getattr(error, "response", None) is None:
            return False  # no credential: asking again changes nothing
        return bool(base.increment(self, settings, request, response=response, error=error))

    return type(f"Mayfly{base.__name__}", (base,), {"increment": increment})


def client_options(module: Any) -> dict[str, Any]:
    """Keyword arguments every client of a storage SDK ``module`` gets: short retries and timeouts."""
    policy = _retry_class(module.ExponentialRetry)(
        initial_backoff=RETRY_INITIAL_BACKOFF,
        increment_base=RETRY_INCREMENT_BASE,
        retry_total=RETRY_TOTAL,
        random_jitter_range=RETRY_JITTER,
    )
    return {"retry_policy": policy, "connection_timeout": CONNECTION_TIMEOUT, "read_timeout": READ_TIMEOUT}


class StorageClients:
    """The queue and blob service clients of one target, created on first use (thread-safe; the clients are too)."""

    def __init__(self, settings: AciSettings, *, credential: Any = None) -> None:
        """``credential``: a token credential to use instead of the one the settings imply (tests)."""
        self.settings = settings
        self._lock = threading.Lock()
        self._credential: Any = credential
        self._queue: Any = None
        self._blob: Any = None

    def _cred(self) -> Any:
        if self._credential is None:
            self._credential = credential(self.settings)
        return self._credential

    @property
    def queue_service(self) -> Any:
        """A ``QueueServiceClient`` of the storage account."""
        with self._lock:
            if self._queue is None:
                module = queue_module()
                with translate("creating the Azure Storage queue client"):
                    self._queue = module.QueueServiceClient(
                        account_url(self.settings, "queue"), credential=self._cred(), **client_options(module)
                    )
            return self._queue

    @property
    def blob_service(self) -> Any:
        """A ``BlobServiceClient`` of the storage account."""
        with self._lock:
            if self._blob is None:
                module = blob_module()
                with translate("creating the Azure Storage blob client"):
                    self._blob = module.BlobServiceClient(
                        account_url(self.settings, "blob"), credential=self._cred(), **client_options(module)
                    )
            return self._blob

    def close(self) -> None:
        """Close both clients' connections (new ones open if they are used again)."""
        with self._lock:
            for client in (self._queue, self._blob):
                if client is not None:
                    client.close()
            self._queue = self._blob = None


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of an Azure error, None when there was no response."""
    status = getattr(exc, "status_code", None)
    return int(status) if isinstance(status, int) else None


def error_code(exc: BaseException) -> str:
    """Azure's error code (``x-ms-error-code``: QueueNotFound, PopReceiptMismatch, ...), or ''."""
    code = getattr(exc, "error_code", None)
    value = getattr(code, "value", code)
    if value:
        return str(value)
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    return str(headers.get("x-ms-error-code", ""))


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def as_mayfly_error(exc: BaseException, doing: str) -> MayflyError:
    """Translate an azure-core / azure-identity / storage exception into one clear Mayfly error."""
    if isinstance(exc, MayflyError):
        return exc
    from azure.core import exceptions as ax

    status = status_of(exc)
    code = error_code(exc)
    detail = f"{code}: {_first_line(exc)}" if code else _first_line(exc)
    if isinstance(exc, ax.ClientAuthenticationError) and status is None:
        return CredentialsMissing(
            f"{doing}: no usable Azure credentials ({_first_line(exc)}); run where the runner's managed "
            "identity is attached, set AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET, or 'az login'"
        )
    if status in (401, 403):
        return AccessDenied(f"{doing}: access denied by Azure ({status}, {detail})")
    if status == 404:
        return NotFound(f"{doing}: not found ({detail})")
    if status == 429 or (status == 503 and code == "ServerBusy"):
        return Throttled(f"{doing}: throttled by Azure ({status}, {detail})")
    if status in (400, 413):
        return InvalidInput(f"{doing}: refused by Azure ({status}, {detail})")
    if status is not None:
        return Unavailable(f"{doing}: Azure answered {status} ({detail})")
    if isinstance(exc, ax.ServiceRequestError | ax.ServiceResponseError):
        return Unavailable(f"{doing}: cannot reach Azure ({_first_line(exc)})")
    return Unavailable(f"{doing}: {_first_line(exc)}")


@contextmanager
def translate(doing: str) -> Iterator[None]:
    """Run Azure calls; any Azure exception leaves as a MayflyError naming what was being done."""
    try:
        yield
    except MayflyError:
        raise
    except Exception as exc:
        from azure.core.exceptions import AzureError

        if isinstance(exc, AzureError):
            raise as_mayfly_error(exc, doing) from exc
        raise
