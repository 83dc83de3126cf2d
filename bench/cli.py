"""CLI start-up: wall time of ``mayfly --version`` and ``mayfly task show ID`` on a local SQLite home.

Scripts call the CLI in loops, so its start-up is what they wait for. Baselines, measured in the same
run: ``python -c pass`` (the interpreter alone) and ``python -c "import typer"`` (the floor of any
Typer command line). Each figure is the median of ``runs`` fresh processes.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.common import Row, fresh_home, median, print_table


def mayfly_command() -> list[str]:
    """The installed ``mayfly`` script beside this interpreter (what users run), else ``python -m mayfly.cli``."""
    script = Path(sys.executable).with_name("mayfly")
    if script.exists():
        return [str(script)]
    found = shutil.which("mayfly")
    return [found] if found else [sys.executable, "-m", "mayfly.cli"]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timings(args: list[str], env: dict[str, str], runs: int) -> tuple[list[float], list[float]]:
    """Wall seconds (start to exit) and CPU seconds (user + system) of ``runs`` fresh processes of ``args``.

    CPU time is printed beside wall time because it moves far less than wall time when other
    work shares the machine. Each process must exit 0.
    """
    wall, cpu = [], []
    for _ in range(runs):
        c0, t0 = _children_cpu(), time.perf_counter()
        subprocess.run(args, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall.append(time.perf_counter() - t0)
        cpu.append(_children_cpu() - c0)
    return wall, cpu


def _home_with_a_task() -> tuple[Path, str]:
    from mayfly.cli.context import resolve_runtime
    from mayfly.core.app import Mayfly
    from mayfly.core.codes import CodeOptions
    from mayfly.core.config import Home
    from mayfly.core.tasks import TaskOptions

    home = fresh_home("mayfly-bench-cli-")
    mf = Mayfly(Home(home), resolve_runtime)
    try:
        pid = mf.project_id()
        mf.codes.register(pid, "job", "mayfly-test/busybox:latest", CodeOptions(command="true"))
        task = mf.tasks.queue(pid, "job", '{"i": 1}', TaskOptions())
    finally:
        mf.close()
    return home, task.id


def run(runs: int = 15) -> list[Row]:
    home, task_id = _home_with_a_task()
    try:
        env = {k: v for k, v in os.environ.items() if k not in ("MAYFLY_URL", "MAYFLY_TOKEN")}
        env["MAYFLY_HOME"] = str(home)
        mayfly = mayfly_command()
        timings([*mayfly, "task", "show", task_id], env, 1)  # warm the page cache and .pyc files once
        cases = {
            "bare": [sys.executable, "-c", "pass"],
            "typer": [sys.executable, "-c", "import typer"],
            "version": [*mayfly, "--version"],
            "show": [*mayfly, "task", "show", task_id],
        }
        wall, cpu = {}, {}
        for name, args in cases.items():
            w, c = timings(args, env, runs)
            wall[name], cpu[name] = median(w) * 1000, median(c) * 1000
    finally:
        shutil.rmtree(home.parent, ignore_errors=True)
    return [
        Row("`python -c 'import typer'` (any Typer CLI), wall", wall["typer"], wall["bare"], "ms"),
        Row("`mayfly --version`, wall", wall["version"], wall["bare"], "ms", "≤ 150 ms"),
        Row("`mayfly task show ID`, local SQLite home, wall", wall["show"], wall["bare"], "ms", "≤ 300 ms"),
        Row("`python -c 'import typer'`, CPU (user + system)", cpu["typer"], cpu["bare"], "ms"),
        Row("`mayfly --version`, CPU", cpu["version"], cpu["bare"], "ms"),
        Row("`mayfly task show ID`, CPU", cpu["show"], cpu["bare"], "ms"),
    ]


def main(small: bool = False) -> list[Row]:
    rows = run(runs=3) if small else run()
    print_table(f"CLI start-up (median of {3 if small else 15} fresh processes; baseline: `python -c pass`)", rows)
    return rows


if __name__ == "__main__":
    main()
