"""The ``mayfly`` command line (Typer)."""

from __future__ import annotations


def main() -> None:
    """Entry point of the ``mayfly`` command."""
    from mayfly.cli.app import run

    run()
