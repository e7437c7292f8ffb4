"""What every ``orch`` command module shares: opening the store it reads, and printing a document.

``open_context`` refuses a store that does not exist (only ``run``, ``plan``
and ``dag`` may create one) and marks runs whose process died as
interrupted first, so that every listing shows them as such.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from orchestrator.context import Context

# The exit codes of every command (docs/cli.md): a failed run 1, a user's mistake 2, Ctrl-C 130.
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def open_context(ctx: click.Context, *, damaged_ok: bool = False) -> Context:
    """The store a command reads; one that does not exist is a user error, and is not created.

    Args:
        damaged_ok: return the store even when its metadata database is damaged
            (``orch doctor`` reports that and still checks the objects).
    """
    from orchestrator.context import Context
    from orchestrator.errors import DamagedDatabaseError

    context = Context.open(ctx.obj["store"], ctx.obj["metadata"], create=False, short=True)
    close_with_command(ctx, context)
    try:
        context.lineage.mark_dead_runs()
    except DamagedDatabaseError:
        if not damaged_ok:
            raise
    return context


def close_with_command(ctx: click.Context, context: Context) -> None:
    """Close ``context``'s database connection when the command ends, not when garbage collection finds it.

    ``cli.main([...])`` called from Python would otherwise keep an open file per command (and the
    ``-wal`` file beside the database) until then.
    """
    ctx.call_on_close(context.lineage.close)


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def echo(message: Any = None, err: bool = False, nl: bool = True) -> None:
    """``click.echo`` to this process's own ``sys.stdout`` (or ``sys.stderr``).

    Given no file, click writes UTF-8 past a stream whose encoding is ASCII (``PYTHONIOENCODING=ascii``,
    a cron job's locale), which ``text_streams.printable_streams`` set up to write look-alikes
    (``->`` for ``→``): `orch dag`, `lineage` and `diff` printed raw UTF-8 there while `plan` did not.
    """
    click.echo(message, file=sys.stderr if err else sys.stdout, nl=nl)


def emit_json(doc: Any) -> None:
    """Print ``doc`` as the command's one JSON document, whole.

    Written to the descriptor in a loop until every byte is out: through Python's stream, a
    signal handled while the write waited on a full pipe (a reader not reading yet, then a
    scheduler's SIGTERM) left the document cut at 64 KiB, and ``orch run`` exited 0 with it.
    """
    from orchestrator.json_values import strict_json

    text = json.dumps(strict_json(doc), indent=2, default=str) + "\n"  # NaN/inf as null: strict JSON (ASCII)
    stream = sys.stdout
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):  # a stream of no descriptor (a test's, a notebook's)
        echo(text, nl=False)
        return
    stream.flush()
    data = memoryview(text.encode("ascii"))
    while data:
        data = data[os.write(fd, data):]  # a signal whose handler returns: the write goes on (PEP 475)


@contextlib.contextmanager
def prints_to_stderr(active: bool = True) -> Iterator[None]:
    """While a command's stdout is a document (``--json``, a diagram), user code prints to stderr.

    A pipeline file that prints when imported, or a step's output echoed with
    ``--verbose``, must not land in the middle of the JSON a script parses. Descriptor
    1 too, not only ``sys.stdout``: a subprocess the file runs at import (``git lfs
    pull``), what the ``--verbose`` echo writes there, and pool workers, which inherit it.
    """
    if not active:
        yield
        return
    if sys.stdout is not None:  # None: started with descriptor 1 closed (`orch run --json >&-`)
        sys.stdout.flush()
    saved: int | None = None
    try:
        saved = os.dup(1)
        os.dup2(2, 1)
    except OSError:  # descriptor 1 or 2 closed (a service started without them): Python's stream alone
        if saved is not None:
            os.close(saved)
            saved = None
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        if saved is not None:
            if sys.stderr is not None:
                sys.stderr.flush()
            os.dup2(saved, 1)
            os.close(saved)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class Since(click.ParamType):
    """``--since``: a time ago (``30m``, ``2h``, ``7d``) or a date and time, as a Unix time.

    Shared by ``orch runs`` and ``orch monitor``, so that both read a moment alike.
    """

    name = "when"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        import re
        from datetime import datetime

        if isinstance(value, (int, float)):
            return float(value)
        text = str(value).strip()
        ago = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhdw])", text.lower())
        if ago:
            return time.time() - float(ago.group(1)) * _UNITS[ago.group(2)]
        try:
            return datetime.fromisoformat(text).timestamp()  # naive: local time, as --history prints it
        except ValueError:
            self.fail(f"{value!r} is neither a time ago (30m, 2h, 7d, 1w) nor a date and time "
                      "(2026-11-27 or 2026-11-27T10:00).", param, ctx)
