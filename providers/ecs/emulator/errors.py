"""ECS API errors as the JSON protocol returns them: HTTP status, ``__type`` and ``message``.

The error names are the shapes of botocore's ECS service model, so boto3 raises
``client.exceptions.ConflictException`` and friends exactly as against AWS.
"""

from __future__ import annotations

from typing import Any


class EcsError(Exception):
    """One ECS API error: ``code`` becomes ``__type``, ``message`` the message, plus extra members."""

    def __init__(self, code: str, message: str, *, status: int = 400, **members: Any) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.members = members

    def body(self) -> dict[str, Any]:
        """The JSON error document (botocore reads ``__type`` and ``message``)."""
        return {"__type": self.code, "message": self.message, **self.members}


def invalid_parameter(message: str) -> EcsError:
    """The request names something that does not fit (HTTP 400 InvalidParameterException)."""
    return EcsError("InvalidParameterException", message)


def client_exception(message: str) -> EcsError:
    """A client error that ECS reports as ClientException (bad task definition, unknown resource)."""
    return EcsError("ClientException", message)


def cluster_not_found() -> EcsError:
    """The message ECS gives for any missing cluster."""
    return EcsError("ClusterNotFoundException", "Cluster not found.")


def conflict(message: str, resource_ids: list[str]) -> EcsError:
    """A clientToken already used with other parameters."""
    return EcsError("ConflictException", message, resourceIds=resource_ids)


def serialization(message: str) -> EcsError:
    """A body that is not the JSON document of the action's request shape."""
    return EcsError("SerializationException", message)


def unknown_operation(action: str) -> EcsError:
    """An ECS action this emulator does not implement."""
    return EcsError(
        "UnknownOperationException",
        f"the Mayfly ECS emulator does not implement {action} (see mayfly.providers.ecs.emulator)",
    )
