"""Printing a table of rows (``orch show``, ``orch runs``) fast at any length.

rich lays out a ``Table`` by measuring and wrapping every cell, about 0.5 ms a
row: ``orch show`` of a run with a 5,000-item map spent 3 s there. Up to
``RICH_ROWS`` rows the table is rich's, wrapped to the terminal; past that
each column is padded to its widest cell and each row is one line, styled as
rich would style it, and left to the terminal to wrap: a table that long is
read by scrolling or by ``grep``, where one row per line is what helps.

It also says how wide a console is laid out and whether it may redraw a live
bar: a pipe or a file (a CI log, cron's mail) is no terminal, whatever
``FORCE_COLOR`` makes rich believe.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

RICH_ROWS = 300  # rows laid out by rich; longer tables get one line per row
GAP = "  "  # between columns, as rich's Table(box=None) pads them


PIPED_WIDTH = 200  # columns a table is laid out to when stdout is a pipe or a file


def stdout_console() -> Console:
    """The console that listing commands print to.

    A terminal's own width; piped or redirected (``orch show RUN | grep fit``, ``> runs.txt``)
    wide enough that a row stays one line, instead of rich's 80 columns, which wrapped a
    step's reason into a column 20 characters wide. ``COLUMNS`` set by the user wins.
    """
    from rich.console import Console

    console = log_width(Console(highlight=False))
    console.on_broken_pipe = reader_gone  # type: ignore[method-assign]
    return console


def reader_gone() -> None:
    """The reader of stdout went away (``orch show RUN | head -1``): the rest is not wanted, and that is no failure.

    rich's own answer is exit 1, which failed the script's pipeline under ``set -o pipefail``
    (``orch lineage ... | head`` exited 0). Later writes go to the null device.
    """
    from orchestrator.text_streams import silence

    silence(sys.stdout)
    raise SystemExit(0)


MIN_COLUMNS = 20  # a COLUMNS below this is taken for a mistake (0 printed nothing at all, 1 a letter a line)


def log_width(console: Console) -> Console:
    """``console`` laid out ``PIPED_WIDTH`` columns wide when it writes to a pipe or a file.

    A real terminal, and ``COLUMNS`` set by the user, keep their width. ``FORCE_COLOR`` (set
    by many CI jobs) makes rich treat a pipe as a terminal of 80 columns, so the file's
    ``isatty`` decides, not rich's ``is_terminal``. A ``COLUMNS`` that is not a number of at
    least ``MIN_COLUMNS`` (``COLUMNS=0`` from a job's environment) is ignored rather than obeyed.
    """
    import os

    columns = os.environ.get("COLUMNS", "").strip()
    if (columns.isdigit() and int(columns) >= MIN_COLUMNS) or console.is_jupyter:
        return console  # a notebook's output has a width of its own (JUPYTER_COLUMNS), not a log's
    if not _isatty(console.file):
        console.width = PIPED_WIDTH
    elif columns.isdigit():  # rich took it: the terminal's own width instead
        try:
            console.width = os.get_terminal_size(console.file.fileno()).columns or 80
        except (OSError, ValueError, AttributeError):
            console.width = 80
    return console


def _isatty(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if isatty is not None else False
    except ValueError:  # closed
        return False


def is_live_terminal(console: Console) -> bool:
    """Whether ``console`` may redraw a live progress bar: an interactive, real terminal.

    Not a dumb one (``TERM=dumb``: an editor's shell, some CI runners), which cannot move
    the cursor, and not a pipe or a file that ``FORCE_COLOR`` or ``TTY_COMPATIBLE`` made rich
    treat as a terminal: each redraw would land in the log as a line of its own. There a
    line per event is written instead. ``TTY_INTERACTIVE=1`` forces the bar.
    """
    import os

    if os.environ.get("TTY_INTERACTIVE") == "1":
        return True
    return bool(console.is_interactive) and _isatty(console.file)


def print_table(console: Console, columns: list[tuple[str, dict[str, Any]]], rows: list[list[str | Text]]) -> None:
    """Print ``rows`` under ``columns`` (each a header and its ``Table.add_column`` options)."""
    from rich.table import Table
    from rich.text import Text

    if len(rows) <= RICH_ROWS:
        table = Table(box=None, pad_edge=False)
        for header, options in columns:
            table.add_column(header, **options)
        for row in rows:
            table.add_row(*row)
        console.print(table)
        return
    lines: list[list[Text]] = [[Text(name, style="bold") for name, _ in columns]]
    lines += [[cell if isinstance(cell, Text) else Text(cell) for cell in row] for row in rows]
    widths = [max(line[i].cell_len for line in lines) for i in range(len(columns))]
    out = Text()
    for line in lines:
        for i, text in enumerate(line):
            out.append_text(text)
            if i < len(line) - 1:
                out.append(" " * (widths[i] - text.cell_len) + GAP)
        out.append("\n")
    out.rstrip()
    console.print(out, soft_wrap=True, highlight=False)
