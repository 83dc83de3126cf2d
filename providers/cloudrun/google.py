"""Google Cloud client access: lazy imports, and Google API errors as Mayfly errors.

The Google libraries (``google-cloud-pubsub``, ``-storage``, ``-run``, ``-logging``) are
optional dependencies (``pip install "mayfly-tasks[gcp]"``); nothing imports them until a
client is needed. Every Google exception (google-api-core, google-auth, the storage
library's HTTP layer) is translated at this boundary by :func:`translate`, so callers only
ever see :class:`~mayfly.core.errors.MayflyError` subclasses. The Pub/Sub clients honour
``PUBSUB_EMULATOR_HOST`` (the emulator needs no credentials).
"""

from __future__ import annotations

import importlib
import os
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

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

INSTALL_HINT = 'Google Cloud support needs google-cloud-pubsub: pip install "mayfly-tasks[gcp]"'


def pubsub_module() -> Any:
    """Import ``google.cloud.pubsub_v1``, or raise MissingDependency with the install command."""
    try:
        pubsub_v1 = importlib.import_module("google.cloud.pubsub_v1")
    except ImportError:
        raise MissingDependency(INSTALL_HINT) from None
    return pubsub_v1


class Clients:
    """A Pub/Sub publisher and subscriber, created on first use (thread-safe; the clients are too)."""

    def __init__(self, emulator_host: str | None = None, credentials: Any = None) -> None:
        #: ``host:port`` of a Pub/Sub emulator (else ``PUBSUB_EMULATOR_HOST``, else Google).
        self.emulator_host = emulator_host
        #: Credentials for Google, or a callable making them on first use (None: Application Default
        #: Credentials); unused with an emulator.
        self.credentials = credentials
        self._lock = threading.Lock()
        self._publisher: Any = None
        self._publisher_api: Any = None
        self._subscriber: Any = None

    @property
    def publisher(self) -> Any:
        """The ``PublisherClient`` (topics and subscriptions of a topic)."""
        with self._lock:
            if self._publisher is None:
                pubsub_v1 = pubsub_module()
                with translate("creating a Pub/Sub publisher client"):
                    self._publisher = pubsub_v1.PublisherClient(**self._options("publisher"))
                with warnings.catch_warnings():  # 'api' is deprecated, but the only unbatched Publish
                    warnings.simplefilter("ignore", DeprecationWarning)
                    self._publisher_api = self._publisher.api
            return self._publisher

    @property
    def publisher_api(self) -> Any:
        """The GAPIC publisher: ``publish`` there is one synchronous Publish call (no client-side batching)."""
        self.publisher  # noqa: B018 - creates both
        return self._publisher_api

    @property
    def subscriber(self) -> Any:
        """The ``SubscriberClient``."""
        with self._lock:
            if self._subscriber is None:
                pubsub_v1 = pubsub_module()
                with translate("creating a Pub/Sub subscriber client"):
                    self._subscriber = pubsub_v1.SubscriberClient(**self._options("subscriber"))
            return self._subscriber

    def _options(self, kind: str) -> dict[str, Any]:
        options = _emulator_transport(kind, self.emulator_host)
        if not options and self.credentials is not None:
            if callable(self.credentials) and not hasattr(self.credentials, "before_request"):
                self.credentials = self.credentials()
            options["credentials"] = self.credentials
        return options

    def close(self) -> None:
        """Close both clients' channels (new ones are opened if the clients are used again)."""
        with self._lock:
            if self._subscriber is not None:
                self._subscriber.close()
                self._subscriber = None
            if self._publisher is not None:
                self._publisher.transport.close()
                self._publisher = self._publisher_api = None


def _emulator_transport(kind: str, emulator_host: str | None = None) -> dict[str, Any]:
    """With an emulator (``emulator_host`` or ``PUBSUB_EMULATOR_HOST``), a gRPC transport to it without the 4 MiB
    receive limit.

    On Google the client's own channel allows messages of any size; on the emulator it opens
    a plain channel with gRPC's default 4 MiB receive limit, too small for a 9 MiB message.
    """
    host = emulator_host or os.environ.get("PUBSUB_EMULATOR_HOST")
    if not host:
        return {}
    import grpc

    channel = grpc.insecure_channel(
        host, options=[("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
    )
    if kind == "publisher":
        from google.pubsub_v1.services.publisher.transports.grpc import PublisherGrpcTransport

        return {"transport": PublisherGrpcTransport(channel=channel)}
    from google.pubsub_v1.services.subscriber.transports.grpc import SubscriberGrpcTransport

    return {"transport": SubscriberGrpcTransport(channel=channel)}


def as_mayfly_error(exc: BaseException, doing: str) -> MayflyError:
    """Translate a google-api-core / google-auth / Pub/Sub exception into one clear Mayfly error."""
    if isinstance(exc, MayflyError):
        return exc
    from google.api_core import exceptions as gx
    from google.auth import exceptions as ax

    if isinstance(exc, ax.DefaultCredentialsError):
        return CredentialsMissing(
            f"{doing}: no Google Cloud credentials found (set GOOGLE_APPLICATION_CREDENTIALS, run "
            "'gcloud auth application-default login', or run where a service account is attached)"
        )
    if isinstance(exc, ax.GoogleAuthError):
        return CredentialsMissing(f"{doing}: Google Cloud credentials refused ({exc})")
    if isinstance(exc, gx.PermissionDenied | gx.Unauthenticated | gx.Unauthorized | gx.Forbidden):
        return AccessDenied(f"{doing}: access denied ({exc.message})")
    if isinstance(exc, gx.NotFound):
        return NotFound(f"{doing}: not found ({exc.message})")
    if isinstance(exc, gx.ResourceExhausted | gx.TooManyRequests):
        return Throttled(f"{doing}: throttled by Google Cloud ({exc.message})")
    if isinstance(exc, gx.InvalidArgument | gx.FailedPrecondition | gx.OutOfRange | gx.BadRequest):
        return InvalidInput(f"{doing}: refused by Google Cloud ({exc.message})")
    if isinstance(exc, gx.GoogleAPICallError):
        return Unavailable(f"{doing}: {exc.message}")
    if isinstance(exc, gx.RetryError):
        return Unavailable(f"{doing}: cannot reach Google Cloud ({exc.message})")
    return Unavailable(f"{doing}: {exc}")


@contextmanager
def translate(doing: str) -> Iterator[None]:
    """Run Google calls; any Google exception leaves as a MayflyError naming what was being done."""
    try:
        yield
    except MayflyError:
        raise
    except Exception as exc:
        from google.api_core import exceptions as gx
        from google.auth import exceptions as ax

        if isinstance(exc, gx.GoogleAPIError | ax.GoogleAuthError):
            raise as_mayfly_error(exc, doing) from exc
        if _is_transport_error(exc):
            raise Unavailable(f"{doing}: cannot reach Google Cloud ({exc})") from exc
        raise


def _is_transport_error(exc: BaseException) -> bool:
    """A connection or HTTP-layer failure of the REST clients (requests, the storage library's media layer)."""
    import requests

    if isinstance(exc, requests.exceptions.RequestException):
        return True
    try:
        from google.resumable_media import common
    except ImportError:
        return False
    return isinstance(exc, common.InvalidResponse | common.DataCorruption)
