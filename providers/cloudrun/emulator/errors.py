"""Google-style API errors: ``{"error": {"code", "message", "status"}}`` with the HTTP status of the gRPC code.

Google's REST APIs answer errors with the JSON body of ``google.rpc.Status`` under
``error`` (https://cloud.google.com/apis/design/errors#http_mapping); the Python
clients turn it into ``google.api_core.exceptions`` by the HTTP status.
"""

from __future__ import annotations

from typing import Any

#: gRPC status name -> (numeric code, HTTP status), from google/rpc/code.proto.
CODES: dict[str, tuple[int, int]] = {
    "INVALID_ARGUMENT": (3, 400),
    "FAILED_PRECONDITION": (9, 400),
    "OUT_OF_RANGE": (11, 400),
    "UNAUTHENTICATED": (16, 401),
    "PERMISSION_DENIED": (7, 403),
    "NOT_FOUND": (5, 404),
    "ALREADY_EXISTS": (6, 409),
    "ABORTED": (10, 409),
    "RESOURCE_EXHAUSTED": (8, 429),
    "CANCELLED": (1, 499),
    "UNKNOWN": (2, 500),
    "INTERNAL": (13, 500),
    "UNIMPLEMENTED": (12, 501),
    "UNAVAILABLE": (14, 503),
    "DEADLINE_EXCEEDED": (4, 504),
}


class ApiError(Exception):
    """An error answer of the emulated API."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    @property
    def http_status(self) -> int:
        return CODES[self.status][1]

    def body(self) -> dict[str, Any]:
        """The JSON error body Google's REST APIs send."""
        return {"error": {"code": self.http_status, "message": self.message, "status": self.status}}

    def rpc_status(self) -> dict[str, Any]:
        """As a ``google.rpc.Status`` (an operation's ``error``)."""
        return {"code": CODES[self.status][0], "message": self.message}


def invalid_argument(message: str) -> ApiError:
    return ApiError("INVALID_ARGUMENT", message)


def not_found(message: str) -> ApiError:
    return ApiError("NOT_FOUND", message)


def already_exists(message: str) -> ApiError:
    return ApiError("ALREADY_EXISTS", message)


def failed_precondition(message: str) -> ApiError:
    return ApiError("FAILED_PRECONDITION", message)
