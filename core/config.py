"""Where a Mayfly installation keeps its state (``MAYFLY_HOME``) and its limits.

A home holds the SQLite store, the local blob directory, the embedded queues and
scratch space. Two homes never see each other: every container a home starts is
labelled with the home's id.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_PROJECT = "default"
LOCAL_TARGET = "local"
#: Environment variable holding the key(s) that encrypt secret values; else ``Home.secret_key_file``.
SECRET_KEY_ENV = "MAYFLY_SECRET_KEY"


@dataclass(frozen=True)
class Limits:
    """Caps that protect the store, the queues and the host. Values follow IronWorker where it had one."""

    #: Payload and config size (IronWorker: 64 KB; fits every cloud queue).
    max_payload_bytes: int = 64 * 1024
    #: Code package upload size.
    max_upload_bytes: int = 100 * 1024 * 1024
    #: What a task may write to /mayfly/result.json.
    max_result_bytes: int = 1024 * 1024
    #: Log bytes kept per attempt; the rest is dropped with a marker.
    max_log_bytes: int = 10 * 1024 * 1024
    #: Default and maximum task timeout in seconds (IronWorker: 3600 both; Mayfly allows a day).
    default_timeout: int = 3600
    max_timeout: int = 86400
    #: Max user retries per task (IronWorker: 10).
    max_retries: int = 10
    #: Max delay in seconds (IronWorker: 7 days).
    max_delay: int = 7 * 86400
    #: Attempts lost to infrastructure (launch failed, container lost) retried on their own budget.
    infra_retries: int = 3
    #: Seconds between SIGTERM and SIGKILL when a task is stopped.
    stop_grace_seconds: float = 10.0


@dataclass(frozen=True)
class Home:
    """The state directory of one installation."""

    root: Path
    limits: Limits = field(default_factory=Limits)

    @classmethod
    def from_env(cls) -> Home:
        """``$MAYFLY_HOME``, or ``~/.mayfly``."""
        root = os.environ.get("MAYFLY_HOME") or str(Path.home() / ".mayfly")
        return cls(Path(root).expanduser().absolute())

    def ensure(self) -> Home:
        """Create the directory layout (idempotent) and return self."""
        for path in (self.root, self.blobs_dir, self.run_dir, self.cache_dir):
            path.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o711)  # task dirs below run/ must be reachable by the task user, not listable
        return self

    @property
    def db_url(self) -> str:
        url = os.environ.get("MAYFLY_DATABASE_URL")
        return url or f"sqlite:///{self.root / 'mayfly.db'}"

    @property
    def queue_db(self) -> Path:
        return self.root / "queues.db"

    @property
    def blobs_dir(self) -> Path:
        return self.root / "blobs"

    @property
    def run_dir(self) -> Path:
        """Per-attempt task directories, bind-mounted into local containers."""
        return self.root / "run"

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    @property
    def secret_key_file(self) -> Path:
        """The key that encrypts secret values (``MAYFLY_SECRET_KEY`` overrides it); see docs/secrets.md."""
        return self.root / "keys" / "secret.key"

    @property
    def server_lock(self) -> Path:
        return self.root / "server.lock"

    @property
    def id(self) -> str:
        """A random id, created once, that labels this home's containers."""
        path = self.root / "home.json"
        if not path.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.{secrets.token_hex(4)}.tmp")
            tmp.write_text(json.dumps({"id": secrets.token_hex(6)}))
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)  # first writer wins; a racing process reads the winner's id
            tmp.unlink()
        return str(json.loads(path.read_text())["id"])
