"""Errors a user can cause, each with a stable code.

Every error that reaches the CLI or the HTTP API is a :class:`MayflyError`. Its
``code`` is stable (scripts and API clients match on it), its message is one line
a human can act on, and its ``exit_code`` is what the CLI exits with. Anything
that is not a ``MayflyError`` is a bug and is allowed to show a traceback.

SDK exceptions (docker, botocore, ...) never cross a provider's boundary: the
provider translates them into one of these classes.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, ClassVar


class ExitCode(IntEnum):
    """Exit codes of the ``mayfly`` command."""

    #: Everything worked.
    OK = 0
    #: The task ran and failed, or an unexpected internal error happened.
    FAILED = 1
    #: The command line or an input (payload, zip, cron, ...) was invalid.
    USAGE = 2
    #: A named object (code, task, target, runtime, ...) does not exist.
    NOT_FOUND = 3
    #: The request conflicts with the object's state (e.g. cancel a finished task).
    CONFLICT = 4
    #: Something Mayfly depends on is unavailable: engine down, credentials missing.
    UNAVAILABLE = 5
    #: A provider or feature is not installed or not supported.
    UNSUPPORTED = 6
    #: The task ran past its timeout.
    TIMEOUT = 124
    #: The task was cancelled.
    CANCELLED = 130


class MayflyError(Exception):
    """Base class: one clear line, a stable ``code`` and an exit code."""

    code: ClassVar[str] = "error"
    exit_code: ClassVar[ExitCode] = ExitCode.FAILED
    #: HTTP status the API answers with.
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """The JSON body the API and ``--json`` output use."""
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


# ---------------------------------------------------------------- invalid input


class InvalidInput(MayflyError):
    """An input is malformed; nothing was changed."""

    code = "invalid_input"
    exit_code = ExitCode.USAGE
    http_status = 400


class InvalidPayload(InvalidInput):
    code = "invalid_payload"


class PayloadTooLarge(InvalidInput):
    code = "payload_too_large"
    http_status = 413


class InvalidArchive(InvalidInput):
    """A code package zip was rejected (zip slip, symlink, bomb, corrupt, ...)."""

    code = "invalid_archive"


class UploadTooLarge(InvalidInput):
    code = "upload_too_large"
    http_status = 413


class InvalidSettings(InvalidInput):
    code = "invalid_settings"


class TargetUnsupported(InvalidInput):
    """The target's provider cannot run what a code, task or schedule asks (admission); nothing was stored."""

    code = "target_unsupported"


# ---------------------------------------------------------------- not found


class NotFound(MayflyError):
    code = "not_found"
    exit_code = ExitCode.NOT_FOUND
    http_status = 404


class CodeNotFound(NotFound):
    code = "code_not_found"


class RevisionNotFound(NotFound):
    code = "revision_not_found"


class TaskNotFound(NotFound):
    code = "task_not_found"


class TargetNotFound(NotFound):
    code = "target_not_found"


class RuntimeNotFound(NotFound):
    code = "runtime_not_found"


class ProviderNotFound(NotFound):
    code = "provider_not_found"


class ImageNotFound(NotFound):
    code = "image_not_found"


class TaskContainerNotFound(NotFound):
    """The provider has no container for this handle (already removed, or never started)."""

    code = "task_container_not_found"


# ---------------------------------------------------------------- conflicts


class Conflict(MayflyError):
    code = "conflict"
    exit_code = ExitCode.CONFLICT
    http_status = 409


class TaskAlreadyFinished(Conflict):
    code = "task_already_finished"


class TaskNotFinished(Conflict):
    code = "task_not_finished"


class BudgetExceeded(Conflict):
    """Queueing more would take a project past its daily or monthly budget; nothing was queued."""

    code = "budget_exceeded"
    http_status = 402


class AlreadyRunning(Conflict):
    """A second ``mayfly server`` (or a second runner for one target) on a home that already has one."""

    code = "already_running"


# ---------------------------------------------------------------- unavailable


class Unavailable(MayflyError):
    code = "unavailable"
    exit_code = ExitCode.UNAVAILABLE
    http_status = 503


class EngineNotRunning(Unavailable):
    code = "engine_not_running"


class CredentialsMissing(Unavailable):
    code = "credentials_missing"


class AccessDenied(CredentialsMissing):
    """A cloud's credentials are valid but not allowed to do this (or were refused)."""

    code = "access_denied"


class Throttled(Unavailable):
    """A cloud throttled the call or a quota ran out (retry later)."""

    code = "throttled"


class StoreUnavailable(Unavailable):
    """The store, the embedded queues or the blob/log store cannot be written now.

    A write lock held past ``MAYFLY_STORE_BUSY_TIMEOUT``, a full disk, a read-only file
    system: the environment, not the request. Nothing was changed; the same request may
    work later, so the API answers 503 with ``Retry-After`` (``details["retry_after"]``).
    """

    code = "store_unavailable"
    #: Seconds a client is told to wait before it retries.
    RETRY_AFTER: ClassVar[int] = 5

    def __init__(self, message: str, **details: Any) -> None:
        details.setdefault("retry_after", self.RETRY_AFTER)
        super().__init__(message, **details)


class SchemaMismatch(Unavailable):
    """The store's schema is not the one this Mayfly was built for (``mayfly db status`` shows both)."""

    code = "schema_mismatch"


class SchemaBehind(SchemaMismatch):
    """The store's schema is older than this Mayfly's: ``mayfly db upgrade`` brings it forward."""

    code = "schema_behind"


class SchemaAhead(SchemaMismatch):
    """The store's schema is newer than this Mayfly's: a newer Mayfly migrated it; upgrade this one."""

    code = "schema_ahead"


class SecretKeyError(Unavailable):
    """The home's secret key is missing, unreadable or not the one the secrets were sealed with."""

    code = "secret_key_unavailable"


class LaunchFailed(Unavailable):
    """The provider could not start the container. ``retryable`` says if another attempt may work.

    ``kind`` (a :class:`~mayfly.core.models.FailureKind` value: ``capacity``, ``quota``, ``throttled``,
    ``region``, ``image``) says another target could avoid the failure: a task with fallback targets moves on.
    """

    code = "launch_failed"

    def __init__(self, message: str, *, retryable: bool = True, kind: str | None = None, **details: Any) -> None:
        super().__init__(message, **details)
        self.retryable = retryable
        self.kind = kind


class RuntimeBuildFailed(Unavailable):
    code = "runtime_build_failed"


# ---------------------------------------------------------------- unsupported


class Unsupported(MayflyError):
    """A provider does not offer an optional operation or capability."""

    code = "unsupported"
    exit_code = ExitCode.UNSUPPORTED
    http_status = 501


class MissingDependency(Unsupported):
    """An optional SDK is not installed; the message says what to install."""

    code = "missing_dependency"


class PluginError(Unsupported):
    """A plugin failed to load or is malformed; the message names it."""

    code = "plugin_error"
