"""Identifiers: 24 hex characters (IronWorker's id width), sortable by creation time."""

from __future__ import annotations

import os
import threading
import time

_lock = threading.Lock()
_last_ms = 0
_last_rand = 0


def new_id() -> str:
    """A new id: 48 bits of milliseconds, then 48 random bits that increase within a millisecond.

    Ids made by one process therefore sort in creation order, which the router's
    FIFO relies on; across processes they sort by millisecond.
    """
    global _last_ms, _last_rand
    with _lock:
        ms = int(time.time() * 1000)
        if ms <= _last_ms:
            ms = _last_ms
            rand = _last_rand + 1
        else:
            rand = int.from_bytes(os.urandom(6), "big") >> 1  # leave headroom to increment
        _last_ms, _last_rand = ms, rand
    return f"{ms:012x}{rand:012x}"[-24:]
