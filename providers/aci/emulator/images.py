"""Which local image runs a container's ``image``: the emulator pulls nothing.

ACI pulls from the image's registry; the emulator only looks in the local Docker
engine and runs the first of these that exists:

1. the reference as written (``busybox:latest``, ``mayfly/runtime-shell:1``, ...);
2. for a reference on a registry (``NAME.azurecr.io/REPO:TAG``, any host with a
   dot or a port), the local ``REPO:TAG`` (so ``docker tag`` of a pushed image's
   local name works);
3. for a repository whose last part is ``runtime-NAME`` (a target's
   ``image_prefix``, e.g. ``NAME.azurecr.io/mayfly/runtime-python-3.11:1``), the
   local runtime image ``mayfly/runtime-NAME:TAG``.

When none exists the container never starts: ACI's pull failure (see
:mod:`~mayfly.providers.aci.emulator.containers`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import docker.errors


def split_tag(reference: str) -> tuple[str, str | None]:
    """``(repository, tag)`` of an image reference (tag None when absent or pinned by digest)."""
    if "@" in reference:
        return reference.split("@", 1)[0], None
    slash = reference.rfind("/")
    colon = reference.rfind(":")
    if colon > slash:
        return reference[:colon], reference[colon + 1 :]
    return reference, None


def _without_registry(reference: str) -> str | None:
    first, _, rest = reference.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return rest
    return None


def candidates(reference: str) -> list[str]:
    """The local references tried for ``reference``, in order (see the module docstring)."""
    found = [reference]
    local = _without_registry(reference)
    if local:
        found.append(local)
    repository, tag = split_tag(reference)
    last = repository.rsplit("/", 1)[-1]
    if last.startswith("runtime-"):
        found.append(f"mayfly/{last}:{tag or 'latest'}")
    return list(dict.fromkeys(found))


@dataclass(frozen=True)
class LocalImage:
    """The local image a container runs."""

    reference: str
    id: str


class ImageNotAvailable(Exception):
    """No candidate reference exists in the local engine."""

    def __init__(self, reference: str, tried: list[str]) -> None:
        super().__init__(reference)
        self.reference = reference
        self.tried = tried


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
    raise ImageNotAvailable(reference, tried)
