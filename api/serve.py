"""Serving the API with uvicorn in a thread of ``mayfly server``."""

from __future__ import annotations

import threading
import time

import uvicorn

from mayfly.api.app import create_app
from mayfly.core.app import Mayfly
from mayfly.core.errors import Unavailable


class ApiServer:
    """uvicorn on (host, port) in a background thread; ``stop`` ends it."""

    def __init__(self, mf: Mayfly, host: str, port: int) -> None:
        config = uvicorn.Config(
            create_app(mf), host=host, port=port, log_level="warning", access_log=False, lifespan="off"
        )
        # uvicorn installs signal handlers only in the main thread: they stay `mayfly server`'s.
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="mayfly-api", daemon=True)

    def start(self, timeout: float = 10.0) -> None:
        """Start and wait until the socket listens (or fail with one clear line)."""
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                cfg = self.server.config
                raise Unavailable(f"the API could not listen on {cfg.host}:{cfg.port} (port in use?)")
            time.sleep(0.02)

    @property
    def url(self) -> str:
        """Where it listens (the real port when 0 was asked for)."""
        cfg = self.server.config
        port = cfg.port
        if self.server.servers and self.server.servers[0].sockets:
            port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://{cfg.host}:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
