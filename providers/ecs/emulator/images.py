"""Which local image runs a task definition's ``image``: the emulator pulls nothing.

ECS pulls the image from its registry; the emulator only looks in the local
Docker engine, trying these references in order and running the first found:

1. the reference as written (``busybox:latest``, ``mayfly/runtime-shell:1``, ...);
2. for an ECR reference ``ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO:TAG``, the
   local ``REPO:TAG`` (so ``docker tag`` of a pushed image's local name works);
3. for a tag of the form ``runtime-NAME-V`` under any repository (how Mayfly
   names its runtimes in a target's ``image_prefix`` repository), the local
   runtime image ``mayfly/runtime-NAME:V``; e.g.
   ``123456789012.dkr.ecr.eu-west-1.amazonaws.com/mayfly:runtime-python-3.11-1``
   runs ``mayfly/runtime-python-3.11:1``.

When none exists, the task stops like ECS's after a failed pull: stopCode
``TaskFailedToStart``, stoppedReason ``CannotPullContainerError: ...``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import docker.errors

_ECR = re.compile(r"^\d{12}\.dkr\.ecr(?:-fips)?\.[a-z0-9-]+\.amazonaws\.com(?:\.cn)?/(?P<rest>.+)$")
_RUNTIME_TAG = re.compile(r"^runtime-(?P<name>.+)-(?P<version>[^-]+)$")


def split_tag(reference: str) -> tuple[str, str | None]:
    """``(repository, tag)`` of an image reference (tag None when absent or pinned by digest)."""
    if "@" in reference:
        return reference.split("@", 1)[0], None
    slash = reference.rfind("/")
    colon = reference.rfind(":")
    if colon > slash:
        return reference[:colon], reference[colon + 1 :]
    return reference, None


def candidates(reference: str) -> list[str]:
    """The local references tried for ``reference``, in order (see the module docstring)."""
    found = [reference]
    ecr = _ECR.match(reference)
    if ecr:
        found.append(ecr.group("rest"))
    _, tag = split_tag(reference)
    runtime = _RUNTIME_TAG.match(tag or "")
    if runtime:
        found.append(f"mayfly/runtime-{runtime.group('name')}:{runtime.group('version')}")
    return list(dict.fromkeys(found))


@dataclass(frozen=True)
class LocalImage:
    """The local image a task runs."""

    reference: str
    #: ``sha256:...`` id of the image (reported as the container's imageDigest).
    id: str


class ImageNotAvailable(Exception):
    """No candidate reference exists in the local engine."""


def resolve(client: Any, reference: str) -> LocalImage:
    """The first candidate of ``reference`` that exists in the engine, or ImageNotAvailable."""
    tried = candidates(reference)
    for ref in tried:
        try:
            image = client.images.get(ref)
        except (docker.errors.ImageNotFound, docker.errors.InvalidRepository):
            continue
        except docker.errors.APIError as exc:
            if exc.status_code in (400, 404):
                continue
            raise
        return LocalImage(reference=ref, id=str(image.id))
    raise not_available(reference, tried)


def not_available(reference: str, tried: list[str]) -> ImageNotAvailable:
    """The error of a pull that found no ``reference`` (``tried``: the local references looked for; [] if injected)."""
    where = f"it looked in the local Docker engine for: {', '.join(tried)}" if tried else "a test injected this failure"
    return ImageNotAvailable(
        f"CannotPullContainerError: pull image manifest has been retried 1 time(s): failed to resolve ref "
        f"{reference}: not found (the Mayfly ECS emulator pulls nothing; {where})"
    )
