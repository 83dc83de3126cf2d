"""Target settings of the Docker provider (the ``settings`` of a ``docker`` target)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from mayfly.core.provider import ProviderSettings

_SIZE = r"^[0-9]+[bkmgBKMG]?$"


class DockerSettings(ProviderSettings):
    """How task containers are created on one Docker engine. The defaults are the hardened baseline."""

    base_url: str | None = Field(
        default=None,
        description="Address of the Docker engine, e.g. unix:///var/run/docker.sock or tcp://host:2376. "
        "Unset: DOCKER_HOST and the other DOCKER_* variables, else the local socket.",
    )
    user: str = Field(
        default="10001:10001",
        pattern=r"^[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+)?$",
        description="uid:gid (or user name) the task runs as. Root is refused: task code is untrusted.",
    )
    pids_limit: int = Field(
        default=256, gt=0, description="Most processes and threads a task container may have (fork-bomb cap)."
    )
    tmpfs_size: str = Field(
        default="64m",
        pattern=_SIZE,
        description="Size of the tmpfs mounted at /tmp (the root filesystem is read-only). It counts as task memory.",
    )
    placement: Literal["bind", "archive"] = Field(
        default="bind",
        description="How code, payload and config reach /mayfly: 'bind' prepares a directory on this host and "
        "bind-mounts it (the runner must run on the engine's host); 'archive' copies them in through the "
        "engine's archive API into an anonymous volume (works with a remote engine, ~160 ms slower per task).",
    )
    init: bool = Field(
        default=True,
        description="Run docker-init as PID 1, so signals reach the task and zombies are reaped.",
    )
    runtime: str | None = Field(
        default=None,
        description="OCI runtime for task containers, e.g. 'runsc' (gVisor) for a stronger sandbox. "
        "Unset: the engine's default (runc).",
    )
    log_max_size: str = Field(
        default="20m",
        pattern=_SIZE,
        description="Largest json-file log the engine keeps per task container; protects the host's disk "
        "(older output is dropped beyond it).",
    )

    @field_validator("user")
    @classmethod
    def _not_root(cls, value: str) -> str:
        if value.split(":", 1)[0] in ("0", "root"):
            raise ValueError("task containers never run as root; use a uid such as 10001:10001")
        return value

    def numeric_user(self) -> tuple[int, int] | None:
        """The task's (uid, gid) when ``user`` is numeric, else None (a name only the image can resolve)."""
        uid, _, gid = self.user.partition(":")
        gid = gid or uid
        if uid.isdigit() and gid.isdigit():
            return int(uid), int(gid)
        return None
