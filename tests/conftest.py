"""Fixtures shared by the whole suite: a fresh MAYFLY_HOME, a Docker client, a tiny busybox image, real servers."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from mayfly.cli.context import resolve_runtime
from mayfly.core.app import Mayfly
from mayfly.core.config import Home
from mayfly.testing.postgres import TempCluster, find_bin

BUSYBOX = shutil.which("busybox") or "/bin/busybox"
TEST_IMAGE = "mayfly-test/busybox:latest"
TASK_UID = 10001


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Path:
    """A fresh, empty MAYFLY_HOME for this test.

    Its store is the home's SQLite file; with ``MAYFLY_TEST_DATABASE=postgresql`` in the
    environment, a fresh PostgreSQL database instead (to run any test on both dialects).
    """
    root = tmp_path / "home"
    monkeypatch.setenv("MAYFLY_HOME", str(root))
    monkeypatch.delenv("MAYFLY_DATABASE_URL", raising=False)
    if os.environ.get("MAYFLY_TEST_DATABASE") == "postgresql":
        monkeypatch.setenv("MAYFLY_DATABASE_URL", request.getfixturevalue("pg_url"))
    return root


# ---------------------------------------------------------------- one PostgreSQL server per session

#: The database every test database is copied from: migrated to the newest schema once per session.
PG_TEMPLATE = "mayfly_template"


@pytest.fixture(scope="session")
def postgres() -> Iterator[TempCluster]:
    """One PostgreSQL server for the whole session (initdb into a temp dir, a private port).

    Skips only when PostgreSQL is not installed (``scripts/bootstrap --test`` installs it).
    """
    from mayfly.core.store import Store

    bin_dir = find_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (initdb/pg_ctl not found; scripts/bootstrap --test installs it)")
    cluster = TempCluster(bin_dir).start()
    try:
        store = Store(cluster.create_database(PG_TEMPLATE), migrate=False)
        store.migrate()
        store.close()
        yield cluster
    finally:
        cluster.stop()


_pg_databases = iter(range(1, 1_000_000))


@pytest.fixture
def pg_url(postgres: TempCluster) -> str:
    """The URL of a fresh PostgreSQL database of this test's own, at the newest schema."""
    return postgres.create_database(f"t{os.getpid()}_{next(_pg_databases)}", template=PG_TEMPLATE)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store's URL, once on each dialect: the home's SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'mayfly.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture(scope="session")
def docker_client():  # type: ignore[no-untyped-def]
    """A client of the real Docker engine; the suite fails loudly when none answers."""
    import docker

    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # the engine is a hard requirement of these tests
        pytest.fail(f"Docker engine not reachable ({exc}); .ci/run starts one")
    yield client
    client.close()


def _busybox_rootfs_tar() -> bytes:
    """A rootfs with busybox and its applets, a task user 10001 and /mayfly owned by it."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:

        def add_dir(name: str, mode: int = 0o755, uid: int = 0) -> None:
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            info.mode = mode
            info.uid = info.gid = uid
            tar.addfile(info)

        def add_file(name: str, data: bytes, mode: int = 0o644) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = mode
            tar.addfile(info, io.BytesIO(data))

        for d in ("bin", "etc", "proc", "sys", "dev", "usr", "usr/bin"):
            add_dir(d)
        add_dir("tmp", 0o1777)
        add_dir("mayfly", 0o755, TASK_UID)
        add_dir("mayfly/task", 0o755, TASK_UID)
        add_file("bin/busybox", Path(BUSYBOX).read_bytes(), 0o755)
        for applet in (
            "sh",
            "echo",
            "cat",
            "sleep",
            "ls",
            "id",
            "head",
            "yes",
            "dd",
            "seq",
            "env",
            "true",
            "false",
            "printf",
            "kill",
            "touch",
            "rm",
            "mkdir",
            "wc",
            "sha256sum",
            "test",
            "[",
        ):
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type = tarfile.SYMTYPE
            info.linkname = "busybox"
            tar.addfile(info)
        add_file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nmayfly:x:10001:10001:task:/mayfly/task:/bin/sh\n")
        add_file("etc/group", b"root:x:0:\nmayfly:x:10001:\n")
    return buf.getvalue()


@pytest.fixture(scope="session")
def busybox_rootfs() -> bytes:
    """The rootfs tar of the busybox test image, to import into an engine of a test's own."""
    return _busybox_rootfs_tar()


@pytest.fixture(scope="session")
def busybox_image(docker_client) -> str:  # type: ignore[no-untyped-def]
    """A 2 MB busybox image (no registry needed), tagged TEST_IMAGE."""
    repo, tag = TEST_IMAGE.rsplit(":", 1)
    docker_client.api.import_image_from_data(
        _busybox_rootfs_tar(),
        repository=repo,
        tag=tag,
        changes=["USER 10001:10001", "WORKDIR /mayfly/task", "ENV PATH=/bin:/usr/bin"],
    )
    return TEST_IMAGE


def pytest_configure(config: pytest.Config) -> None:
    # Containers and state of the suite never mix with a developer's own home.
    os.environ.setdefault("MAYFLY_HOME", "/nonexistent-mayfly-home-set-by-tests")


def _build_runtimes(docker_client, names: tuple[str, ...]) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Build runtimes offline (the .debs cached across sessions in MAYFLY_TEST_CACHE); name -> image tag."""
    from mayfly.runtimes import build, get_runtime

    cache = Path(os.environ.get("MAYFLY_TEST_CACHE", Path.home() / ".cache" / "mayfly-tests"))
    cache.mkdir(parents=True, exist_ok=True)
    return {name: build(get_runtime(name), docker_client, cache).tag for name in names}


@pytest.fixture(scope="session")
def runtime_images(docker_client) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """The default runtimes (shell, python-3.11), built offline once per session; name -> image tag."""
    return _build_runtimes(docker_client, ("python-3.11", "shell"))


@pytest.fixture(scope="session")
def language_images(docker_client, runtime_images: dict[str, str]) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Every shipped runtime, node-18 and ruby-3.1 too: built only when a test asks; name -> image tag."""
    from mayfly.runtimes import catalog

    missing = tuple(rt.name for rt in catalog() if rt.name not in runtime_images)
    return {**runtime_images, **_build_runtimes(docker_client, missing)}


# ---------------------------------------------------------------- a real mayfly server


@dataclass(frozen=True)
class Server:
    """A running ``mayfly server`` and the credentials of one project on it."""

    url: str
    port: int
    project_id: str
    token: str
    home: Path

    def path(self, rest: str) -> str:
        """The URL of an IronWorker API path of the project, e.g. ``path("tasks")``."""
        return f"{self.url}/2/projects/{self.project_id}/{rest}"

    @property
    def auth(self) -> dict[str, str]:
        """IronWorker's header; the native API takes it as well as ``Bearer``."""
        return {"Authorization": f"OAuth {self.token}"}

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_until_serving(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"mayfly server exited with {proc.returncode}:\n{log.read_text()}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    pytest.fail(f"mayfly server did not answer on {url}:\n{log.read_text()}")


@contextmanager
def running_server(
    root: Path, project: str, env: dict[str, str] | None = None, args: Sequence[str] = ()
) -> Iterator[Server]:
    """``mayfly server --host 127.0.0.1 --port P [args]`` on a fresh home under ``root``, with ``project`` and a token.

    Its stdout and stderr go to ``root / "server.log"``.
    """
    home = root / "home"
    mf = Mayfly(Home(home), resolve_runtime)
    proj = mf.projects.ensure(project)
    _, token = mf.tokens.create(proj.id, name=f"{project}-tests")
    mf.close()
    port = free_port()
    penv = {**os.environ, "MAYFLY_HOME": str(home), **(env or {})}
    penv.pop("MAYFLY_DATABASE_URL", None)
    penv.pop("MAYFLY_URL", None)
    log = root / "server.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mayfly.cli", "server", "--host", "127.0.0.1", "--port", str(port), *args],
            env=penv,
            stdout=err,
            stderr=err,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(proc, url, log)
        yield Server(url, port, proj.id, token, home)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture(scope="session")
def start_server() -> Callable[..., AbstractContextManager[Server]]:
    """:func:`running_server` (conftest modules are not importable by name)."""
    return running_server


def _stopped(proc: subprocess.Popen[bytes]) -> bool:
    """True once the process is stopped (SIGSTOP): its state in /proc is T."""
    stat = Path(f"/proc/{proc.pid}/stat").read_text()
    return stat[stat.rindex(")") + 2] == "T"


@pytest.fixture(scope="session")
def process_stopped() -> Callable[[subprocess.Popen[bytes]], bool]:
    """Whether a child process is stopped (SIGSTOP, or a ``NAME:stop`` fault point reached)."""
    return _stopped


# ---------------------------------------------------------------- the built wheel


@pytest.fixture(scope="session")
def built_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built once per session with ``python -m build --wheel``."""
    out = tmp_path_factory.mktemp("dist")
    root = Path(__file__).resolve().parent.parent
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(root)], check=True, capture_output=True
    )
    (path,) = out.glob("mayfly_tasks-*.whl")
    return path


# ---------------------------------------------------------------- container starts, counted on the engine


class ContainerStarts:
    """This home's container starts as the engine reports them (``docker events``, streamed to a file)."""

    def __init__(self, home_id: str, out: Path) -> None:
        self.out = out
        with out.open("wb") as fh:
            self.proc = subprocess.Popen(
                [
                    *("docker", "events", "--format", "{{json .}}"),
                    *("--filter", f"label=mayfly.home={home_id}", "--filter", "type=container"),
                    *("--filter", "event=start"),
                ],
                stdout=fh,
                stderr=subprocess.DEVNULL,
            )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def counts(self) -> Counter[str]:
        """Starts by container name (``mayfly-<task>-<attempt>``), read after :meth:`stop`."""
        self.stop()
        lines = [line for line in self.out.read_text().splitlines() if line]
        return Counter(json.loads(line)["Actor"]["Attributes"]["name"] for line in lines)


@pytest.fixture
def container_starts(tmp_path: Path) -> Iterator[Callable[[str], ContainerStarts]]:
    """Start counting a home's container starts: ``starts = container_starts(home_id)``; ``starts.counts()``."""
    started: list[ContainerStarts] = []

    def start(home_id: str) -> ContainerStarts:
        watcher = ContainerStarts(home_id, tmp_path / f"docker-events-{len(started)}.jsonl")
        started.append(watcher)
        return watcher

    yield start
    for watcher in started:
        watcher.stop()
