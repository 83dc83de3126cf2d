"""``python -m bench [NAME ...] [--small] [--write FILE] [--profile]``: run the benchmarks and print their tables."""

from __future__ import annotations

import argparse
import datetime
import importlib
import io
import sys
from contextlib import redirect_stdout
from pathlib import Path
from typing import TextIO

from bench.common import machine
from bench.profile import run_profiled

BENCHES = {
    "throughput": "bench.throughput",
    "dispatch": "bench.dispatch",
    "scale": "bench.scale",
    "api": "bench.api",
    "postgres": "bench.postgres",
    "cli": "bench.cli",
    "memory": "bench.memory",
}


class _Tee(io.StringIO):
    """Keeps what a benchmark prints (for ``--write``) and shows it as it comes."""

    def __init__(self, shown: TextIO) -> None:
        super().__init__()
        self.shown = shown

    def write(self, s: str) -> int:
        self.shown.write(s)
        self.shown.flush()
        return super().write(s)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run: {', '.join(BENCHES)} (default: all)")
    parser.add_argument("--small", action="store_true", help="tiny sizes: checks that each still runs (CI)")
    parser.add_argument("--write", metavar="FILE", help="also write the tables to FILE (markdown)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="run each benchmark under py-spy and write a flame graph, bench-NAME.svg, next to the tables "
        "(the folder of --write FILE, else the current one)",
    )
    args = parser.parse_args(argv)
    names = args.names or list(BENCHES)
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHES)}")
    command = " ".join(["python -m bench", *argv])
    out = _Tee(sys.stdout)
    with redirect_stdout(out):
        print(f"# Benchmarks\n\nRun on {datetime.date.today().isoformat()}: `{command}`\n\nMachine: {machine()}\n")
        folder = Path(args.write).resolve().parent if args.write else Path.cwd()
        for name in names:
            if args.profile and run_profiled(name, args.small, folder):
                continue
            importlib.import_module(BENCHES[name]).main(small=args.small)
    if args.write:
        with open(args.write, "w") as fh:
            fh.write(out.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
