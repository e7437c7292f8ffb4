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
