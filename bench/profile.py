"""``python -m bench --profile``: each benchmark runs under ``py-spy record`` and leaves a flame graph.

The benchmark runs as a child of py-spy (``py-spy record --subprocesses -- python -m bench NAME``),
so no ptrace permission over other processes is needed (a container without ``CAP_SYS_PTRACE``
can still trace its own children), and the processes the benchmark starts (servers, runners,
CLI invocations) are sampled too. The flame graph (SVG) is written next to the tables.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

#: Samples per second: enough for a readable graph, little enough not to slow the benchmark much.
RATE = 100


def py_spy() -> str | None:
    """The ``py-spy`` executable beside this interpreter or on PATH (the test extra installs it), or None."""
    beside = Path(sys.executable).with_name("py-spy")
    if beside.exists():
        return str(beside)
    return shutil.which("py-spy")


def svg_path(folder: Path, name: str) -> Path:
    """Where the flame graph of benchmark ``name`` goes."""
    return folder / f"bench-{name}.svg"


def run_profiled(name: str, small: bool, folder: Path) -> bool:
    """Run one benchmark in a child process under py-spy, its tables on our stdout; False if py-spy is missing.

    On False nothing ran: the caller runs the benchmark in process and says, in one line, why there
    is no flame graph.
    """
    exe = py_spy()
    if exe is None:
        print(f"\n(profile: py-spy is not installed, so {name} has no flame graph: pip install py-spy)")
        return False
    out = svg_path(folder, name)
    args = [exe, "record", "--subprocesses", "--rate", str(RATE), "--format", "flamegraph", "--output", str(out)]
    child = [sys.executable, "-m", "bench", name, *(["--small"] if small else [])]
    proc = subprocess.Popen([*args, "--", *child], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    lines = iter(proc.stdout.readline, "")
    header_done = False
    for line in lines:
        # The child prints the run's header again: keep only its tables.
        if not header_done:
            header_done = line.startswith("## ")
            if not header_done:
                continue
            print()
        print(line, end="")
    code = proc.wait()
    if code != 0:
        raise SystemExit(f"benchmark {name} under py-spy exited with {code}")
    if out.exists():
        print(f"\nFlame graph (py-spy, {RATE} samples/s, subprocesses included): `{out}`")
    else:
        print(f"\n(profile: py-spy could not sample {name}; no flame graph was written)")
    return True
