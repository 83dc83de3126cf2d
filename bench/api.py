"""API latency: ``POST /v1/tasks`` at a fixed 200 requests/s from a second process, p50/p99/max.

A real ``mayfly server`` runs on a fresh home with one project and token. The
code's tasks go to a target whose runner is not running (``embedded_runner``
off), so no container starts: what is measured is the HTTP API, the store write
of the queued task and whatever the control plane does beside it.

The load is open loop: request ``i`` is due at ``start + i / rate`` whether or
not earlier ones have been answered (a new keep-alive connection is opened when
none is idle), and its latency counts from that due time, not from when it was
sent, so a stall is charged to every request it delays (no coordinated omission).

Baseline, same run, same load generator: a minimal ASGI app on uvicorn with the
server's settings that reads the body and answers 201 with a fixed JSON — the
floor of HTTP + JSON on this machine.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.common import Row, percentile, print_table

ROOT = Path(__file__).resolve().parent.parent
RATE = 200.0
#: Most connections the load generator opens (a request waits for one only beyond this).
MAX_CONNECTIONS = 256


# ---------------------------------------------------------------- load generator (second process)


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer


async def _request(conn: _Conn, raw: bytes) -> int:
    """Send one request on a keep-alive connection and read its whole response; the status code."""
    conn.writer.write(raw)
    status_line = await conn.reader.readline()
    if not status_line:
        raise ConnectionError("connection closed")
    status = int(status_line.split()[1])
    length = 0
    while True:
        line = await conn.reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length:
        await conn.reader.readexactly(length)
    return status


async def _load(
    host: str, port: int, path: str, headers: dict[str, str], body: bytes, rate: float, n: int, warmup: int
) -> tuple[list[float], list[int], float]:
    """Fire ``warmup + n`` requests at ``rate``; latencies (s) of the last ``n``, bad statuses, achieved rate."""
    head = f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    raw = (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    idle: list[_Conn] = []
    opened = 0
    freed = asyncio.Condition()
    latencies: list[float] = []
    bad: list[int] = []
    loop = asyncio.get_running_loop()

    async def connect() -> _Conn:
        reader, writer = await asyncio.open_connection(host, port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _Conn(reader, writer)

    async def take() -> _Conn:
        nonlocal opened
        while idle and idle[-1].reader.at_eof():  # the server closed it (keep-alive timeout)
            idle.pop().writer.close()
            opened -= 1
        if idle:
            return idle.pop()
        if opened < MAX_CONNECTIONS:
            opened += 1
            return await connect()
        async with freed:
            await freed.wait_for(lambda: bool(idle))
        return idle.pop()

    async def one(i: int, due: float) -> None:
        conn = await take()
        try:
            status = await _request(conn, raw)
        except ConnectionError:
            # Closed by the server between our check and the send: nothing was answered, so the
            # request was never read (as any HTTP client does, send it again on a new connection).
            conn.writer.close()
            conn = await connect()
            status = await _request(conn, raw)
        done = loop.time()
        idle.append(conn)
        async with freed:
            freed.notify()
        if i >= warmup:
            latencies.append(done - due)
            if status != 201:
                bad.append(status)

    total = warmup + n
    tasks = []
    start = loop.time() + 0.05
    for i in range(total):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(i, due)))
    await asyncio.gather(*tasks)
    elapsed = loop.time() - start
    for conn in idle:
        conn.writer.close()
    return latencies, bad, total / elapsed


def _generator(args: tuple[Any, ...], out: Any) -> None:
    """Entry point of the load-generator process: results go back through ``out`` (a pipe end)."""
    out.send(asyncio.run(_load(*args)))
    out.close()


def fire(
    port: int, path: str, headers: dict[str, str], body: dict[str, Any], n: int, warmup: int, rate: float = RATE
) -> tuple[list[float], list[int], float]:
    """Run the load generator in a second process against 127.0.0.1:port."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    args = ("127.0.0.1", port, path, headers, json.dumps(body).encode(), rate, n, warmup)
    proc = ctx.Process(target=_generator, args=(args, child), daemon=True)
    proc.start()
    child.close()
    try:
        result: tuple[list[float], list[int], float] = parent.recv()
    finally:
        proc.join(30)
    return result


# ---------------------------------------------------------------- the servers


_FIXED = json.dumps({"id": "0" * 24, "status": "queued", "code_name": "noop", "payload": "{}"}).encode()


async def minimal_app(
    scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]], send: Callable[..., Awaitable[None]]
) -> None:
    """Reads the request body, answers 201 with a fixed JSON."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(_FIXED)).encode())]
    await send({"type": "http.response.start", "status": 201, "headers": headers})
    await send({"type": "http.response.body", "body": _FIXED})


def serve_baseline(port: int) -> None:
    """uvicorn with ``mayfly server``'s settings (see mayfly.api.serve), serving :func:`minimal_app`."""
    import uvicorn

    uvicorn.run(minimal_app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_listening(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server did not listen on {port}:\n{log.read_text()[-2000:]}")


@contextmanager
def _process(cmd: list[str], port: int, log: Path, env: dict[str, str] | None = None) -> Iterator[None]:
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=fh, stderr=fh)
    try:
        _wait_listening(proc, port, log)
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _prepare_home(home: Path) -> tuple[str, str]:
    """A project, a token, and a code whose tasks go to a target nobody serves: (project id, token)."""
    from mayfly.cli.context import resolve_runtime
    from mayfly.core.app import Mayfly
    from mayfly.core.codes import CodeOptions
    from mayfly.core.config import Home

    mf = Mayfly(Home(home), resolve_runtime)
    try:
        proj = mf.projects.ensure("bench")
        _, token = mf.tokens.create(proj.id, name="bench")
        # Docker provider, but its runner is not embedded: queued tasks wait in the target's queue.
        mf.targets.add("parked", "docker", {}, capacity=10, embedded_runner=False)
        mf.codes.register(proj.id, "noop", "busybox", CodeOptions(command="true", target="parked"))
        return proj.id, token
    finally:
        mf.close()


def run(n: int = 6_000, warmup: int = 400) -> list[Row]:
    root = Path(tempfile.mkdtemp(prefix="mayfly-bench-api-"))
    home = root / "home"
    _, token = _prepare_home(home)
    body = {"code_name": "noop", "payload": {"i": 1}}

    port = _free_port()
    env = {**os.environ, "MAYFLY_HOME": str(home), "MAYFLY_API_RATE": "1000000", "MAYFLY_API_BURST": "1000000"}
    env.pop("MAYFLY_DATABASE_URL", None)
    env.pop("MAYFLY_URL", None)
    server = [sys.executable, "-m", "mayfly.cli", "server", "--host", "127.0.0.1", "--port", str(port)]
    with _process(server, port, root / "server.log", env):
        lat, bad, achieved = fire(port, "/v1/tasks", {"Authorization": f"Bearer {token}"}, body, n, warmup)
    if bad:
        raise RuntimeError(f"{len(bad)} requests were not answered 201 (first: {bad[0]})")

    bport = _free_port()
    baseline = [sys.executable, "-c", f"from bench.api import serve_baseline; serve_baseline({bport})"]
    with _process(baseline, bport, root / "baseline.log"):
        blat, bbad, _ = fire(bport, "/v1/tasks", {"Authorization": f"Bearer {token}"}, body, n, warmup)
    if bbad:
        raise RuntimeError(f"baseline answered {bbad[0]}")

    def ms(values: list[float], p: float) -> float:
        return percentile(values, p) * 1000

    what = f"POST /v1/tasks at {RATE:.0f}/s, {n:,} requests"
    return [
        Row(f"{what}: p50", ms(lat, 50), ms(blat, 50), "ms"),
        Row(f"{what}: p99", ms(lat, 99), ms(blat, 99), "ms", "p99 < 20 ms"),
        Row(f"{what}: max", max(lat) * 1000, max(blat) * 1000, "ms"),
        Row("achieved request rate (Mayfly run)", achieved, None, "req/s", f"{RATE:.0f} req/s"),
    ]


def main(small: bool = False) -> list[Row]:
    rows = run(n=200, warmup=50) if small else run()
    print_table(f"API latency (open loop at {RATE:.0f} req/s from a second process)", rows)
    return rows
