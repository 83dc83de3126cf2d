"""The containers one emulator started: labelled as its own, removed on close, orphans reaped.

Every container an emulator starts carries ``KEY=<instance id>`` plus the pid and
host name of the emulator's process, so that only its own containers are ever
removed (the Docker engine is shared), and a later emulator on the same host can
remove what an emulator killed without cleaning up left behind. ``KEY`` names the
emulator (``mayfly.cloudrun-emulator``, ...).
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from typing import Any

import docker.errors

log = logging.getLogger(__name__)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class OwnedContainers:
    """Labels for, and removal of, the containers of one emulator instance."""

    def __init__(self, client: Any, key: str, instance: str | None = None) -> None:
        self.client = client
        self.key = key
        self.instance = instance or uuid.uuid4().hex[:12]

    def labels(self) -> dict[str, str]:
        """The labels every container of this instance carries."""
        return {self.key: self.instance, f"{self.key}.pid": str(os.getpid()), f"{self.key}.host": socket.gethostname()}

    def states(self) -> dict[str, str]:
        """Container id -> Docker state (``running``, ``exited``, ...) of this instance's containers."""
        return {c["Id"]: c["State"] for c in self.list()}

    def list(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.client.api.containers(
            all=True, filters={"label": f"{self.key}={self.instance}"}
        )
        return found

    def remove(self, container_id: str) -> None:
        """Force-remove one container (gone already is fine)."""
        try:
            self.client.api.remove_container(container_id, force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # removal already in progress
                log.warning("could not remove container %s", container_id[:12], exc_info=True)

    def remove_all(self) -> None:
        """Remove every container of this instance."""
        for container in self.list():
            self.remove(container["Id"])

    def reap_orphans(self) -> None:
        """Remove containers of emulators of the same kind on this host whose process is gone."""
        host = socket.gethostname()
        for container in self.client.api.containers(all=True, filters={"label": self.key}):
            labels = container.get("Labels") or {}
            pid = labels.get(f"{self.key}.pid", "")
            if labels.get(f"{self.key}.host") == host and pid.isdigit() and not _pid_alive(int(pid)):
                log.info("removing container %s of a dead emulator (pid %s)", container["Id"][:12], pid)
                self.remove(container["Id"])
