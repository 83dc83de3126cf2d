"""How the CLI talks: JSON documents on stdout, tables for humans, one-line errors on stderr.

Everything printed here from data is passed through :func:`mayfly.cli.terminal.visible`
first (control characters shown escaped) and never read as Rich markup. Tables print
ids and digests whole; on a pipe or a file every value is printed whole, in plain
columns two spaces apart, whatever the width.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Collection, Iterable, Sequence
from typing import Any, NoReturn

import typer
from rich.cells import cell_len
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from mayfly.cli.terminal import visible, visible_lines
from mayfly.core.errors import MayflyError

#: Tables and messages for humans go to stdout; errors and progress to stderr.
console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

#: Columns whose values are never wrapped nor cut, even on a narrow terminal: ids and digests.
WHOLE = frozenset({"ID", "TASK", "SHA256", "PREFIX"})


def print_json(doc: Any) -> None:
    """Print one JSON document (the only thing ``--json`` prints on stdout)."""
    sys.stdout.write(json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


def say(text: str, *, err: bool = False, style: str | None = None) -> None:
    """Print one line for humans (stdout, or stderr with ``err``); control characters are shown escaped."""
    (err_console if err else console).print(Text(visible(text), style=style or ""))


def plain(text: str) -> Text:
    """A status line or cell from data: escaped, never read as markup."""
    return Text(visible(text))


def table(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    title: str | None = None,
    whole: Collection[str] = WHOLE,
) -> None:
    """Print a table: columns named in ``whole`` are never cut; on a pipe nothing is."""
    cells = [[visible(v) for v in row] for row in rows]
    if not console.is_terminal:
        _plain_table(columns, cells, title)
        return
    t = Table(title=title, box=None, header_style="bold", pad_edge=False)
    for i, name in enumerate(columns):
        if name in whole:
            t.add_column(name, no_wrap=True, min_width=max([cell_len(name), *(cell_len(r[i]) for r in cells)]))
        else:
            t.add_column(name)
    for row in cells:
        t.add_row(*(Text(v) for v in row))
    # Wider than the terminal only when the whole columns alone do not fit: the terminal wraps the lines.
    need = Measurement.get(console, console.options, t).minimum
    console.print(t, width=max(console.width, need))


def _plain_table(columns: Sequence[str], cells: list[list[str]], title: str | None) -> None:
    widths = [max([cell_len(name), *(cell_len(r[i]) for r in cells)]) for i, name in enumerate(columns)]
    lines = [title] if title else []
    for row in [list(columns), *cells]:
        padded = [v + " " * (w - cell_len(v)) for v, w in zip(row, widths, strict=True)]
        lines.append("  ".join(padded).rstrip())
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def fields(pairs: Iterable[tuple[str, Any]]) -> None:
    """Print ``key: value`` lines, skipping empty values; values are printed whole and escaped."""
    width = 0
    items = [(k, v) for k, v in pairs if v not in (None, "", [], {})]
    for k, _ in items:
        width = max(width, len(k))
    for k, v in items:
        value = json.dumps(v) if isinstance(v, dict | list) else v
        line = Text(f"{k:<{width}}", style="bold")
        line.append("  " + visible(value))
        console.print(line)


def exit_with_error(err: MayflyError) -> NoReturn:
    """Print the error on stderr (one line, or one per problem when it lists several) and exit with its code."""
    err_console.print(Text("Error: " + visible_lines(err.message)))
    raise typer.Exit(int(err.exit_code))
