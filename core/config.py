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

from mayfly.core.errors import InvalidSettings

DEFAULT_PROJECT = "default"
LOCAL_TARGET = "local"
#: Environment variable holding the key(s) that encrypt secret values; else ``Home.secret_key_file``.
SECRET_KEY_ENV = "MAYFLY_SECRET_KEY"

#: Seconds an infrastructure outage may last for one task before it ends ``error`` (see :class:`Limits`).
INFRA_RETRY_WINDOW_ENV = "MAYFLY_INFRA_RETRY_WINDOW"
#: Movable launch failures in a row that open a target's circuit breaker (see docs/placement.md).
BREAKER_FAILURES_ENV = "MAYFLY_BREAKER_FAILURES"
#: Seconds an open breaker keeps fallback tasks off its target before it lets one through (half-open).
BREAKER_COOLDOWN_ENV = "MAYFLY_BREAKER_COOLDOWN"
#: Seconds between a runner's sweeps of leftover containers and task directories.
SWEEP_INTERVAL_ENV = "MAYFLY_SWEEP_INTERVAL"
#: Folder Azurite (the Azure Storage emulator, from npm) is installed in; default: the source
#: checkout's ``.cache/azurite`` or ``~/.cache/mayfly/azurite`` (``providers/aci/emulator/azurite.py``).
AZURITE_DIR_ENV = "MAYFLY_AZURITE_DIR"


def env_seconds(name: str, default: float, *, minimum: float = 0.0) -> float:
    """A duration in seconds from the environment variable ``name``; ``default`` when unset or not a number."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        return default
    return max(minimum, value) if value == value else default  # NaN -> default


def infra_retry_window_from_env() -> float:
    """``MAYFLY_INFRA_RETRY_WINDOW`` (default 900 s): how long infrastructure failures of a task are retried."""
    return env_seconds(INFRA_RETRY_WINDOW_ENV, 900.0)


def breaker_failures_from_env() -> int:
    """``MAYFLY_BREAKER_FAILURES`` (default 3, at least 1): movable launch failures in a row that open a breaker."""
    return max(1, int(env_seconds(BREAKER_FAILURES_ENV, 3.0, minimum=1.0)))


def breaker_cooldown_from_env() -> float:
    """``MAYFLY_BREAKER_COOLDOWN`` (default 60 s): how long an open breaker keeps fallback tasks off its target."""
    return env_seconds(BREAKER_COOLDOWN_ENV, 60.0)


def sweep_interval_from_env() -> float:
    """``MAYFLY_SWEEP_INTERVAL`` (default 60 s, at least 1): how often a runner sweeps leftovers."""
    return env_seconds(SWEEP_INTERVAL_ENV, 60.0, minimum=1.0)


@dataclass(frozen=True)
class Limits:
    """Caps that protect the store, the queues and the host. Values follow IronWorker where it had one."""

    #: Payload and config size (IronWorker: 64 KB; fits every cloud queue).
    max_payload_bytes: int = 64 * 1024
    #: Code package upload size (``MAYFLY_MAX_UPLOAD_BYTES``); a larger upload answers 413 before it is read.
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
    #: Seconds during which a task's infrastructure failures (launch failed, container lost, engine
    #: restarted) are relaunched as new attempts, counted from the first such failure since the task last
    #: started running; backoff 1, 2, 4 ... 60 s between attempts. ``MAYFLY_INFRA_RETRY_WINDOW``.
    infra_retry_window: float = field(default_factory=infra_retry_window_from_env)
    #: A target whose launches fail this many times in a row with a kind another target could avoid (no
    #: capacity, quota, throttled, region, image missing) opens its circuit breaker. ``MAYFLY_BREAKER_FAILURES``.
    breaker_failures: int = field(default_factory=breaker_failures_from_env)
    #: Seconds an open breaker keeps tasks that have another target off its target. ``MAYFLY_BREAKER_COOLDOWN``.
    breaker_cooldown: float = field(default_factory=breaker_cooldown_from_env)
    #: Seconds between SIGTERM and SIGKILL when a task is stopped.
    stop_grace_seconds: float = 10.0

    @classmethod
    def from_env(cls) -> Limits:
        """The defaults, with ``MAYFLY_MAX_UPLOAD_BYTES`` (a whole number of bytes, at least 1) when it is set."""
        value = os.environ.get(MAX_UPLOAD_ENV, "").strip()
        if not value:
            return cls()
        if not value.isdigit() or int(value) < 1:
            raise InvalidSettings(f"{MAX_UPLOAD_ENV} must be a whole number of bytes (at least 1), not {value!r}")
        return cls(max_upload_bytes=int(value))


#: The setting that caps code uploads (bytes of the zip).
MAX_UPLOAD_ENV = "MAYFLY_MAX_UPLOAD_BYTES"


@dataclass(frozen=True)
class Home:
    """The state directory of one installation."""

    root: Path
    limits: Limits = field(default_factory=Limits)

    @classmethod
    def from_env(cls) -> Home:
        """``$MAYFLY_HOME``, or ``~/.mayfly``."""
        root = os.environ.get("MAYFLY_HOME") or str(Path.home() / ".mayfly")
        return cls(Path(root).expanduser().absolute(), Limits.from_env())

    def ensure(self) -> Home:
        """Create the directory layout (idempotent) and return self.

        A home that cannot be written (a read-only or full file system) raises
        :class:`~mayfly.core.errors.StoreUnavailable`, and only where something must
        change (an existing layout with the right mode is left untouched).
        """
        from mayfly.core.dbfaults import storage_faults  # config is imported by everything; keep it light

        with storage_faults():
            for path in (self.root, self.blobs_dir, self.run_dir, self.cache_dir):
                path.mkdir(parents=True, exist_ok=True)
            if self.root.stat().st_mode & 0o777 != 0o711:
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


#: Default of ``MAYFLY_STORE_BUSY_TIMEOUT``: seconds a writer waits for a SQLite lock before the store is unavailable.
DEFAULT_STORE_BUSY_TIMEOUT = 15.0


def store_busy_timeout() -> float:
    """``MAYFLY_STORE_BUSY_TIMEOUT`` in seconds (default 15): how long a write waits for SQLite's lock.

    Used by the store (``mayfly.db``) and the embedded queues (``queues.db``). Past it the
    write fails with ``store_unavailable`` (CLI exit 5, HTTP 503). Unset, empty or not a
    non-negative number: the default.
    """
    value = os.environ.get("MAYFLY_STORE_BUSY_TIMEOUT", "").strip()
    try:
        seconds = float(value) if value else DEFAULT_STORE_BUSY_TIMEOUT
    except ValueError:
        return DEFAULT_STORE_BUSY_TIMEOUT
    return seconds if seconds >= 0 and seconds == seconds and seconds != float("inf") else DEFAULT_STORE_BUSY_TIMEOUT


#: Default of ``MAYFLY_LEASE_SECONDS``.
DEFAULT_LEASE_SECONDS = 30.0


def lease_seconds() -> float:
    """``MAYFLY_LEASE_SECONDS`` (default 30, at least 1): how long a runner holds a task message per heartbeat.

    The runner extends the lease every third of it while the task runs. A runner that
    stops for longer (paused, cut off from its queue) loses the message to another
    runner, which reattaches the container; a dead runner's tasks are picked up after
    at most this long. Unset, empty or not a number: the default.
    """
    value = os.environ.get("MAYFLY_LEASE_SECONDS", "").strip()
    try:
        seconds = float(value) if value else DEFAULT_LEASE_SECONDS
    except ValueError:
        return DEFAULT_LEASE_SECONDS
    if seconds != seconds or seconds == float("inf"):
        return DEFAULT_LEASE_SECONDS
    return max(1.0, seconds)


#: Default of ``MAYFLY_DATABASE_POOL_SIZE``.
DEFAULT_DATABASE_POOL_SIZE = 10
#: Default of ``MAYFLY_STATEMENT_TIMEOUT`` (seconds).
DEFAULT_STATEMENT_TIMEOUT = 30.0


def database_pool_size() -> int:
    """``MAYFLY_DATABASE_POOL_SIZE`` (default 10, at least 1): PostgreSQL connections a process keeps open.

    As many again may be opened for a burst and are closed when returned. Unset, empty or
    not a whole number: the default.
    """
    value = os.environ.get("MAYFLY_DATABASE_POOL_SIZE", "").strip()
    return max(1, int(value)) if value.isdigit() else DEFAULT_DATABASE_POOL_SIZE


def statement_timeout() -> float:
    """``MAYFLY_STATEMENT_TIMEOUT`` in seconds (default 30; 0: none): PostgreSQL cancels a statement past it.

    A cancelled statement (a lock held too long, a runaway query) fails with
    ``store_unavailable`` like a SQLite lock past ``MAYFLY_STORE_BUSY_TIMEOUT``.
    """
    return env_seconds("MAYFLY_STATEMENT_TIMEOUT", DEFAULT_STATEMENT_TIMEOUT)
