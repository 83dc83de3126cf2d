"""Translation of docker SDK and ``requests`` exceptions into Mayfly errors.

Nothing raised by the docker SDK leaves :mod:`mayfly.providers.docker`: every
engine call runs inside :func:`translate`, which turns the SDK's exceptions into
the :class:`~mayfly.core.errors.MayflyError` subclasses the runner and the CLI
understand.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import docker.errors
import requests.exceptions
import urllib3.exceptions

from mayfly.core.errors import (
    CredentialsMissing,
    EngineNotRunning,
    LaunchFailed,
    MayflyError,
    TaskContainerNotFound,
    Unavailable,
)
from mayfly.core.models import FailureKind

#: Where the docker SDK connects when neither ``base_url`` nor ``DOCKER_HOST`` is set.
DEFAULT_ENGINE_URL = "unix:///var/run/docker.sock"
#: Engine refusals (by docker SDK exception) that another target could avoid: a task with fallback targets
#: moves on. A local engine has no capacity, quota or region to run out of; only its images can be missing.
LAUNCH_FAILURE_KINDS: dict[str, FailureKind] = {"ImageNotFound": FailureKind.IMAGE}


#: Everything that can go wrong between us and the engine: the socket, HTTP, and the SDK's own checks.
_TRANSPORT_ERRORS = (
    requests.exceptions.RequestException,
    urllib3.exceptions.HTTPError,
    docker.errors.DockerException,
    OSError,
)


def engine_url(base_url: str | None) -> str:
    """The engine address as a user would write it (for messages)."""
    return base_url or os.environ.get("DOCKER_HOST") or DEFAULT_ENGINE_URL


def engine_not_running(url: str) -> EngineNotRunning:
    """The one-line error for an engine that does not answer."""
    return EngineNotRunning(
        f"Docker engine is not running (cannot connect to {url}): "
        "start it with 'sudo systemctl start docker' or 'sudo dockerd &'"
    )


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    """True when ``kind`` is anywhere in the exception's cause chain or arguments.

    requests and urllib3 wrap the socket's error several levels deep (sometimes only
    in ``args``), so a plain ``isinstance`` cannot see e.g. a PermissionError.
    """
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        cur = todo.pop()
        if id(cur) in seen:
            continue
        seen.add(id(cur))
        if isinstance(cur, kind):
            return True
        todo.extend(e for e in (cur.__cause__, cur.__context__, getattr(cur, "reason", None)) if e is not None)
        todo.extend(a for a in cur.args if isinstance(a, BaseException))
    return False


def _explanation(exc: docker.errors.APIError) -> str:
    text = exc.explanation
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return " ".join(str(text or exc).split())


@contextmanager
def translate(url: str, doing: str, *, launch: bool = False, image: str | None = None) -> Iterator[None]:
    """Run engine calls, re-raising SDK exceptions as Mayfly errors.

    :param url: the engine address, for messages.
    :param doing: what was attempted, e.g. ``"inspecting mayfly-t1-1"``.
    :param launch: inside ``launch``: engine refusals become :class:`LaunchFailed`.
    :param image: the image being launched, to name it when it is missing.
    """
    try:
        yield
    except MayflyError:
        raise
    except docker.errors.NotFound as exc:
        if launch and isinstance(exc, docker.errors.ImageNotFound):
            raise LaunchFailed(
                f"image {image!r} is not on the Docker engine at {url}: build it (mayfly runtime build) "
                f"or pull it (docker pull {image})",
                retryable=False,
                kind=LAUNCH_FAILURE_KINDS["ImageNotFound"].value,
            ) from exc
        if launch:  # e.g. a named network that does not exist
            raise LaunchFailed(f"Docker engine refused {doing}: {_explanation(exc)}", retryable=False) from exc
        raise TaskContainerNotFound(f"{doing}: no such container ({_explanation(exc)})") from exc
    except docker.errors.APIError as exc:
        message = f"Docker engine refused {doing}: {_explanation(exc)}"
        if launch:
            # 4xx: the request itself is wrong (bad limits, missing executable); another attempt fails the same way.
            status = exc.status_code
            raise LaunchFailed(message, retryable=status is None or status >= 500) from exc
        raise Unavailable(message) from exc
    except _TRANSPORT_ERRORS as exc:
        if _caused_by(exc, PermissionError):
            raise CredentialsMissing(
                f"permission denied on the Docker engine at {url}: run Mayfly as a member of the 'docker' group"
            ) from exc
        if isinstance(exc, requests.exceptions.ReadTimeout) or _caused_by(exc, urllib3.exceptions.ReadTimeoutError):
            raise Unavailable(f"the Docker engine at {url} did not answer in time while {doing}") from exc
        if _caused_by(exc, OSError):
            raise engine_not_running(url) from exc
        # Not a connection failure: e.g. a malformed base_url or TLS settings.
        raise Unavailable(f"cannot use the Docker engine at {url}: {exc}") from exc
