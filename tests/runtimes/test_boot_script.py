"""The boot agent's script as a module on the host: exit codes and argument building."""

from __future__ import annotations

import base64
import re
import stat
import types
from importlib.resources import files
from pathlib import Path

import pytest

from mayfly.runtimes import BootExit
from mayfly.runtimes.exitcodes import describe


@pytest.fixture(scope="module")
def boot() -> types.ModuleType:
    """The script loaded without running it (its ``__main__`` block stays idle)."""
    source = (files("mayfly.runtimes") / "boot" / "mayfly-boot").read_text()
    module = types.ModuleType("mayfly_boot")
    exec(compile(source, "mayfly-boot", "exec"), module.__dict__)
    return module


def test_exit_codes_match_the_python_mirror_and_the_docstring(boot: types.ModuleType) -> None:
    script = {
        "USAGE": boot.EXIT_USAGE,
        "RESULT_UPLOAD": boot.EXIT_RESULT,
        "DOWNLOAD": boot.EXIT_DOWNLOAD,
        "CHECKSUM": boot.EXIT_CHECKSUM,
        "ARCHIVE": boot.EXIT_ARCHIVE,
        "INTERNAL": boot.EXIT_INTERNAL,
        "NO_SHELL": boot.EXIT_NO_SHELL,
    }
    assert script == {code.name: code.value for code in BootExit}
    documented = {int(n) for n in re.findall(r"^ {4}(\d{3}) ", boot.__doc__ or "", re.MULTILINE)}
    assert documented == {code.value for code in BootExit}
    assert all(describe(code) for code in BootExit)
    assert describe(0) is None
    assert describe(42) is None


def test_the_shebang_is_a_placeholder_the_image_setup_replaces() -> None:
    first = (files("mayfly.runtimes") / "boot" / "mayfly-boot").read_text().splitlines()[0]
    assert first == "#!/usr/bin/env python3"


def test_plain_mode_runs_the_command_string(boot: types.ModuleType) -> None:
    env = {"MAYFLY_TASK_ID": "t1"}
    assert boot.shell_argv("python3 main.py", env) == ["/bin/sh", "-c", "python3 main.py"]
    assert env == {"MAYFLY_TASK_ID": "t1"}


def test_ironworker_mode_appends_arguments_and_sets_variables(boot: types.ModuleType) -> None:
    env = {"MAYFLY_IRONWORKER": "1", "MAYFLY_TASK_ID": "t1", "MAYFLY_PAYLOAD_FILE": "/mayfly/p.json"}
    argv = boot.shell_argv("ruby worker.rb", env)
    assert argv == [
        "/bin/sh",
        "-c",
        'ruby worker.rb "$@"',
        "mayfly",
        "-payload",
        "/mayfly/p.json",
        "-config",
        "/mayfly/config.json",
        "-id",
        "t1",
        "-d",
        "/mayfly/task",
    ]
    assert env["PAYLOAD_FILE"] == "/mayfly/p.json"
    assert env["CONFIG_FILE"] == "/mayfly/config.json"
    assert env["TASK_ID"] == "t1"
    assert env["TASK_DIR"] == "/mayfly/task"


def test_only_http_urls_are_accepted(boot: types.ModuleType) -> None:
    assert boot._check_url("X", "https://bucket.example/key?sig=1") == "https://bucket.example/key?sig=1"
    for url in ("file:///etc/passwd", "ftp://x/y", ""):
        with pytest.raises(boot.BootError) as failure:
            boot._check_url("X", url)
        assert failure.value.code == BootExit.USAGE


def test_secret_variables_become_0400_files_and_leave_the_environment(boot: types.ModuleType, tmp_path: Path) -> None:
    """ECS sets MAYFLY_SECRET_<NAME> (base64) from SSM; the command sees only the files (issue 13 item 6)."""
    folder = tmp_path / "secrets"
    env = {"MAYFLY_SECRETS_DIR": str(folder), "MAYFLY_SECRET_DB": base64.b64encode(b"pw\x00x").decode(), "A": "1"}
    boot.place_secrets(env)
    assert env == {"MAYFLY_SECRETS_DIR": str(folder), "A": "1"}
    assert (folder / "DB").read_bytes() == b"pw\x00x"
    assert stat.S_IMODE((folder / "DB").stat().st_mode) == 0o400
    assert stat.S_IMODE(folder.stat().st_mode) == 0o500
    with pytest.raises(boot.BootError) as bad:
        boot.place_secrets({"MAYFLY_SECRETS_DIR": str(tmp_path / "other"), "MAYFLY_SECRET_X": "not base64!"})
    assert (bad.value.code, str(bad.value)) == (boot.EXIT_USAGE, "MAYFLY_SECRET_X is not base64")
    folder.chmod(0o700)
