"""A real ``mayfly server`` on 127.0.0.1 with a project and token, and IronWorker's own Python client pointed at it."""

from __future__ import annotations

import importlib
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from iron_worker import IronWorker

#: What ``import iron_worker`` needs inside the container: the client and its dependencies, pure Python only.
IRON_WORKER_MODULES = (
    "iron_worker",
    "iron_core",
    "requests",
    "urllib3",
    "idna",
    "charset_normalizer",
    "certifi",
    "dateutil",
    "six",
)

#: An IronWorker worker program, unchanged: it reads its payload and task id the IronWorker way.
WORKER = """\
import json

from iron_worker import IronWorker

print("payload:", json.dumps(IronWorker.payload()))
print("task:", IronWorker.task_id())
"""


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, runtime_images: dict[str, str], start_server: Any
) -> Iterator[Any]:
    """``mayfly server --host 127.0.0.1 --port P`` on a fresh home with project ``iw`` and a token for it."""
    with start_server(tmp_path_factory.mktemp("ironworker"), "iw") as srv:
        yield srv


@pytest.fixture(scope="module")
def iw(server: Any) -> IronWorker:
    """IronWorker's Python client, configured for the server by its own arguments."""
    return IronWorker(
        token=server.token,
        project_id=server.project_id,
        host="127.0.0.1",
        port=server.port,
        protocol="http",
        api_version=2,
    )


def _add_module(zf: zipfile.ZipFile, name: str) -> None:
    module = importlib.import_module(name)
    path = Path(str(module.__file__))
    if path.name != "__init__.py":
        zf.write(path, path.name)
        return
    for file in sorted(path.parent.rglob("*.py")):
        if "__pycache__" not in file.parts:
            zf.write(file, f"{name}/{file.relative_to(path.parent).as_posix()}")


@pytest.fixture(scope="module")
def hello_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The worker program plus ``iron_worker`` and what it imports, as a worker shipped them to IronWorker."""
    path = tmp_path_factory.mktemp("code") / "hello.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("worker.py", WORKER)
        for module in IRON_WORKER_MODULES:
            _add_module(zf, module)
    return path
