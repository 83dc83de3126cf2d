"""Runtime images from the local engine to a stack's registry.

Runtimes are built locally (``mayfly runtime build``) and tagged
``mayfly/runtime-NAME:V``. A deploy hands every such tag to the stack's
:class:`ImageRegistry`, which each cloud's deploy plug-in provides (AWS: ECR, see
:mod:`mayfly.infra.clouds.aws.registry`). Registries with one repository per stack
use :func:`push_images`: each image goes in as ``REPOSITORY:runtime-NAME-V``, the name
a provider derives from its ``image_prefix`` (see :func:`remote_image`). ``:latest``
aliases are not pushed: codes always name a version.

Nothing here runs in this project's tests against a registry (none is reachable);
the tag mapping and the selection of local tags are tested.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from mayfly.core.errors import EngineNotRunning, InvalidInput
from mayfly.infra.errors import ImagePushFailed

#: Local runtime images: ``mayfly/runtime-NAME:VERSION``.
LOCAL_PREFIX = "mayfly/runtime-"


@dataclass(frozen=True)
class RegistryAuth:
    """Short-lived credentials of a registry (ECR tokens last 12 hours)."""

    username: str
    password: str
    #: ``https://ACCOUNT.dkr.ecr.REGION.amazonaws.com``
    server: str

    def auth_config(self) -> dict[str, str]:
        """What the Docker SDK's ``push(auth_config=...)`` takes."""
        return {"username": self.username, "password": self.password, "serveraddress": self.server}


@dataclass(frozen=True)
class PushedImage:
    """One local image and where it now is."""

    local: str
    remote: str
    digest: str | None


#: A progress callback: one line per step.
Note = Callable[[str], None]


class ImageRegistry(ABC):
    """Where one stack's runtime images go, and how they get there (each cloud's plug-in gives one)."""

    #: Where the images went, for people (a repository URL).
    location: str

    @abstractmethod
    def push(self, client: Any, images: list[str], progress: Note) -> list[PushedImage]:
        """Push the local ``images`` (``mayfly/runtime-NAME:V``) with the Docker SDK ``client``.

        :class:`~mayfly.infra.errors.ImagePushFailed` on the first failure.
        """


def remote_tag(local: str) -> str:
    """``mayfly/runtime-python-3.11:1`` -> ``runtime-python-3.11-1`` (one repository holds every runtime)."""
    repository, sep, version = local.rpartition(":")
    if not sep or not repository.startswith(LOCAL_PREFIX) or "/" in version or not version:
        raise InvalidInput(f"{local!r} is not a runtime image (expected {LOCAL_PREFIX}NAME:VERSION)")
    name = repository.removeprefix(LOCAL_PREFIX)
    return f"runtime-{name}-{version}"


def remote_image(local: str, repository_url: str) -> str:
    """Where ``local`` runs from on a target whose ``image_prefix`` is ``repository_url``."""
    return f"{repository_url}:{remote_tag(local)}"


def runtime_tags(tags: Iterable[str]) -> list[str]:
    """The versioned runtime tags among an engine's image tags (no ``:latest``, nothing else)."""
    keep = set()
    for tag in tags:
        if tag.startswith(LOCAL_PREFIX) and not tag.endswith(":latest"):
            try:
                remote_tag(tag)
            except InvalidInput:
                continue
            keep.add(tag)
    return sorted(keep)


def local_runtime_images(client: Any) -> list[str]:
    """Every ``mayfly/runtime-*:V`` tag on the local engine."""
    try:
        images = client.images.list(filters={"reference": f"{LOCAL_PREFIX}*"})
    except Exception as exc:  # the docker SDK raises several unrelated types when no engine answers
        raise EngineNotRunning(f"cannot list runtime images: Docker engine not reachable ({exc})") from None
    return runtime_tags(tag for image in images for tag in image.tags)


def push_images(
    client: Any,
    images: Iterable[str],
    repository_url: str,
    auth: RegistryAuth,
    progress: Callable[[str], None] = lambda _msg: None,
) -> list[PushedImage]:
    """Tag and push each local image into ``repository_url``; :class:`ImagePushFailed` on the first error."""
    return push_as(client, ((local, repository_url, remote_tag(local)) for local in images), auth, progress)


def push_as(
    client: Any,
    destinations: Iterable[tuple[str, str, str]],
    auth: RegistryAuth,
    progress: Callable[[str], None] = lambda _msg: None,
) -> list[PushedImage]:
    """Tag and push each ``(local image, remote repository, tag)``; :class:`ImagePushFailed` on the first error.

    For registries that name images their own way (one repository per runtime on Azure).
    """
    pushed: list[PushedImage] = []
    for local, repository_url, tag in destinations:
        remote = f"{repository_url}:{tag}"
        progress(f"pushing {local} -> {remote}")
        try:
            client.images.get(local).tag(repository_url, tag=tag)
            digest = None
            for line in client.api.push(
                repository_url, tag=tag, stream=True, decode=True, auth_config=auth.auth_config()
            ):
                if line.get("error"):
                    raise ImagePushFailed(f"pushing {local} to {remote}: {line['error']}")
                aux = line.get("aux") or {}
                digest = aux.get("Digest", digest)
        except ImagePushFailed:
            raise
        except Exception as exc:  # docker.errors.* and connection errors alike end the push
            raise ImagePushFailed(f"pushing {local} to {remote}: {exc}") from None
        pushed.append(PushedImage(local=local, remote=remote, digest=digest))
    return pushed
