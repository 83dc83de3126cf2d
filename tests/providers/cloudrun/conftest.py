"""The Pub/Sub emulator (from the Google Cloud SDK), started once per test session."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mayfly.providers.cloudrun.google import Clients

PROJECT = "mayfly-test"


def emulator_binary() -> Path | None:
    """The SDK's ``cloud-pubsub-emulator`` script (beside the ``gcloud`` on PATH, or the Debian package's)."""
    roots = [Path("/usr/lib/google-cloud-sdk")]
    gcloud = shutil.which("gcloud")
    if gcloud:
        roots.insert(0, Path(os.path.realpath(gcloud)).parent.parent)
    for root in roots:
        candidate = root / "platform" / "pubsub-emulator" / "bin" / "cloud-pubsub-emulator"
        if candidate.is_file():
            return candidate
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def pubsub_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``host:port`` of a running Pub/Sub emulator; skips when the SDK's emulator is not installed."""
    binary = emulator_binary()
    if binary is None or shutil.which("java") is None:
        pytest.skip(
            "the Pub/Sub emulator is not installed (the Google Cloud SDK's google-cloud-cli-pubsub-emulator and a "
            "Java 11+ runtime; CI machines have both)"
        )
    port = _free_port()
    log = tmp_path_factory.mktemp("pubsub-emulator") / "emulator.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(binary), "--host=127.0.0.1", f"--port={port}"],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while "Server started" not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the Pub/Sub emulator did not start:\n{log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, 15)  # the script starts java: end the whole group
        proc.wait(timeout=30)


@pytest.fixture
def pubsub_clients(pubsub_emulator: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Clients]:
    """Clients talking to the session's emulator (PUBSUB_EMULATOR_HOST is read when they are created)."""
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_emulator)
    clients = Clients()
    yield clients
    clients.close()
