"""ARM's error responses: ``{"error": {"code", "message"}}`` with the HTTP status ARM uses.

Every refusal of the emulator is an :class:`ArmError`; the API turns it into the
body Azure Resource Manager sends, which ``azure-core`` raises as
``HttpResponseError`` (``ResourceNotFoundError`` for 404, ``ResourceExistsError``
for 409) with ``error.code`` set.
"""

from __future__ import annotations

from typing import Any


class ArmError(Exception):
    """A request ARM refuses: HTTP status, ARM error code and message."""

    def __init__(self, status: int, code: str, message: str, target: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.target = target

    def body(self) -> dict[str, Any]:
        """The JSON body of the response."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.target:
            error["target"] = self.target
        return {"error": error}


def bad_request(code: str, message: str, target: str | None = None) -> ArmError:
    """A 400 with ``code``."""
    return ArmError(400, code, message, target)


def group_not_found(resource_group: str, name: str) -> ArmError:
    """ARM's 404 for a container group that does not exist."""
    return ArmError(
        404,
        "ResourceNotFound",
        f"The Resource 'Microsoft.ContainerInstance/containerGroups/{name}' under resource group "
        f"'{resource_group}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
    )


def container_not_found(group: str, container: str) -> ArmError:
    """ACI's 404 for a container name that is not in the group."""
    return ArmError(
        404, "ContainerNotFound", f"The container '{container}' does not exist in container group '{group}'."
    )
