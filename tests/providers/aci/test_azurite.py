"""The Azurite launcher: installs once, starts on the asked ports, answers, stops; a clear line without Node."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from mayfly.providers.aci.emulator import azurite as launcher

# Each test talks to Azurite (started once per session); some wait out leases or expiries.
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_session_azurite_answers_with_the_development_account(azurite: launcher.Azurite) -> None:
    assert azurite.blob_endpoint.endswith("/devstoreaccount1")
    assert azurite.queue_endpoint.endswith("/devstoreaccount1")
    # Unsigned requests are refused: Azurite checks credentials.
    assert _status(azurite.blob_endpoint + "?comp=list") == 403
    assert _status(azurite.queue_endpoint + "?comp=list") == 403
    assert f"BlobEndpoint={azurite.blob_endpoint};" in azurite.connection_string


def test_explicit_ports_and_stop(azurite: launcher.Azurite, tmp_path: Path) -> None:
    blob, queue, table = _free_port(), _free_port(), _free_port()
    second = launcher.start(blob_port=blob, queue_port=queue, table_port=table, log=tmp_path / "a.log")
    try:
        assert second.blob_endpoint == f"http://127.0.0.1:{blob}/devstoreaccount1"
        assert second.queue_endpoint == f"http://127.0.0.1:{queue}/devstoreaccount1"
        assert _status(second.queue_endpoint + "?comp=list") == 403
    finally:
        second.stop()
    assert second.process.poll() is not None
    with socket.socket() as sock:  # nothing listens there any more (SO_REUSEADDR: closed connections may linger)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", blob))
        sock.listen()


def test_without_node_the_installer_says_what_to_install(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PATH": str(Path(sys.executable).parent),  # python, no node nor npm
        "MAYFLY_AZURITE_DIR": str(tmp_path / "azurite"),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "mayfly.providers.aci.emulator.azurite", "install"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [f"azurite: {launcher.NODE_HINT}"]
    assert not (tmp_path / "azurite" / "node_modules").exists()
