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
  the engine had stopped listening, which it does before it stops containers.

A verdict is kept per container, so every later look (the runner asks several
times) gives the same answer; :meth:`EngineWatch.forget` drops it on removal.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import replace
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
