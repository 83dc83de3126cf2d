"""Telling a container killed by its engine's stop or restart from one that failed by itself.

When a Docker engine stops (``systemctl restart docker``, an upgrade, a crash), it
first closes its listening socket and then stops every container (SIGTERM, SIGKILL
after its shutdown timeout); with live-restore off they stay dead when it comes
back. To the task that looks like exit code 143 or 137, the same as a task that
killed itself. The provider decides with evidence about the engine, never the
exit code alone. A container that exited non-zero (not OOM) is marked
``engine_restarted`` when either:

* the provider lost contact with the engine while it watched the container
  running (a wait, inspect or log call failed to connect), and found it exited
  once the engine answered again; or
* right after it saw the exit, a *fresh* connection to the engine was refused:
  the engine had stopped listening, which it does before it stops containers; or
* (a runner that was down across the restart) the container started before the
  engine process now answering did, and a signal ended it (exit code > 128). The
  engine's start time is known for a local engine on a unix socket: the socket's
  peer (``SO_PEERCRED``) is dockerd, and ``/proc`` tells when it started.

A verdict is kept per container, so every later look (the runner asks several
times) gives the same answer; :meth:`EngineWatch.forget` drops it on removal.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

from mayfly.core.models import ContainerState, ContainerStatus, Reason

#: Seconds a probe connection may take before it counts as "no evidence".
_PROBE_TIMEOUT = 2.0
#: Verdicts kept at most (one per container this process saw exit; removal forgets them).
_MAX_VERDICTS = 10_000


def refuses_connections(url: str) -> bool:
    """True when a new connection to the engine at ``url`` is refused (it stopped listening).

    Only a refusal counts: a timeout, a TLS or an ssh address is no evidence either way.
    """
    parsed = urlparse(url)
    try:
        if parsed.scheme in ("unix", "http+unix"):
            path = parsed.path or parsed.netloc
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(_PROBE_TIMEOUT)
                sock.connect(path)
            return False
        if parsed.scheme in ("tcp", "http", "https") and parsed.hostname:
            port = parsed.port or (2376 if parsed.scheme == "https" else 2375)
            with socket.create_connection((parsed.hostname, port), timeout=_PROBE_TIMEOUT):
                return False
    except (ConnectionRefusedError, FileNotFoundError):
        return True
    except OSError:
        return False
    return False


def engine_started_at(url: str) -> float | None:
    """Epoch seconds at which the engine serving the unix socket ``url`` started; None when unknowable.

    Unknowable: a TCP or ssh engine, or a dockerd in another PID namespace (its peer pid reads 0).
    """
    parsed = urlparse(url)
    if parsed.scheme not in ("unix", "http+unix") or not hasattr(socket, "SO_PEERCRED"):
        return None
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(_PROBE_TIMEOUT)
            sock.connect(parsed.path or parsed.netloc)
            pid, _, _ = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
        if pid <= 0:
            return None
        stat = Path(f"/proc/{pid}/stat").read_text()
        ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22: start time, clock ticks after boot
        lines = Path("/proc/stat").read_text().splitlines()
        boot = next(int(line.split()[1]) for line in lines if line.startswith("btime "))
    except (OSError, ValueError, IndexError, StopIteration, struct.error):
        return None
    return boot + ticks / os.sysconf("SC_CLK_TCK")


class EngineWatch:
    """Evidence, per container, that the engine went away while the container ran."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._lock = threading.Lock()
        #: container reference -> when contact was lost while it was running.
        self._lost: dict[str, float] = {}
        #: container id -> the engine_restarted detail, or None for "ended by itself".
        self._verdicts: dict[str, str | None] = {}

    def lost_contact(self, ref: str) -> None:
        """Record that the engine stopped answering while container ``ref`` was running."""
        with self._lock:
            self._lost.setdefault(ref, time.time())

    def classify(self, container_id: str, name: str, state: ContainerState) -> ContainerState:
        """``state``, marked as an infrastructure failure when the engine's stop ended the container."""
        if state.status is not ContainerStatus.EXITED or state.oom_killed or state.exit_code in (0, None):
            return state
        with self._lock:
            known = container_id in self._verdicts
            detail = self._verdicts.get(container_id)
            lost = container_id in self._lost or name in self._lost
        if not known:
            if lost:
                detail = f"the Docker engine at {self.url} stopped answering while the container ran"
            elif refuses_connections(self.url):
                detail = f"the Docker engine at {self.url} stopped listening before the container exited"
            elif state.exit_code is not None and state.exit_code > 128 and state.started_at is not None:
                engine_start = engine_started_at(self.url)
                if engine_start is not None and state.started_at < engine_start:
                    since = datetime.fromtimestamp(engine_start, UTC).isoformat(timespec="seconds")
                    detail = (
                        f"the container started before the Docker engine at {self.url} (running since {since}) "
                        f"and a signal ended it"
                    )
            with self._lock:
                if len(self._verdicts) >= _MAX_VERDICTS:
                    self._verdicts.clear()
                detail = self._verdicts.setdefault(container_id, detail)
        if detail is None:
            return state
        return replace(
            state,
            infra="retry",
            reason=Reason.ENGINE_RESTARTED.value,
            detail=f"{detail} (engine stopped or restarted; the container exited with {state.exit_code})",
        )

    def forget(self, *refs: str) -> None:
        """Drop what is known about a removed container."""
        with self._lock:
            for ref in refs:
                self._lost.pop(ref, None)
                self._verdicts.pop(ref, None)
