"""Which local image an execution's container ``image`` runs: the emulator pulls nothing.

Cloud Run pulls from Artifact Registry; the emulator only looks in the local
Docker engine, trying these references in order and running the first found:

1. the reference as written (``busybox:latest``, ``mayfly/runtime-shell:1``, ...);
2. for an Artifact Registry reference ``REGION-docker.pkg.dev/PROJECT/REPO/IMAGE:TAG``
   (or ``gcr.io/PROJECT/IMAGE:TAG``), the local ``IMAGE:TAG``;
3. when that image is ``runtime-NAME:V`` (how a target's ``image_prefix``
   repository holds Mayfly's runtimes, ``PREFIX/runtime-NAME:V``), the local
   runtime image ``mayfly/runtime-NAME:V``; e.g.
   ``europe-west1-docker.pkg.dev/my-proj/mayfly/runtime-python-3.11:1`` runs
   ``mayfly/runtime-python-3.11:1``.

When none exists, the execution fails as Cloud Run's does when the image is
missing: reason ``CONTAINER_MISSING``, message ``Image 'REF' not found.``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import docker.errors

_REGISTRY = re.compile(r"^(?:[a-z0-9-]+-docker\.pkg\.dev/[^/]+/[^/]+|(?:[a-z]+\.)?gcr\.io/[^/]+)/(?P<rest>.+)$")
_RUNTIME = re.compile(r"^runtime-[^/:@]+:[^/:@]+$")


def candidates(reference: str) -> list[str]:
    """The local references tried for ``reference``, in order (see the module docstring)."""
    found = [reference]
    registry = _REGISTRY.match(reference)
    if registry:
        rest = registry.group("rest")
        found.append(rest)
        last = rest.rsplit("/", 1)[-1]
        if _RUNTIME.match(last):
            found.append(f"mayfly/{last}")
    return list(dict.fromkeys(found))


@dataclass(frozen=True)
class LocalImage:
    """The local image a task runs."""

    reference: str
    id: str


class ImageNotAvailable(Exception):
    """No candidate reference exists in the local engine."""


def resolve(client: Any, reference: str) -> LocalImage:
    """The first candidate of ``reference`` in the engine, or ImageNotAvailable with Cloud Run's message."""
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
    raise ImageNotAvailable(
        f"Image '{reference}' not found. (The Mayfly Cloud Run emulator pulls nothing; it looked in the local "
        f"Docker engine for: {', '.join(tried)})"
    )
