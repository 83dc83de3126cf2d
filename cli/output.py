"""How the CLI talks: JSON documents on stdout, tables for humans, one-line errors on stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from mayfly.core.errors import MayflyError

#: Tables and messages for humans go to stdout; errors and progress to stderr.
console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def print_json(doc: Any) -> None:
    """Print one JSON document (the only thing ``--json`` prints on stdout)."""
    sys.stdout.write(json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str | None = None) -> None:
    """Print a simple table."""
    t = Table(*columns, title=title, box=None, header_style="bold", pad_edge=False)
    for row in rows:
        t.add_row(*("" if v is None else str(v) for v in row))
    console.print(t)


def fields(pairs: Iterable[tuple[str, Any]]) -> None:
    """Print ``key: value`` lines, skipping empty values."""
    width = 0
    items = [(k, v) for k, v in pairs if v not in (None, "", [], {})]
    for k, _ in items:
        width = max(width, len(k))
    for k, v in items:
        value = json.dumps(v) if isinstance(v, dict | list) else v
        console.print(f"[bold]{k:<{width}}[/bold]  {value}")


def exit_with_error(err: MayflyError) -> NoReturn:
    """Print the error as one line on stderr and exit with its code."""
    err_console.print(f"Error: {err.message}", markup=False)
    raise typer.Exit(int(err.exit_code))
