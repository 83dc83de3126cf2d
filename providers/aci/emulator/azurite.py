"""Azurite, Microsoft's Azure Storage emulator, installed from npm and started for the local Azure target.

Azurite serves the Blob and Queue APIs (and Table, unused) with the well-known development
account ``devstoreaccount1``; it checks Shared Key and SAS signatures and SAS expiry like
Azure does. Mayfly pins ``azurite@3.35.0`` (:data:`AZURITE_VERSION`): 3.37 needs Node 22,
and Node 20 is what current Debian/Ubuntu machines and the CI have.

Where it is installed (:func:`install_dir`): ``$MAYFLY_AZURITE_DIR`` when set; else the
``.cache/azurite/`` folder of the source checkout Mayfly runs from (git-ignored; filled by
``scripts/bootstrap --test``, so tests need no network); else ``~/.cache/mayfly/azurite``.
A folder holding the pinned version is reused; otherwise ``npm install`` fills it (about
190 MB, under a minute). Without ``node`` and ``npm`` the launcher raises one
:class:`~mayfly.core.errors.MissingDependency` line naming what to install.

It always starts with ``--silent --disableTelemetry --skipApiVersionCheck
--inMemoryPersistence`` (without ``--skipApiVersionCheck`` every current Azure SDK call is
refused for its too-new API version; in-memory: nothing is left on disk) and explicit hosts
and ports; a port of 0 lets the system pick a free one, read back from Azurite's own
"listening at" lines. :func:`start` returns once both services answer HTTP.

Run ``python -m mayfly.providers.aci.emulator.azurite install`` to install it ahead of time.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mayfly.core.config import AZURITE_DIR_ENV
from mayfly.core.errors import InvalidInput, MissingDependency, Unavailable

#: The Azurite release Mayfly installs (3.37 and later need Node 22).
AZURITE_VERSION = "3.35.0"
#: Azurite's well-known development account and its key (public, documented by Microsoft:
#: https://learn.microsoft.com/azure/storage/common/storage-use-azurite#well-known-storage-account-and-key).
ACCOUNT_NAME = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
#: Flags every start passes (see the module docstring).
FLAGS = ("--silent", "--disableTelemetry", "--skipApiVersionCheck", "--inMemoryPersistence")
NODE_HINT = (
    "Azurite (the Azure Storage emulator) needs Node.js 20 and npm: install them "
    "(Debian/Ubuntu: apt-get install nodejs npm) and run again"
)

_LISTENING = re.compile(r"Azurite (Blob|Queue|Table) service is successfully listening at (https?://\S+)")


def _checkout_root() -> Path | None:
    """The source checkout this module runs from (a folder with Mayfly's pyproject.toml above it), if any."""
    for folder in Path(os.path.realpath(__file__)).parents:
        project = folder / "pyproject.toml"
        if project.is_file() and 'name = "mayfly-tasks"' in project.read_text(errors="replace"):
            return folder
    return None


def install_dir() -> Path:
    """Where Azurite is (or will be) installed; see the module docstring."""
    configured = os.environ.get(AZURITE_DIR_ENV, "").strip()
    if configured:
        return Path(configured).expanduser()
    root = _checkout_root()
    if root is not None:
        return root / ".cache" / "azurite"
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "mayfly" / "azurite"


def installed_version(directory: Path) -> str | None:
    """The Azurite version installed in ``directory``, None when there is none."""
    try:
        meta = json.loads((directory / "node_modules" / "azurite" / "package.json").read_text())
    except (OSError, ValueError):
        return None
    version = meta.get("version")
    return str(version) if version else None


def _entry_point(directory: Path) -> Path:
    return directory / "node_modules" / "azurite" / "dist" / "src" / "azurite.js"


@contextlib.contextmanager
def _install_lock(directory: Path) -> Iterator[None]:
    """One installer at a time per folder (two test sessions may start together)."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_installed(directory: Path | None = None) -> Path:
    """Install the pinned Azurite into ``directory`` (default :func:`install_dir`) unless it is there; its script.

    Raises MissingDependency when node or npm is missing, Unavailable when npm fails (no network).
    """
    directory = directory or install_dir()
    if shutil.which("node") is None:
        raise MissingDependency(NODE_HINT)
    if installed_version(directory) == AZURITE_VERSION and _entry_point(directory).is_file():
        return _entry_point(directory)
    npm = shutil.which("npm")
    if npm is None:
        raise MissingDependency(NODE_HINT)
    with _install_lock(directory):
        if installed_version(directory) != AZURITE_VERSION or not _entry_point(directory).is_file():
            command = [
                npm,
                "install",
                "--prefix",
                str(directory),
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                f"azurite@{AZURITE_VERSION}",
            ]
            proc = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
            if proc.returncode != 0 or not _entry_point(directory).is_file():
                last = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
                raise Unavailable(f"installing azurite@{AZURITE_VERSION} into {directory} with npm failed: {last}")
    return _entry_point(directory)


@dataclass
class Azurite:
    """A running Azurite: its blob and queue service URLs (with the account path) and account credentials."""

    blob_endpoint: str
    queue_endpoint: str
    process: subprocess.Popen[bytes]
    log: Path
    account_name: str = ACCOUNT_NAME
    account_key: str = ACCOUNT_KEY
    _scratch: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    @property
    def connection_string(self) -> str:
        """An Azure Storage connection string for both services (what the SDKs' ``from_connection_string`` take)."""
        return (
            f"DefaultEndpointsProtocol=http;AccountName={self.account_name};AccountKey={self.account_key};"
            f"BlobEndpoint={self.blob_endpoint};QueueEndpoint={self.queue_endpoint};"
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Stop Azurite (SIGTERM to its process group, then SIGKILL); its in-memory data is gone."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=timeout)
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None

    def __enter__(self) -> Azurite:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _answers(url: str) -> bool:
    """True when something answers HTTP at ``url`` (an error status counts: Azurite refuses unsigned calls)."""
    context = ssl._create_unverified_context() if url.startswith("https:") else None  # only "is it up?"
    try:
        with urllib.request.urlopen(url, timeout=2, context=context):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def start(
    *,
    host: str = "127.0.0.1",
    blob_port: int = 0,
    queue_port: int = 0,
    table_port: int = 0,
    directory: Path | None = None,
    log: Path | None = None,
    memory_limit_mb: int | None = None,
    tls: tuple[Path, Path] | None = None,
    oauth: bool = False,
    timeout: float = 60.0,
) -> Azurite:
    """Start Azurite (installing it first if needed) and return once its blob and queue services answer.

    A port of 0 lets the system choose. ``log`` receives Azurite's output (a temporary file when
    None). ``memory_limit_mb`` caps its in-memory blob store (Azurite's default: half the RAM).
    ``tls`` (certificate and key PEM files) serves HTTPS; ``oauth`` (needs ``tls``) also accepts
    Microsoft Entra bearer tokens, checking their audience, issuer and lifetime but not their
    signature, and so serves user delegation keys and their SAS.
    Raises MissingDependency without node/npm, Unavailable when it does not start within ``timeout``.
    """
    script = ensure_installed(directory)
    node = shutil.which("node")
    if node is None:
        raise MissingDependency(NODE_HINT)
    scratch = tempfile.TemporaryDirectory(prefix="mayfly-azurite-")
    if log is None:
        log = Path(scratch.name) / "azurite.log"
    command = [
        node,
        str(script),
        *FLAGS,
        "--blobHost",
        host,
        "--blobPort",
        str(blob_port),
        "--queueHost",
        host,
        "--queuePort",
        str(queue_port),
        "--tableHost",
        host,
        "--tablePort",
        str(table_port),
    ]
    if memory_limit_mb is not None:
        command += ["--extentMemoryLimit", str(memory_limit_mb)]
    if tls is not None:
        command += ["--cert", str(tls[0]), "--key", str(tls[1])]
    if oauth:
        if tls is None:
            raise InvalidInput("Azurite accepts OAuth tokens only over HTTPS: pass tls=(certificate, key)")
        command += ["--oauth", "basic"]
    with log.open("wb") as out:
        # Its own session: stop() ends Azurite and nothing else; the cwd is scratch space, never the caller's.
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, cwd=scratch.name, start_new_session=True
        )
    running = Azurite("", "", process, log, _scratch=scratch)
    try:
        blob, queue = _wait_listening(process, log, timeout)
        running.blob_endpoint = f"{blob}/{ACCOUNT_NAME}"
        running.queue_endpoint = f"{queue}/{ACCOUNT_NAME}"
        deadline = time.monotonic() + timeout
        while not (_answers(running.blob_endpoint) and _answers(running.queue_endpoint)):
            if process.poll() is not None or time.monotonic() > deadline:
                raise Unavailable(f"Azurite does not answer at {blob} and {queue}: {_tail(log)}")
            time.sleep(0.1)
    except BaseException:
        running.stop()
        raise
    return running


def _wait_listening(process: subprocess.Popen[bytes], log: Path, timeout: float) -> tuple[str, str]:
    """The blob and queue base URLs Azurite reports listening at."""
    deadline = time.monotonic() + timeout
    while True:
        found = dict(_LISTENING.findall(log.read_text(errors="replace")))
        if "Blob" in found and "Queue" in found:
            return found["Blob"].rstrip("/"), found["Queue"].rstrip("/")
        if process.poll() is not None:
            raise Unavailable(f"Azurite exited with status {process.returncode}: {_tail(log)}")
        if time.monotonic() > deadline:
            raise Unavailable(f"Azurite did not start within {timeout:.0f} s: {_tail(log)}")
        time.sleep(0.1)


def _tail(log: Path, lines: int = 5) -> str:
    text = log.read_text(errors="replace").strip().splitlines()
    return " | ".join(text[-lines:]) or "no output"


def main(argv: list[str] | None = None) -> int:
    """``python -m mayfly.providers.aci.emulator.azurite install``: install the pinned Azurite (bootstrap)."""
    args = sys.argv[1:] if argv is None else argv
    if args != ["install"]:
        print("usage: python -m mayfly.providers.aci.emulator.azurite install", file=sys.stderr)
        return 2
    try:
        script = ensure_installed()
    except (MissingDependency, Unavailable) as exc:
        print(f"azurite: {exc}", file=sys.stderr)
        return 1
    print(f"azurite {AZURITE_VERSION}: {script.parents[4]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
