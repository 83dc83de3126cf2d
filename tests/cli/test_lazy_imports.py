"""The CLI imports only what the command it runs needs (issue 19: scripts call it in loops).

Checked structurally, never by the clock: each command runs in a fresh process that lists
the modules it had loaded when it exited, and the modules a command does not need must be
absent. ``mayfly --version`` loads no store, model, HTTP client,
Docker SDK, terminal renderer or plugin; ``mayfly task show`` on a local home reads one row
through the store and loads neither the providers (entry points), nor the Docker SDK, the
API, the HTTP clients, the control plane, the runner, the migrations nor SQLAlchemy's
PostgreSQL dialect.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

#: Heavy packages no command below needs (top-level names).
NEVER = {"docker", "httpx", "requests", "urllib3", "fastapi", "starlette", "uvicorn", "alembic", "boto3", "croniter"}
#: Mayfly modules of the serving side and the providers, and the PostgreSQL dialect.
NOT_FOR_READS = {
    "mayfly.providers",
    "mayfly.infra",
    "mayfly.api",
    "mayfly.core.control",
    "mayfly.core.runner",
    "mayfly.core.router",
    "mayfly.core.serving",
    "mayfly.core.plugins",
    "sqlalchemy.dialects.postgresql",
}


#: Runs ``mayfly ARGS`` as the console script does, and at exit writes every module loaded to a file
#: (``sys.modules``: ``-X importtime`` does not list modules loaded through ``importlib.import_module``).
_PROBE = """
import atexit, json, sys
out, args = sys.argv[1], sys.argv[2:]
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
sys.argv = ["mayfly", *args]
from mayfly.cli import main
main()
"""


def _imported(args: list[str], home: Path) -> set[str]:
    """Every module a fresh ``mayfly ARGS`` process had loaded when it exited (it must exit 0)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAYFLY_URL", "MAYFLY_TOKEN", "MAYFLY_DATABASE_URL")}
    env["MAYFLY_HOME"] = str(home)
    out = home.parent / "modules.json"
    proc = subprocess.run([sys.executable, "-c", _PROBE, str(out), *args], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    names = set(json.loads(out.read_text()))
    assert "mayfly.cli.app" in names  # the probe saw the command run
    return names


def _under(names: set[str], prefixes: set[str]) -> list[str]:
    return sorted(n for n in names if n.split(".")[0] in prefixes or any(n.startswith(p) for p in prefixes))


def test_version_imports_no_store_models_clients_nor_plugins(tmp_path: Path) -> None:
    names = _imported(["--version"], tmp_path / "home")
    assert _under(names, NEVER | NOT_FOR_READS | {"sqlalchemy", "pydantic", "rich", "cryptography"}) == []
    # No command module either: the root loads a command's module only when that command runs.
    assert sorted(n for n in names if n.startswith("mayfly.cli.") and n != "mayfly.cli.app") == []
    assert not (tmp_path / "home").exists()


def test_task_show_on_a_local_home_loads_only_the_store(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "MAYFLY_HOME": str(home)}
    env.pop("MAYFLY_URL", None)
    env.pop("MAYFLY_DATABASE_URL", None)
    cli = [sys.executable, "-m", "mayfly.cli"]
    subprocess.run(
        [*cli, "code", "register", "mayfly-test/busybox:latest", "--name", "job", "--command", "true"],
        env=env,
        check=True,
        capture_output=True,
    )
    queued = subprocess.run([*cli, "task", "queue", "job", "--json"], env=env, check=True, capture_output=True)
    task_id = json.loads(queued.stdout)["id"]

    names = _imported(["task", "show", task_id, "--json"], home)
    assert "mayfly.core.store" in names
    assert "mayfly.cli.tasks" in names
    assert _under(names, NEVER | NOT_FOR_READS) == []
    # Only the command run is loaded, not its siblings.
    assert _under(names, {"mayfly.cli.schedules", "mayfly.cli.deploy", "mayfly.cli.emulator", "mayfly.cli.serve"}) == []
