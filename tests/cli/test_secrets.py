"""Secret values through the CLI on a local home: set, kept, dropped, never shown, encrypted at rest.

Issue 13 item 6. Every command's output and every file of the home is searched
for the values; only their names may appear.
"""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from typer.testing import CliRunner, Result

from mayfly.cli.app import app

runner = CliRunner()

VALUE = "pw-9f3c1d-not-for-eyes"
FILE_VALUE = b"-----BEGIN KEY-----\nline two 7a1e\n-----END KEY-----\n"
TASK_VALUE = "task-only-41b7e2"


def _run(*args: str, code: int = 0) -> Result:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, (result.stdout, result.stderr)
    for text in (result.stdout, result.stderr):
        for needle in (VALUE, TASK_VALUE, "7a1e"):
            assert needle not in text
    return result


def _home_holds(home: Path, *needles: bytes) -> list[str]:
    """Files under the home whose bytes contain any of ``needles``."""
    found = []
    for path in home.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            if any(n in data for n in needles):
                found.append(str(path.relative_to(home)))
    return found


def test_push_keep_add_drop_and_never_show(home: Path, tmp_path: Path) -> None:
    pem = tmp_path / "key.pem"
    pem.write_bytes(FILE_VALUE)
    _run(
        "code", "register", "mayfly-test/busybox:latest", "--name", "img", "--command", "true",
        "--secret", f"DB_PASSWORD={VALUE}", "--secret-file", f"TLS_KEY={pem}",
    )  # fmt: skip
    shown = json.loads(_run("code", "show", "img", "--json").stdout)
    assert shown["latest"]["secrets"] == ["DB_PASSWORD", "TLS_KEY"]
    assert "DB_PASSWORD (set), TLS_KEY (set)" in _run("code", "show", "img").stdout

    # A re-push without secrets keeps them; --secret adds or replaces by name; --no-secrets drops the rest.
    _run("code", "register", "mayfly-test/busybox:latest", "--name", "img", "--retries", "1")
    assert json.loads(_run("code", "show", "img", "--json").stdout)["latest"]["secrets"] == ["DB_PASSWORD", "TLS_KEY"]
    _run("code", "register", "mayfly-test/busybox:latest", "--name", "img", "--secret", "API_TOKEN=x")
    assert json.loads(_run("code", "show", "img", "--json").stdout)["latest"]["secrets"] == [
        "API_TOKEN",
        "DB_PASSWORD",
        "TLS_KEY",
    ]
    _run("code", "register", "mayfly-test/busybox:latest", "--name", "img", "--no-secrets", "--secret", "ONLY=1")
    revs = json.loads(_run("code", "revisions", "img", "--json").stdout)["revisions"]
    both = ["DB_PASSWORD", "TLS_KEY"]
    assert [r["secrets"] for r in revs] == [["ONLY"], ["API_TOKEN", *both], both, both]

    task = json.loads(_run("task", "queue", "img", "--delay", "3600", "--secret", f"T={TASK_VALUE}", "--json").stdout)
    assert task["secrets"] == ["T"]
    assert "T (set)" in _run("task", "show", task["id"]).stdout
    _run("task", "list", "--json")

    # The key lives outside the store, private to its owner; the store and queues hold only ciphertext.
    key = home / "keys" / "secret.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    Fernet(key.read_text().strip().encode())
    assert _home_holds(home, VALUE.encode(), TASK_VALUE.encode(), b"7a1e") == []


def test_bad_secrets_are_refused_in_one_line_without_the_value(home: Path) -> None:
    bad = _run("code", "register", "mayfly-test/busybox:latest", "--name", "img", "--secret", VALUE, code=2)
    assert bad.stderr.strip() == "Error: invalid --secret: expected NAME=VALUE (the argument is not repeated here)"
    reserved = _run("code", "register", "mayfly-test/busybox:latest", "--name", "img", "--secret", "MAYFLY_X=1", code=2)
    assert "reserved" in reserved.stderr
    missing = _run("code", "register", "mayfly-test/busybox:latest", "--name", "x", "--secret-file", "K=/no", code=2)
    assert missing.stderr.count("\n") == 1
    # Nothing was stored by the refusals.
    _run("code", "show", "img", code=3)


def test_a_key_that_is_not_fernet_is_one_line(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAYFLY_SECRET_KEY", "not-a-key")
    out = _run("code", "register", "mayfly-test/busybox:latest", "--name", "img", "--secret", f"A={VALUE}", code=5)
    assert out.stderr.strip() == (
        "Error: the secret key in MAYFLY_SECRET_KEY is not a Fernet key (32 url-safe base64-encoded bytes)"
    )
    _run("code", "show", "img", code=3)


@pytest.mark.docker
def test_a_lost_key_fails_the_launch_in_one_line(
    home: Path, monkeypatch: pytest.MonkeyPatch, busybox_image: str
) -> None:
    _run("code", "register", busybox_image, "--name", "img", "--command", "true", "--secret", f"A={VALUE}")
    (home / "keys" / "secret.key").unlink()
    monkeypatch.setenv("MAYFLY_SECRET_KEY", Fernet.generate_key().decode())
    out = _run("run", "img", code=1)
    assert "error: secret 'A' cannot be decrypted" in out.stderr
    task = json.loads(_run("task", "list", "--json").stdout)["tasks"][0]
    assert (task["status"], task["reason"]) == ("error", "launch_failed")
    assert task["msg"] == (
        "secret 'A' cannot be decrypted with this home's key (a different or lost MAYFLY_SECRET_KEY / "
        "keys/secret.key; see docs/secrets.md)"
    )
    assert task["attempt"] == 1


@pytest.mark.docker
def test_rotate_then_prune_keeps_secrets_readable(home: Path, busybox_image: str) -> None:
    sha = hashlib.sha256(VALUE.encode()).hexdigest()
    check = f'set -- $(sha256sum "$MAYFLY_SECRETS_DIR/A"); test "$1" = {sha}'
    _run("code", "register", busybox_image, "--name", "img", "--command", check, "--secret", f"A={VALUE}")
    key_file = home / "keys" / "secret.key"
    old = key_file.read_text().split()
    assert "1 secret values re-encrypted" in _run("secret-key", "rotate").stdout
    keys = key_file.read_text().split()
    assert (len(keys), keys[1:]) == (2, old)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    _run("secret-key", "prune")
    assert key_file.read_text().split() == keys[:1]
    # The stored value opens with the new key alone: the old one no longer can.
    _run("run", "img")
    key_file.write_text(old[0] + "\n")
    out = _run("run", "img", code=1)
    assert "error: secret 'A' cannot be decrypted with this home's key" in out.stderr


def test_a_lost_key_file_is_not_silently_replaced(home: Path) -> None:
    _run("code", "register", "mayfly-test/busybox:latest", "--name", "img", "--secret", f"A={VALUE}")
    (home / "keys" / "secret.key").unlink()
    out = _run("code", "register", "mayfly-test/busybox:latest", "--name", "img", "--secret", "B=1", code=5)
    assert out.stderr.startswith("Error: no secret key: ")
    assert not (home / "keys" / "secret.key").exists()
    assert json.loads(_run("code", "show", "img", "--json").stdout)["latest"]["secrets"] == ["A"]


@pytest.mark.docker
def test_archive_placement_copies_the_files_private(home: Path, busybox_image: str) -> None:
    """With ``placement: archive`` (a remote engine) the files are copied in, still 0400 and the task user's."""
    sha = hashlib.sha256(VALUE.encode()).hexdigest()
    check = (
        f'set -- $(sha256sum "$MAYFLY_SECRETS_DIR/A"); test "$1" = {sha} || exit 11; '
        'set -- $(ls -ln "$MAYFLY_SECRETS_DIR/A"); test "$1:$3:$4" = "-r--------:10001:10001" || exit 12; '
        'set -- $(ls -lnd "$MAYFLY_SECRETS_DIR"); test "$1" = dr-x------ || exit 13'
    )
    _run("target", "add", "arch", "--provider", "docker", "--settings", '{"placement": "archive"}')
    _run("code", "register", busybox_image, "--name", "img", "--command", check, "--target", "arch")
    _run("run", "img", "--secret", f"A={VALUE}")
    assert _home_holds(home, VALUE.encode()) == []


ECS_SETTINGS = {
    "region": "eu-west-1", "cluster": "c", "subnets": ["subnet-1"], "execution_role_arn": "arn:aws:iam::1:role/x",
    "log_group": "g", "bucket": "b", "tasks_queue_url": "http://q/t", "control_queue_url": "http://q/c",
    "events_queue_url": "http://q/e",
}  # fmt: skip


def test_queueing_secrets_to_an_ecs_target_is_accepted_and_stores_no_value(home: Path) -> None:
    """ECS passes secrets (SSM references): ``task queue`` takes them; the home holds ciphertext only."""
    _run("target", "add", "aws-dev", "--provider", "ecs", "--settings", json.dumps(ECS_SETTINGS))
    _run("code", "register", "mayfly-test/busybox:latest", "--name", "img", "--command", "true")
    _run("task", "queue", "img", "--target", "aws-dev", "--secret", f"A={VALUE}")
    (task,) = json.loads(_run("task", "list", "--json").stdout)["tasks"]
    assert json.loads(_run("task", "show", task["id"], "--json").stdout)["secrets"] == ["A"]
    assert _home_holds(home, VALUE.encode()) == []


def test_queueing_secrets_to_a_target_without_the_capability_is_refused(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A provider that does not declare secrets: ``task queue`` says why in one line (exit 6), stores nothing."""
    from mayfly.core.provider import Capability
    from mayfly.providers.ecs.provider import EcsProvider

    monkeypatch.setattr(EcsProvider, "capabilities", EcsProvider.capabilities - {Capability.SECRETS})
    monkeypatch.setattr(EcsProvider, "unsupported", {Capability.SECRETS: "no private means on this provider"})
    _run("target", "add", "aws-dev", "--provider", "ecs", "--settings", json.dumps(ECS_SETTINGS))
    _run("code", "register", "mayfly-test/busybox:latest", "--name", "img", "--command", "true")
    out = _run("task", "queue", "img", "--target", "aws-dev", "--secret", f"A={VALUE}", code=6)
    assert out.stderr.strip() == "Error: target 'aws-dev' cannot pass secrets: no private means on this provider"
    assert json.loads(_run("task", "list", "--json").stdout)["tasks"] == []
    _run("task", "queue", "img", "--target", "aws-dev")  # without secrets it is queued
