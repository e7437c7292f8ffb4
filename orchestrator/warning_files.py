"""Warnings raised by a step's code in a worker name its real file, not ``<dynamic-code>``.

Code that travelled to a process or Dask worker by value (cloudpickle) has
lost its file name: ``warnings.warn`` in it printed ``<dynamic-code>:11:
UserWarning: ...`` without the source line, where the same step run by the
sequential executor printed ``train.py:11`` and the line. The module's
``__file__`` travelled with the code, so the frame that warned knows it.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

_DYNAMIC_CODE = "<dynamic-code>"  # cloudpickle's file name for code it carried by value


class real_warning_files:
    """``with real_warning_files(): ...`` shows the warnings of by-value code with their real file."""

    __slots__ = ("_shown",)

    def __enter__(self) -> None:
        self._shown = warnings.showwarning
        warnings.showwarning = _showing(self._shown)

    def __exit__(self, *exc: object) -> None:
        if getattr(warnings.showwarning, "_orch_wraps", None) is self._shown:
            warnings.showwarning = self._shown  # unless the step installed its own meanwhile


def _showing(shown: Any) -> Any:
    def showwarning(message: Any, category: Any, filename: str, lineno: int, file: Any = None,
                    line: str | None = None) -> None:
        if filename == _DYNAMIC_CODE:
            filename = _real_file(lineno) or filename
        shown(message, category, filename, lineno, file, line)

    showwarning._orch_wraps = shown  # type: ignore[attr-defined]
    return showwarning


def _real_file(lineno: int) -> str | None:
    """The file of the by-value frame on the stack at ``lineno`` (the one that warned, or its caller)."""
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_filename == _DYNAMIC_CODE and frame.f_lineno == lineno:
            file = frame.f_globals.get("__file__")
            return file if isinstance(file, str) else None
        frame = frame.f_back  # type: ignore[assignment]
    return None
