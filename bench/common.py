"""Shared helpers: a fresh home, a results table, percentiles, the machine's description."""

from __future__ import annotations

import multiprocessing.synchronize
import os
import platform
import statistics
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.nullprovider import NullPlugin
from mayfly.core.app import Mayfly
from mayfly.core.codes import RuntimeInfo
from mayfly.core.config import Home
from mayfly.core.plugins import build_plugins


@dataclass
class Row:
    """One line of a benchmark's table."""

    what: str
    mayfly: float
    baseline: float | None
    unit: str
    goal: str = ""

    @property
    def ratio(self) -> str:
        if not self.baseline:
            return "-"
        return f"{self.mayfly / self.baseline:.2f}"


def fresh_home(prefix: str = "mayfly-bench-") -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix)) / "home"


def open_mayfly(home: Path, images: dict[str, str] | None = None) -> Mayfly:
    """A Mayfly on ``home`` with the null provider registered (and the runtimes it may need)."""
    known = images or {}

    def resolve(name: str) -> RuntimeInfo:
        return RuntimeInfo(name, known.get(name, name), None)

    return Mayfly(Home(home), resolve, plugins=build_plugins((NullPlugin(),)))


def runner_process(
    home: str,
    stop: multiprocessing.synchronize.Event,
    ready: multiprocessing.synchronize.Semaphore | None = None,
    go: multiprocessing.synchronize.Event | None = None,
) -> None:
    """A runner for the null target in its own process (as `mayfly runner` runs beside `mayfly server`).

    With ``ready`` and ``go``: released once the runner is built (the interpreter started, Mayfly
    imported, the store opened), and waits for ``go`` before it takes work, so a benchmark times the
    work and not each process's start.
    """
    runner = open_mayfly(Path(home)).runner("null")
    if ready is not None and go is not None:
        ready.release()
        go.wait()
    flag = threading.Event()

    def relay() -> None:  # the runner takes a threading.Event; the parent sets a multiprocessing one
        stop.wait()
        flag.set()

    threading.Thread(target=relay, daemon=True).start()
    runner.run(flag)


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100), nearest-rank."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def machine() -> str:
    """CPU, cores, memory, kernel, Docker and Python versions."""
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    try:
        docker = (
            subprocess.run(
                ["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True, timeout=10
            ).stdout.strip()
            or "not running"
        )
    except (OSError, subprocess.SubprocessError):
        docker = "not installed"
    return (
        f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB, Linux {platform.release()}, Docker {docker}, "
        f"Python {platform.python_version()}"
    )


def print_table(title: str, rows: Sequence[Row]) -> None:
    """What, Mayfly, baseline, ratio, goal."""
    print(f"\n## {title}\n")
    print("| what | Mayfly | baseline | ratio | goal |")
    print("|---|---|---|---|---|")
    for r in rows:
        base = f"{r.baseline:.3g} {r.unit}" if r.baseline is not None else "-"
        print(f"| {r.what} | {r.mayfly:.3g} {r.unit} | {base} | {r.ratio} | {r.goal} |")


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")
