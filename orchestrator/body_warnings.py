"""A warning a pipeline body shows, on one line: ``warning: MESSAGE (file.py:LINE, in pipeline 'p')``.

Python's own display is two lines, the second the source line indented
(``p.py:25: UserWarning: careful`` then ``  warnings.warn("careful")``), among
``orch``'s one-line ``warning: ...`` notes, where it read as a traceback. Only
while a body is traced: a step's warnings keep Python's display, which
``orch logs`` shows as the step printed it. Filters (``ignore``, ``error``) and
a display the user installed themselves are left as they are.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any


class body_warnings_on_one_line:
    """``with body_warnings_on_one_line("train"): body()`` shows the body's warnings on one line each."""

    __slots__ = ("_pipeline", "_shown")

    def __init__(self, pipeline: str) -> None:
        self._pipeline = pipeline

    def __enter__(self) -> None:
        self._shown = warnings.showwarning
        if _pythons_own_display():
            warnings.showwarning = self._one_line

    def __exit__(self, *exc: object) -> None:
        if warnings.showwarning == self._one_line:
            warnings.showwarning = self._shown

    def _one_line(self, message: Any, category: Any, filename: str, lineno: int, file: Any = None,
                  line: str | None = None) -> None:
        kind = "" if category is UserWarning else f"{category.__name__}: "
        text = str(message).strip().replace("\n", " ")
        stream = file if file is not None else sys.stderr
        try:
            stream.write(f"warning: {kind}{text} ({os.path.basename(filename)}:{lineno}, "
                         f"in the body of pipeline '{self._pipeline}')\n")
        except (OSError, AttributeError, ValueError):
            pass  # as Python's own display does: a warning must not break the build


def _pythons_own_display() -> bool:
    """Whether warnings are printed by Python's own display: not the user's, nor recorded
    (``catch_warnings(record=True)``, ``pytest.warns``), which keep getting them as they are."""
    shown, impl = warnings.showwarning, getattr(warnings, "_showwarnmsg_impl", None)
    return (getattr(shown, "__module__", None) == "warnings" and getattr(impl, "__module__", None) == "warnings"
            and getattr(impl, "__name__", None) == "_showwarnmsg_impl")
