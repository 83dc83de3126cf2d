"""Docker engine steps of a runtime build: import a rootfs, add Mayfly's layer, tag, inspect.

Mayfly's layer is the same for offline and ``--base`` builds: a generated
Dockerfile copies the boot agent, the safe unpacker (a copy of
``mayfly.core.archive``) and the setup script into /usr/local/lib/mayfly and runs
the setup script with the image's own Python (see ``boot/mayfly_setup.py``).
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from importlib.resources import files
from pathlib import Path
from typing import Any

import docker.errors
import requests

from mayfly.core.errors import EngineNotRunning, RuntimeBuildFailed
from mayfly.runtimes.catalog import Runtime

BOOT = "/usr/local/bin/mayfly-boot"
LIB_DIR = "/usr/local/lib/mayfly"
TASK_UID = 10001
#: PATH of offline images (base images keep their own).
OFFLINE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BASE_HINT = "the base image must provide python3 >= 3.10 and /bin/sh"

Progress = Callable[[str], None]


@contextmanager
def engine_errors(action: str) -> Iterator[None]:
    """Turn docker SDK errors into EngineNotRunning or RuntimeBuildFailed with one line."""
    try:
        yield
    except requests.exceptions.ConnectionError:
        raise EngineNotRunning(
            f"{action}: Docker engine is not running; start it with 'sudo systemctl start docker' or 'sudo dockerd &'"
        ) from None
    except docker.errors.APIError as exc:
        raise RuntimeBuildFailed(f"{action}: {exc.explanation or exc}") from None
    except docker.errors.DockerException as exc:
        raise RuntimeBuildFailed(f"{action}: {exc}") from None


def import_rootfs(client: Any, tar_path: Path, ref: str) -> None:
    """Import a rootfs tar (streamed from disk) as image ``ref``."""
    repository, tag = ref.rsplit(":", 1)
    with engine_errors(f"importing {ref}"):
        client.api.import_image_from_file(str(tar_path), repository=repository, tag=tag)


def boot_sources() -> dict[str, bytes]:
    """The files of Mayfly's layer, by their name in /usr/local/lib/mayfly."""
    boot = files("mayfly.runtimes") / "boot"
    return {
        "mayfly-boot": (boot / "mayfly-boot").read_bytes(),
        "mayfly_setup.py": (boot / "mayfly_setup.py").read_bytes(),
        # The project's own unpacker, copied so the boot agent needs nothing but the stdlib.
        "mayfly_archive.py": (files("mayfly.core") / "archive.py").read_bytes(),
    }


def layer_digest(sources: dict[str, bytes]) -> str:
    """sha256 over the layer's files: tells which boot agent and unpacker an image carries."""
    digest = hashlib.sha256()
    for name in sorted(sources):
        digest.update(f"{name}\0{len(sources[name])}\0".encode())
        digest.update(sources[name])
    return digest.hexdigest()


def dockerfile(
    runtime: Runtime, from_ref: str, *, python: str, offline: bool, layer: str, base: str | None = None
) -> str:
    """The Dockerfile that adds Mayfly's layer (whose digest is ``layer``) on top of ``from_ref``."""
    compile_stdlib = offline and runtime.compile_stdlib
    setup = [python, "-I", f"{LIB_DIR}/mayfly_setup.py", *(["--compile-stdlib"] if compile_stdlib else [])]
    labels = {
        "mayfly.runtime": runtime.name,
        "mayfly.runtime.version": runtime.version,
        "mayfly.boot": BOOT,
        "mayfly.layer.sha256": layer,
        **({"mayfly.base": base} if base else {}),
    }
    lines = [
        f"FROM {from_ref}",
        "USER 0:0",
        *([f"ENV PATH={OFFLINE_PATH}"] if offline else []),
        f"COPY mayfly/ {LIB_DIR}/",
        f"RUN {json.dumps(setup)}",
        "WORKDIR /mayfly/task",
        f"USER {TASK_UID}:{TASK_UID}",
        *(['CMD ["/bin/sh"]'] if offline else []),
        "LABEL " + " ".join(f"{key}={json.dumps(value)}" for key, value in labels.items()),
    ]
    return "\n".join(lines) + "\n"


def build_context(dockerfile_text: str, sources: dict[str, bytes]) -> bytes:
    """A tar build context: the Dockerfile and ``mayfly/<file>`` for each source."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        entries = {"Dockerfile": (dockerfile_text.encode(), 0o644)}
        entries.update({f"mayfly/{name}": (data, 0o644) for name, data in sources.items()})
        for name, (data, mode) in entries.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def finish(client: Any, ref: str, context: bytes, progress: Progress, *, hint: str = "") -> str:
    """Build the context into image ``ref``; return its id. Failures quote the setup step's own line."""
    error: str | None = None
    setup_line: str | None = None
    with engine_errors(f"building {ref}"):
        stream = client.api.build(
            fileobj=io.BytesIO(context),
            custom_context=True,
            tag=ref,
            rm=True,
            forcerm=True,
            pull=False,
            network_mode="none",
            decode=True,
        )
        for chunk in stream:
            if "error" in chunk:
                error = str(chunk["error"]).strip()
            for line in str(chunk.get("stream", "")).splitlines():
                if line.startswith("mayfly-setup:"):
                    setup_line = line.removeprefix("mayfly-setup:").strip()
                elif line.startswith("Step "):
                    progress(line.strip())
        if error is not None:
            reason = setup_line or error
            raise RuntimeBuildFailed(f"building {ref} failed: {reason}" + (f" ({hint})" if hint else ""))
        image_id: str = client.images.get(ref).id
    return image_id


def image_info(client: Any, ref: str) -> tuple[str, int] | None:
    """``(id, size)`` of image ``ref``, or None when the engine has no such image."""
    with engine_errors(f"inspecting {ref}"):
        try:
            image = client.images.get(ref)
        except docker.errors.ImageNotFound:
            return None
        return str(image.id), int(image.attrs.get("Size") or 0)


def tag(client: Any, image_id: str, ref: str) -> None:
    """Point ``ref`` at ``image_id``."""
    repository, name = ref.rsplit(":", 1)
    with engine_errors(f"tagging {ref}"):
        client.api.tag(image_id, repository, name, force=True)


def remove_quietly(client: Any, ref: str) -> None:
    """Remove (or just untag) ``ref``; an image still in use or with other tags is left alone."""
    with suppress(docker.errors.APIError, requests.exceptions.ConnectionError):
        client.api.remove_image(ref)


def prune_replaced(client: Any, runtime: str) -> None:
    """Remove earlier builds of ``runtime`` that lost their tags, unless a container still uses them."""
    with suppress(docker.errors.APIError, requests.exceptions.ConnectionError):
        client.images.prune(filters={"dangling": True, "label": f"mayfly.runtime={runtime}"})
