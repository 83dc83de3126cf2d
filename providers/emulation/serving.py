"""Serving a WSGI application on several addresses, same port, in background threads.

An emulator listens on the requested host and on the Docker bridge gateway
(:mod:`.network`) with one port: :func:`listen_all` binds them all (a free port
when 0 is asked) and :class:`Servers` serves one threaded werkzeug server per
socket until closed.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from mayfly.core.errors import Unavailable

log = logging.getLogger(__name__)


class QuietHandler(WSGIRequestHandler):
    """werkzeug's handler, logging requests at DEBUG instead of printing them."""

    def log(self, type: str, message: str, *args: Any) -> None:
        log.log(logging.WARNING if type == "error" else logging.DEBUG, message, *args)


def _listen(address: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def listen_all(addresses: list[str], port: int) -> list[socket.socket]:
    """One listening socket per address, all on the same port (a free one when ``port`` is 0)."""
    for _attempt in range(20):
        sockets: list[socket.socket] = []
        try:
            for address in addresses:
                sockets.append(_listen(address, port or (sockets[0].getsockname()[1] if sockets else 0)))
            return sockets
        except OSError as exc:
            for sock in sockets:
                sock.close()
            if port:
                raise Unavailable(f"cannot listen on {address}:{port}: {exc.strerror or exc}") from None
    raise Unavailable(f"no free port on {', '.join(addresses)}")


def free_port(address: str = "127.0.0.1") -> int:
    """A port free on ``address`` right now (for a child process to listen on)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((address, 0))
        port: int = sock.getsockname()[1]
        return port


class Servers:
    """Threaded werkzeug servers of one application, one per listening socket."""

    def __init__(self, app: Any, sockets: list[socket.socket], name: str) -> None:
        self._servers: list[BaseWSGIServer] = []
        self._threads: list[threading.Thread] = []
        for sock in sockets:
            address, port = sock.getsockname()[:2]
            server = make_server(address, port, app, threaded=True, request_handler=QuietHandler, fd=sock.fileno())
            sock.close()  # the server holds its own duplicate
            thread = threading.Thread(
                target=server.serve_forever, name=f"{name}-{address}", kwargs={"poll_interval": 0.2}, daemon=True
            )
            thread.start()
            self._servers.append(server)
            self._threads.append(thread)

    def close(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers.clear()
        self._threads.clear()
