"""The offline-built runtime images: contents, users, labels and tags."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mayfly.runtimes import BuiltImage, get_runtime, image_status

pytestmark = pytest.mark.docker

BOOT = "/usr/local/bin/mayfly-boot"


def test_python_runtime_runs_python_311_with_a_working_ssl_setup(hardened: Any, python_image: BuiltImage) -> None:
    script = (
        "import json, os, ssl, sqlite3, sys, zoneinfo; "
        "print(json.dumps({'version': list(sys.version_info[:2]), 'uid': os.getuid(), 'cwd': os.getcwd(), "
        "'cas': ssl.create_default_context().cert_store_stats()['x509_ca'], "
        "'tz': str(zoneinfo.ZoneInfo('Europe/Paris'))}))"
    )
    ran = hardened.run(python_image.tag, ["python3", "-c", script], writable_mayfly=False)
    assert ran.code == 0, ran.stderr
    info = json.loads(ran.stdout)
    assert info["version"] == [3, 11]
    assert (info["uid"], info["cwd"]) == (10001, "/mayfly/task")
    assert info["cas"] > 100
    assert info["tz"] == "Europe/Paris"
    assert ran.stderr == ""  # a read-only root and a byte-compiled stdlib: nothing to complain about


@pytest.mark.parametrize("which", ["shell_image", "python_image"])
def test_the_image_has_sh_the_task_user_and_its_directories(
    hardened: Any, request: pytest.FixtureRequest, which: str
) -> None:
    image: BuiltImage = request.getfixturevalue(which)
    command = (
        "test -x /bin/sh && echo sh; id -u; id -un; stat -c '%u %a' /mayfly /mayfly/task /tmp /usr/bin; "
        "test -s /etc/ssl/certs/ca-certificates.crt && echo bundle; head -1 " + BOOT
    )
    ran = hardened.run(image.tag, ["/bin/sh", "-c", command], writable_mayfly=False)
    assert ran.code == 0, ran.stderr
    assert ran.stdout.splitlines() == [
        "sh",
        "10001",
        "mayfly",
        "10001 755",
        "10001 755",
        "0 1777",
        "0 755",
        "bundle",
        "#!/usr/bin/python3.11 -IS",
    ]


def test_the_shell_runtime_has_no_python_for_tasks_but_one_for_the_agent(
    hardened: Any, shell_image: BuiltImage
) -> None:
    probe = (
        "import sys; sys.path.insert(0, '/usr/local/lib/mayfly'); "
        "import hashlib, http.client, ssl, tempfile, urllib.request, mayfly_archive; "
        "print(len(ssl.create_default_context().get_ca_certs()) > 0)"
    )
    command = f'command -v python3 || /usr/bin/python3.11 -IS -c "{probe}"'
    ran = hardened.run(shell_image.tag, ["/bin/sh", "-c", command], writable_mayfly=False)
    assert (ran.code, ran.stdout) == (0, "True\n"), ran.stderr


@pytest.mark.parametrize(("which", "name"), [("shell_image", "shell"), ("python_image", "python-3.11")])
def test_image_status_tags_and_labels(
    docker_client: Any, request: pytest.FixtureRequest, which: str, name: str
) -> None:
    request.getfixturevalue(which)
    runtime = get_runtime(name)
    # Compared with the engine's view, not the fixture's: another test session may rebuild meanwhile.
    status = image_status(runtime, docker_client)
    image = docker_client.images.get(runtime.image)
    assert status is not None
    assert status.tag == runtime.image == f"mayfly/runtime-{name}:1"
    assert status.image_id == image.id == docker_client.images.get(runtime.latest).id
    assert status.size == image.attrs["Size"] > 0
    config = image.attrs["Config"]
    assert config["User"] == "10001:10001"
    assert config["WorkingDir"] == "/mayfly/task"
    assert config["Labels"]["mayfly.runtime"] == name
    assert config["Labels"]["mayfly.boot"] == BOOT
    assert len(config["Labels"]["mayfly.layer.sha256"]) == 64
