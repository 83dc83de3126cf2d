"""``python -m bench [NAME ...] [--small] [--write FILE]``: run the benchmarks and print their tables."""

from __future__ import annotations

import argparse
import datetime
import importlib
import io
import sys
from contextlib import redirect_stdout

from bench.common import machine

BENCHES = {
    "throughput": "bench.throughput",
    "dispatch": "bench.dispatch",
    "scale": "bench.scale",
    "api": "bench.api",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run: {', '.join(BENCHES)} (default: all)")
    parser.add_argument("--small", action="store_true", help="tiny sizes: checks that each still runs (CI)")
    parser.add_argument("--write", metavar="FILE", help="also write the tables to FILE (markdown)")
    args = parser.parse_args(argv)
    names = args.names or list(BENCHES)
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHES)}")
    out = io.StringIO()
    header = (
        f"# Benchmarks\n\nRun on {datetime.date.today().isoformat()}: `python -m bench {' '.join(argv or [])}`"
        f"\n\nMachine: {machine()}\n"
    )
    print(header)
    out.write(header)
    for name in names:
        buf = io.StringIO()
        with redirect_stdout(buf):
            importlib.import_module(BENCHES[name]).main(small=args.small)
        sys.stdout.write(buf.getvalue())
        out.write(buf.getvalue())
    if args.write:
        with open(args.write, "w") as fh:
            fh.write(out.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
