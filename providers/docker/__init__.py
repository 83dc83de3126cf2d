"""Run tasks on a Docker engine: the ``local`` target, and any ``docker`` target you add.

What it creates
    One container per (task, attempt), named ``mayfly-<task>-<attempt>``, from the
    runtime image (or the code's registered image), labelled ``mayfly.task``,
    ``mayfly.attempt``, ``mayfly.project``, ``mayfly.home`` and ``mayfly.target``
    so a restarted runner finds it again. It is created, filled, started, watched
    and, once its log and result are kept, removed with its anonymous volume. Its
    files (see :mod:`mayfly.providers.docker.files`) come one of two ways:

    * ``placement: bind`` (default): a directory ``<MAYFLY_HOME>/run/<target>/<container>/``
      on this host holds ``task/`` (the code, unpacked by Mayfly's safe unpacker after its
      sha256 was checked), ``payload.json``, ``config.json`` and ``result.json``,
      owned by the task user, and is bind-mounted read-write at ``/mayfly``. It is
      deleted with the container.
    * ``placement: archive``: the same files are copied into an anonymous volume at
      ``/mayfly`` through the engine's archive API before the container starts, and
      ``result.json`` is read back the same way. Use it when the engine is not on the
      runner's host.

What it needs
    Access to the engine's API (``base_url``, else ``DOCKER_HOST``, else
    ``unix:///var/run/docker.sock``): root, or membership of the ``docker`` group,
    which is root-equivalent on that host. With ``bind`` placement the runner must
    run on the engine's host and own its run directory. Images are never pulled:
    they must already be on the engine (``mayfly runtime build``).

Hardening, on by default for every task container
    non-root user (``10001:10001``; root is refused), all capabilities dropped,
    ``no-new-privileges``, the engine's default seccomp profile, a PID limit
    (256), memory limit with no swap beyond it, CPU limit, read-only root
    filesystem with a size-capped tmpfs at ``/tmp``, no restart policy (the runner
    owns retries), docker-init as PID 1, no host network/PID/IPC/UTS namespace
    (``network: host`` is refused), a private cgroup namespace, no mount but
    ``/mayfly`` (never the Docker socket), and a json-file log capped at
    ``log_max_size``. ``runtime: runsc`` (gVisor) adds a user-space kernel when
    installed.

What it does not cover
    ``/mayfly`` is writable and lives on the host's disk without a quota (the
    json-file log and the tmpfs are capped, it is not); a task can fill it until
    it is removed. Egress is open on ``bridge`` unless the code asks for
    ``network: none``. GPUs and spot capacity are not offered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mayfly.core import hookimpl
from mayfly.providers.docker.provider import DockerProvider
from mayfly.providers.docker.settings import DockerSettings

if TYPE_CHECKING:
    from mayfly.core.plugins import ProviderRegistry

__all__ = ["DockerProvider", "DockerSettings", "mayfly_register_providers"]


@hookimpl
def mayfly_register_providers(registry: ProviderRegistry) -> None:
    """Register :class:`DockerProvider` under the name ``docker``."""
    registry.add(DockerProvider)
