"""Standard streams that cannot encode every character still print everything ``orch`` says.

Under a locale that is not UTF-8 (``LANG=en_US.ISO-8859-1``, ``PYTHONIOENCODING=ascii``,
a Windows code page), Python's stdout refuses a character its encoding lacks with
``UnicodeEncodeError``: ``orch show`` stopped at the first ``…``, ``orch dag`` at its
first ``←`` and ``orch lineage`` at its tree's ``└──``, each with an error that blamed
the command's arguments. Here each such stream writes the characters ``orch`` itself
uses as their ASCII look-alikes (``→`` as ``->``) and any other (a step's name or
output in another script) as a Python escape (``\\u65e5``), as Python's stderr already
does, so nothing is lost and a log stays readable.

This only changes how a stream encodes what it cannot; what is printed, and every
``--json`` document (ASCII already), stays the same. A UTF-8 stream is left as it is.
And a stream whose reader went away (a closed pipe, a terminal that hung up) can be
pointed at /dev/null (``silence``), so that printing ends and the work goes on.
"""

from __future__ import annotations

import codecs
import sys
from typing import Any

ERRORS = "orch-ascii-fallback"

# The characters orch prints of its own (progress, tables, trees, arrows in reasons).
_ASCII = {
    "▶": ">", "↻": "~", "✗": "x", "✓": "v", "…": "...", "→": "->", "←": "<-", "↑": "^", "↓": "v",
    "└": "`", "├": "|", "│": "|", "─": "-", "━": "-", "╸": "-", "╺": "-", "—": "--", "–": "-",
    "“": '"', "”": '"', "‘": "'", "’": "'", "≥": ">=", "≤": "<=", "×": "x", "·": ".", "≈": "~",
}


def _fallback(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeEncodeError):
        raise error
    text = error.object[error.start:error.end]
    out = "".join(_ASCII.get(c) or c.encode("ascii", "backslashreplace").decode("ascii") for c in text)
    return out, error.end


def _register() -> None:
    try:
        codecs.lookup_error(ERRORS)
    except LookupError:
        codecs.register_error(ERRORS, _fallback)


def _is_utf(encoding: str | None) -> bool:
    try:
        return codecs.lookup(encoding or "ascii").name.startswith("utf")
    except LookupError:
        return False


def printable_streams() -> None:
    """Make ``sys.stdout`` and ``sys.stderr`` write what their encoding lacks as ASCII, not fail.

    Called once by ``orch`` before a command runs; a stream that is UTF-8, or that cannot be
    reconfigured (replaced by a test harness), is left alone.
    """
    for stream in (sys.stdout, sys.stderr):
        reconfigure: Any = getattr(stream, "reconfigure", None)
        if reconfigure is None or _is_utf(getattr(stream, "encoding", None)):
            continue
        _register()
        try:
            reconfigure(errors=ERRORS)
        except (ValueError, OSError):  # a closed or detached stream: nothing will be printed on it
            continue


def reader_gone(exc: BaseException) -> bool:
    """Whether a failed write means the stream's reader is gone: a closed pipe, or a terminal that hung up."""
    import errno

    return isinstance(exc, OSError) and exc.errno in (errno.EPIPE, errno.EIO)


def silence(stream: Any) -> None:
    """Point a stream whose reader is gone at /dev/null, so that later writes (and the flush at exit) succeed.

    ``orch run 2>&1 | head -1``, a log shipper that died, an SSH session that dropped: what
    is printed after that goes nowhere, rather than failing a run that has nothing to do with it.
    """
    import os

    try:
        fd = stream.fileno()
    except (AttributeError, ValueError, OSError):  # not a file (a test's StringIO): nothing to point elsewhere
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)
