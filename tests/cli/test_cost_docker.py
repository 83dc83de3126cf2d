"""Cost per task and budgets through the CLI, end to end: `mayfly` processes, a real container on `local`."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.slow]

VCPU_SECOND = 0.001
GB_SECOND = 0.0001


def mayfly(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MAYFLY_HOME": str(home)}
    env.pop("MAYFLY_URL", None)
    result = subprocess.run(
        [sys.executable, "-m", "mayfly.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def _tasks(home: Path) -> list[dict[str, object]]:
    doc = json.loads(mayfly(home, "task", "list", "--json").stdout)
    tasks: list[dict[str, object]] = doc["tasks"]
    return tasks


def test_a_priced_local_task_records_its_attempt_and_cost_and_a_budget_refuses_more(
    home: Path, runtime_images: dict[str, str], tmp_path: Path
) -> None:
    code = tmp_path / "nap"
    code.mkdir()
    (code / "main.sh").write_text("sleep 1\necho done\n")
    mayfly(home, "code", "push", str(code), "--name", "nap", "--runtime", "shell", "--cpu", "0.5", "--memory", "256")
    shown = json.loads(
        mayfly(
            home,
            "target",
            "price",
            "local",
            "--set",
            f"vcpu_second={VCPU_SECOND}",
            "--set",
            f"gb_second={GB_SECOND}",
            "--json",
        ).stdout
    )
    assert (shown["origin"], shown["vcpu_second"], shown["gb_second"]) == ("target", VCPU_SECOND, GB_SECOND)

    # A dry run validates and estimates, and stores nothing.
    dry = mayfly(home, "run", "nap", "--dry-run")
    assert "nap rev 1 on local" in dry.stdout
    assert "estimate" in dry.stdout
    assert _tasks(home) == []

    run = mayfly(home, "run", "nap")
    assert run.stdout == "done\n"
    (listed,) = _tasks(home)
    doc = json.loads(mayfly(home, "task", "show", str(listed["id"]), "--json").stdout)
    (attempt,) = doc["attempts"]
    assert (attempt["attempt"], attempt["target"], attempt["provider"], attempt["outcome"]) == (
        1,
        "local",
        "docker",
        "exited",
    )
    assert (attempt["cpu"], attempt["memory_mb"]) == (0.5, 256)
    # Billed: Docker's own State.StartedAt -> FinishedAt, rounded up to whole seconds.
    billed = math.ceil(attempt["stopped_at"] - attempt["started_at"] - 1e-9)
    assert attempt["billed_seconds"] == billed >= 1
    expected = billed * (0.5 * VCPU_SECOND + 0.25 * GB_SECOND)
    assert attempt["cost"] == pytest.approx(expected)
    assert doc["cost"] == pytest.approx(expected)
    assert listed["cost"] == pytest.approx(expected)
    text = mayfly(home, "task", "show", str(listed["id"])).stdout
    assert "local" in text
    assert "BILLED S" in text

    summary = json.loads(mayfly(home, "cost", "--since", "1d", "--json").stdout)
    assert summary["total"] == pytest.approx(expected)
    assert [(r["code"], r["target"], r["attempts"]) for r in summary["rows"]] == [("nap", "local", 1)]

    # Spent plus this task's estimate (the code's typical billed seconds) passes the limit: refused, nothing stored.
    mayfly(home, "project", "budget", "default", "--daily", f"{expected * 1.5}usd")
    refused = mayfly(home, "task", "queue", "nap", check=False)
    assert refused.returncode == 4
    assert refused.stdout == ""
    assert len(refused.stderr.strip().splitlines()) == 1
    assert "over the daily budget" in refused.stderr
    assert len(_tasks(home)) == 1
    budget = json.loads(mayfly(home, "project", "budget", "default", "--json").stdout)
    assert budget["daily"]["spent"] == pytest.approx(expected)
    mayfly(home, "project", "budget", "default", "--clear")
    mayfly(home, "task", "queue", "nap")
    assert len(_tasks(home)) == 2
