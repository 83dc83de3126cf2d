"""Every benchmark still runs (tiny sizes, no timing assertions): `python -m bench NAME --small`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mayfly.testing.postgres import find_bin

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.docker
@pytest.mark.parametrize("name", ["throughput", "dispatch", "scale", "api", "postgres"])
def test_benchmark_runs(name: str, runtime_images: dict[str, str], busybox_image: str) -> None:
    if name == "postgres" and find_bin() is None:
        pytest.skip("PostgreSQL is not installed (initdb/pg_ctl not found; scripts/bootstrap --test installs it)")
    result = subprocess.run(
        [sys.executable, "-m", "bench", name, "--small"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-2000:]
    table = [line for line in result.stdout.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(table) >= 2  # the header and at least one measured row
    assert "Machine: " in result.stdout


def _tables(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("| ") and "---" not in line]


@pytest.mark.slow
def test_memory_benchmark_runs() -> None:
    """Server and runner with stored tasks and running "containers" (null providers, no Docker)."""
    result = subprocess.run(
        [sys.executable, "-m", "bench", "memory", "--small"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = _tables(result.stdout)
    assert any(r.startswith("| runner resident memory") for r in rows), result.stdout


@pytest.mark.slow
def test_profile_writes_a_flame_graph_next_to_the_tables(tmp_path: Path) -> None:
    """``--profile`` runs the benchmark (here the CLI start-up one) under py-spy: tables, then an SVG beside them."""
    out = tmp_path / "bench.md"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "cli", "--small", "--profile", "--write", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "py-spy is not installed" not in result.stdout  # the test extra installs it
    rows = _tables(out.read_text())
    assert any(r.startswith("| `mayfly --version`") for r in rows), out.read_text()
    svg = tmp_path / "bench-cli.svg"
    assert "<svg" in svg.read_text()[:2000]
    assert f"`{svg}`" in out.read_text()
