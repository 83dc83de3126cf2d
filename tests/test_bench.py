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
