"""Fault injection for tests of crash safety: ``MAYFLY_FAULTS=point1,point2`` kills the process there.

``point:stop`` instead stops the process there (SIGSTOP), as a pause would: the test resumes it
with SIGCONT.

A fault point is a named place in the code where a crash must leave the store
consistent (e.g. in the middle of a scheduler transaction). Tests start a real
``mayfly server`` with ``MAYFLY_FAULTS`` set and check what survives; in normal
use the variable is unset and a fault point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal
import threading


def fault_point(name: str) -> None:
    """SIGKILL this process if ``name`` is listed in ``MAYFLY_FAULTS`` (SIGSTOP if ``name:stop`` is)."""
    faults = os.environ.get("MAYFLY_FAULTS")
    if not faults:
        return
    listed = faults.split(",")
    if name in listed:
        os.kill(os.getpid(), signal.SIGKILL)
    if f"{name}:stop" in listed:
        # Sent to this thread, so this thread stops right here (a signal to the process may be taken by
        # another thread, and this one would run on for a moment).
        signal.pthread_kill(threading.get_ident(), signal.SIGSTOP)
