"""The boot agent in real, hardened containers of both runtimes.

Local placement (the task dir bind-mounted), IronWorker mode, the fetch path
against an HTTP server on the host (code, payload, config, result PUT), the
agent's own errors (sha256 mismatch, unsafe zips, failed downloads) and signal
forwarding.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import stat
import zipfile
from pathlib import Path
from typing import Any

import pytest

from mayfly.runtimes import BootExit, BuiltImage

pytestmark = pytest.mark.docker

BOOT = "/usr/local/bin/mayfly-boot"
ENV = {
    "MAYFLY_TASK_ID": "t-123",
    "MAYFLY_ATTEMPT": "2",
    "MAYFLY_PAYLOAD_FILE": "/mayfly/payload.json",
    "MAYFLY_CONFIG_FILE": "/mayfly/config.json",
}
REPORT_SH = """\
echo "cwd=$(pwd) uid=$(id -u) pid=$$"
echo "task=$MAYFLY_TASK_ID attempt=$MAYFLY_ATTEMPT"
echo "payload=$(cat "$MAYFLY_PAYLOAD_FILE")"
echo "config=$(cat "$MAYFLY_CONFIG_FILE")"
echo "args=$*"
echo "iron=$PAYLOAD_FILE|$CONFIG_FILE|$TASK_ID|$TASK_DIR"
ls
"""


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def symlink_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("main.sh", "echo hi\n")
        link = zipfile.ZipInfo("passwd")
        link.create_system = 3
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    return buf.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def mayfly_dir(tmp_path: Path) -> Path:
    """A host directory laid out like the Docker provider's bind-mounted /mayfly."""
    root = tmp_path / "mayfly"
    (root / "task").mkdir(parents=True)
    (root / "task" / "main.sh").write_text(REPORT_SH)
    (root / "payload.json").write_text('{"n": 7}')
    (root / "config.json").write_text('{"key": "value"}')
    for path in (root, root / "task"):
        path.chmod(0o777)  # the task user 10001 writes result.json here
    return root


@pytest.fixture
def empty_mayfly_dir(tmp_path: Path) -> Path:
    """A writable, empty /mayfly: shows what the fetch path leaves behind."""
    root = tmp_path / "fetch"
    (root / "task").mkdir(parents=True)
    for path in (root, root / "task"):
        path.chmod(0o777)
    return root


@pytest.fixture(params=["shell", "python-3.11"])
def image(request: pytest.FixtureRequest) -> str:
    built: BuiltImage = request.getfixturevalue("shell_image" if request.param == "shell" else "python_image")
    return built.tag


def lines(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


# ------------------------------------------------------------------ local placement


def test_runs_the_command_in_the_task_dir_as_the_main_process(hardened: Any, image: str, mayfly_dir: Path) -> None:
    ran = hardened.run(image, [BOOT, "sh main.sh"], env=ENV, mayfly_dir=mayfly_dir)
    assert ran.code == 0, ran.stderr
    out = lines(ran.stdout)
    # pid 1: without a result to upload the agent execs the shell, no process stays behind.
    assert "cwd=/mayfly/task uid=10001 pid=1" in ran.stdout.splitlines()
    assert out["task"] == "t-123 attempt=2"
    assert out["payload"] == '{"n": 7}'
    assert out["config"] == '{"key": "value"}'
    assert out["args"] == ""
    assert ran.stderr == ""


def test_the_command_exit_code_and_output_pass_through(hardened: Any, image: str, mayfly_dir: Path) -> None:
    ran = hardened.run(image, [BOOT, "echo out; echo err >&2; exit 7"], env=ENV, mayfly_dir=mayfly_dir)
    assert (ran.code, ran.stdout, ran.stderr) == (7, "out\n", "err\n")


def test_ironworker_mode_sets_variables_and_appends_arguments(hardened: Any, image: str, mayfly_dir: Path) -> None:
    env = {**ENV, "MAYFLY_IRONWORKER": "1"}
    ran = hardened.run(image, [BOOT, "sh main.sh"], env=env, mayfly_dir=mayfly_dir)
    assert ran.code == 0, ran.stderr
    out = lines(ran.stdout)
    assert out["args"] == "-payload /mayfly/payload.json -config /mayfly/config.json -id t-123 -d /mayfly/task"
    assert out["iron"] == "/mayfly/payload.json|/mayfly/config.json|t-123|/mayfly/task"


def test_python_code_reads_its_payload_and_writes_a_result(
    hardened: Any, python_image: BuiltImage, mayfly_dir: Path
) -> None:
    (mayfly_dir / "task" / "main.py").write_text(
        "import json, os, sys\n"
        "payload = json.load(open(os.environ['MAYFLY_PAYLOAD_FILE']))\n"
        "print(sys.argv[1:], payload['n'] * 6)\n"
        "json.dump({'answer': payload['n'] * 6}, open('/mayfly/result.json', 'w'))\n"
    )
    env = {**ENV, "MAYFLY_IRONWORKER": "1"}
    ran = hardened.run(python_image.tag, [BOOT, "python3 main.py"], env=env, mayfly_dir=mayfly_dir)
    assert ran.code == 0, ran.stderr
    assert "'-payload', '/mayfly/payload.json'" in ran.stdout
    assert ran.stdout.strip().endswith("42")
    assert json.loads((mayfly_dir / "result.json").read_text()) == {"answer": 42}


@pytest.mark.parametrize("upload", [False, True], ids=["exec", "child"])
def test_the_command_gets_default_signal_dispositions(
    hardened: Any, shell_image: BuiltImage, mayfly_dir: Path, file_server: Any, upload: bool
) -> None:
    # Python ignores SIGPIPE; an ignored signal survives exec, so the agent must restore it.
    env = {**ENV, **({"MAYFLY_RESULT_URL": file_server.url("/result")} if upload else {})}
    ran = hardened.run(
        shell_image.tag,
        [BOOT, "grep SigIgn /proc/self/status"],
        env=env,
        mayfly_dir=mayfly_dir,
        network="bridge" if upload else "none",
    )
    assert ran.code == 0, ran.stderr
    ignored = int(ran.stdout.split()[1], 16)
    for signum in (signal.SIGPIPE, signal.SIGXFSZ):
        assert not ignored & (1 << (signum - 1)), signum


def test_no_command_is_a_usage_error(hardened: Any, shell_image: BuiltImage, mayfly_dir: Path) -> None:
    ran = hardened.run(shell_image.tag, [BOOT], env=ENV, mayfly_dir=mayfly_dir)
    assert ran.code == BootExit.USAGE
    assert ran.stderr.startswith("mayfly-boot: usage")


# ------------------------------------------------------------------ fetch path


def fetch_env(server: Any, code: bytes, *, sha: str | None = None, result: bool = True) -> dict[str, str]:
    server.files["/code.zip"] = code
    server.files["/payload"] = b'{"n": 7}'
    server.files["/config"] = b'{"key": "value"}'
    env = {
        **ENV,
        "MAYFLY_CODE_URL": server.url("/code.zip"),
        "MAYFLY_CODE_SHA256": sha or sha256(code),
        "MAYFLY_PAYLOAD_URL": server.url("/payload"),
        "MAYFLY_CONFIG_URL": server.url("/config"),
    }
    if result:
        env["MAYFLY_RESULT_URL"] = server.url("/result")
    return env


def test_fetch_unpacks_the_code_downloads_payload_and_puts_the_result(
    hardened: Any, image: str, file_server: Any
) -> None:
    write_result = b'printf \'{"seen": %s}\' "$(cat "$MAYFLY_PAYLOAD_FILE")" > /mayfly/result.json\n'
    code = zip_bytes({"main.sh": REPORT_SH.encode() + write_result, "lib/data.txt": b"data\n"})
    env = {**fetch_env(file_server, code), "MAYFLY_IRONWORKER": "1"}
    # Read-only root; /mayfly is an empty tmpfs: everything comes over HTTP.
    ran = hardened.run(image, [BOOT, "sh main.sh"], env=env, network="bridge")
    assert ran.code == 0, ran.stderr
    out = lines(ran.stdout)
    assert out["payload"] == '{"n": 7}'
    assert out["config"] == '{"key": "value"}'
    assert out["args"].startswith("-payload /mayfly/payload.json")
    assert "lib" in ran.stdout.split()
    assert "main.sh" in ran.stdout.split()
    assert json.loads(file_server.puts["/result"]) == {"seen": {"n": 7}}
    assert ran.stderr == ""


def test_fetch_keeps_the_exit_code_and_runs_python_code(
    hardened: Any, python_image: BuiltImage, file_server: Any
) -> None:
    main = b"import json\njson.dump([1, 2], open('/mayfly/result.json', 'w'))\nraise SystemExit(3)\n"
    code = zip_bytes({"main.py": main})
    ran = hardened.run(python_image.tag, [BOOT, "python3 main.py"], env=fetch_env(file_server, code), network="bridge")
    assert ran.code == 3, ran.stderr
    assert json.loads(file_server.puts["/result"]) == [1, 2]


def test_a_sha256_mismatch_stops_before_anything_is_unpacked_or_run(
    hardened: Any, shell_image: BuiltImage, file_server: Any, empty_mayfly_dir: Path
) -> None:
    code = zip_bytes({"main.sh": b"touch /mayfly/ran\n"})
    env = fetch_env(file_server, code, sha=sha256(b"something else"))
    ran = hardened.run(
        shell_image.tag, [BOOT, "sh main.sh; touch /mayfly/ran"], env=env, mayfly_dir=empty_mayfly_dir, network="bridge"
    )
    assert ran.code == BootExit.CHECKSUM
    assert ran.stderr.startswith("mayfly-boot: code package sha256 mismatch")
    assert ran.stderr.count("\n") == 1
    assert sorted(os.listdir(empty_mayfly_dir)) == ["task"]
    assert os.listdir(empty_mayfly_dir / "task") == []
    assert file_server.puts == {}


@pytest.mark.parametrize(
    "package",
    [
        pytest.param(zip_bytes({"main.sh": b"echo hi\n", "../escape.sh": b"touch /mayfly/ran\n"}), id="dotdot"),
        pytest.param(symlink_zip(), id="symlink"),
        pytest.param(b"PK\x03\x04 this is no zip", id="garbage"),
    ],
)
def test_the_agent_own_unpacker_rejects_unsafe_zips(
    hardened: Any, image: str, file_server: Any, empty_mayfly_dir: Path, package: bytes
) -> None:
    # The sha256 is right: only the unpacker inside the container stands in the way (test-plan item 21).
    env = fetch_env(file_server, package)
    ran = hardened.run(
        image, [BOOT, "sh main.sh; touch /mayfly/ran"], env=env, mayfly_dir=empty_mayfly_dir, network="bridge"
    )
    assert ran.code == BootExit.ARCHIVE, ran.stderr
    assert ran.stderr.startswith("mayfly-boot: code package rejected:")
    assert ran.stdout == ""
    assert sorted(os.listdir(empty_mayfly_dir)) == ["task"]
    assert os.listdir(empty_mayfly_dir / "task") == []


def test_a_failed_download_is_not_retried_on_404_and_nothing_runs(
    hardened: Any, shell_image: BuiltImage, file_server: Any, empty_mayfly_dir: Path
) -> None:
    env = fetch_env(file_server, zip_bytes({"main.sh": b"echo hi\n"}))
    env["MAYFLY_PAYLOAD_URL"] = file_server.url("/missing")
    ran = hardened.run(
        shell_image.tag, [BOOT, "touch /mayfly/ran"], env=env, mayfly_dir=empty_mayfly_dir, network="bridge"
    )
    assert ran.code == BootExit.DOWNLOAD
    assert ran.stderr == "mayfly-boot: download of the payload failed: HTTP 404 Not Found\n"
    assert file_server.gets.count("/missing") == 1
    assert not (empty_mayfly_dir / "ran").exists()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MAYFLY_CODE_URL", "file:///etc/passwd"),
        ("MAYFLY_CODE_SHA256", "not-a-sha"),
        ("MAYFLY_RESULT_URL", "ftp://example.com/result"),
    ],
)
def test_malformed_variables_are_usage_errors(
    hardened: Any, shell_image: BuiltImage, file_server: Any, variable: str, value: str
) -> None:
    env = {**fetch_env(file_server, zip_bytes({"main.sh": b""})), variable: value}
    ran = hardened.run(shell_image.tag, [BOOT, "echo ran"], env=env, network="bridge")
    assert ran.code == BootExit.USAGE
    assert variable in ran.stderr
    assert ran.stdout == ""


@pytest.mark.parametrize(("command_code", "expected"), [(0, BootExit.RESULT_UPLOAD), (3, 3)])
def test_a_result_over_the_cap_is_not_uploaded(
    hardened: Any, shell_image: BuiltImage, file_server: Any, command_code: int, expected: int
) -> None:
    env = {**fetch_env(file_server, zip_bytes({"main.sh": b""})), "MAYFLY_RESULT_MAX_BYTES": "10"}
    command = f"echo '[1, 2, 3, 4, 5, 6, 7, 8]' > /mayfly/result.json; exit {command_code}"
    ran = hardened.run(shell_image.tag, [BOOT, command], env=env, network="bridge")
    assert ran.code == expected
    assert "over the 10-byte cap" in ran.stderr
    assert file_server.puts == {}


# ------------------------------------------------------------------ signals


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        # Forwarded to the shell, whose trap decides the exit code.
        ("trap 'echo got TERM; exit 42' TERM; echo started; sleep 1000 & wait", 42),
        # The shell execs sleep, which dies of the forwarded SIGTERM: 128 + 15.
        ("echo started; exec sleep 1000", 143),
    ],
    ids=["trapped", "killed"],
)
def test_sigterm_is_forwarded_to_the_command_and_no_result_is_sent(
    hardened: Any, shell_image: BuiltImage, file_server: Any, command: str, expected: int
) -> None:
    env = fetch_env(file_server, zip_bytes({"main.sh": b""}))
    container = hardened.start(
        shell_image.tag, [BOOT, f"echo '{{}}' > /mayfly/result.json; {command}"], env=env, network="bridge"
    )
    try:
        hardened.wait_for_output(container, "started")
        # Were SIGTERM not forwarded, docker would SIGKILL after the grace period: 137.
        container.stop(timeout=60)
    finally:
        ran = hardened.finish(container)
    assert ran.code == expected, ran.stderr
    assert file_server.puts == {}
