"""The warnings of a step's attempt: each one shown (so captured) anew, naming its real file.

Python shows a warning once per place in its code and then remembers it, for
as long as the process lives: a notebook kernel that ran a step again, a step
mapped over items, a retried attempt or a pool worker's next task left out
the warning its first attempt had shown, so ``orch logs`` lost it for all the
others. An attempt that follows one that showed a warning starts with that
memory cleared (the user's filters, ``ignore`` and ``error`` included, still
apply), as in a fresh process. Only then: clearing it also lets a warning shown
outside steps show again (``orch``'s own, at each run of a script's loop), so a
process whose steps never warn keeps it.

The driver's warning filters travel with each task to a process or Dask worker
(``driver_filters``, ``filters_applied``) when they are not those the process started
with: a ``warnings.simplefilter("error")`` at the top of the pipeline file ran in the
driver only, so a step's warning failed the step on the sequential executor and was
let through on a worker, where the file's module-level statements never run.

A step called directly outside a run (``warnings_noted``) counts as such an attempt:
the warnings it shows are shown again by the step's next attempt.

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

# The filters as they were when the orchestrator was imported: those of the interpreter and its -W
# options, which the workers it starts get too. A pipeline file (imported after) changes them.
filters_at_import = list(warnings.filters)

# Not empty once an attempt has shown a warning that Python now remembers, until the next attempt forgets it.
_shown_in_attempts: list[bool] = []


def in_attempt() -> bool:
    """Whether an attempt runs in this process now (its ``attempt_warnings`` is in place)."""
    return getattr(warnings.showwarning, "_orch_wraps", None) is not None


class warnings_noted:
    """``with warnings_noted(): ...`` around a step called directly, outside a run.

    A warning it shows is remembered by Python as shown, and the step's first attempt in
    the same process (``fit(df)`` in a script or a notebook, then ``training.run()``) did
    not show it again: its ``orch logs`` had no warning. Noted here, the next attempt
    starts with that memory cleared, as after an attempt that showed one.
    """

    __slots__ = ("_shown",)

    def __enter__(self) -> None:
        self._shown = warnings.showwarning
        warnings.showwarning = _showing(self._shown)

    def __exit__(self, *exc: object) -> None:
        if getattr(warnings.showwarning, "_orch_wraps", None) is self._shown:
            warnings.showwarning = self._shown  # unless the code installed its own meanwhile


# A copy of the warning filters as the last attempt started: taken again only when they changed since.
_filters_before: list[Any] = []


class attempt_warnings:
    """``with attempt_warnings(): ...`` shows the attempt's warnings, those already shown by an
    earlier attempt too, and those of by-value code with their real file.

    The filters a step sets (``warnings.simplefilter("error")``, ``filterwarnings("ignore")``)
    apply while it runs and are put back after it: they stayed for every later step in the
    process (a later step's warning failed it, on the sequential executor only) and for the
    driver (``orch``'s own warnings raised in a notebook). Told apart by their number and
    first entry, which is what ``simplefilter``, ``filterwarnings`` and ``resetwarnings`` change:
    no copy of the filters is made for an attempt that changes none.
    """

    __slots__ = ("_shown",)

    def __enter__(self) -> None:
        if _shown_in_attempts:
            _shown_in_attempts.clear()
            _forget_shown_warnings()
        filters = warnings.filters
        if len(filters) != len(_filters_before) or (filters and filters[0] is not _filters_before[0]):
            _filters_before[:] = filters
        self._shown = warnings.showwarning
        warnings.showwarning = _showing(self._shown)

    def __exit__(self, *exc: object) -> None:
        if getattr(warnings.showwarning, "_orch_wraps", None) is self._shown:
            warnings.showwarning = self._shown  # unless the step installed its own meanwhile
        filters = warnings.filters
        if len(filters) != len(_filters_before) or (filters and filters[0] is not _filters_before[0]):
            _set_filters(list(_filters_before))


def driver_filters() -> tuple[Any, ...] | None:
    """The warning filters of this process for its tasks on workers, or None when they are those it started with.

    Called once per run: the filters are read where each task's attempt starts on its worker.
    """
    filters = warnings.filters
    return None if filters == filters_at_import else tuple(filters)


class filters_applied:
    """``with filters_applied(filters): ...`` runs an attempt under the driver's warning filters.

    A worker runs the tasks of several runs (a Dask cluster of the user's): its own
    filters are put back after the attempt. ``None``, or filters it already has: nothing to do.
    """

    __slots__ = ("_filters", "_saved")

    def __init__(self, filters: tuple[Any, ...] | None) -> None:
        self._filters = filters
        self._saved: list[Any] | None = None

    def __enter__(self) -> None:
        if self._filters is not None and warnings.filters != list(self._filters):
            self._saved = list(warnings.filters)
            _set_filters(list(self._filters))

    def __exit__(self, *exc: object) -> None:
        if self._saved is not None:
            _set_filters(self._saved)


def _set_filters(filters: list[Any]) -> None:
    """Make ``filters`` the process's warning filters, as ``warnings.simplefilter`` changes them."""
    warnings.filters[:] = filters  # type: ignore[index]  # typeshed: a Sequence; a list in fact
    _forget_shown_warnings()  # the filters changed: what was shown under the others is forgotten


def _forget_shown_warnings() -> None:
    """Clear every module's memory of the warnings it has shown (``__warningregistry__``).

    What changing the filters does (``warnings.catch_warnings`` on entering), without copying
    them: one counter goes up, and a registry is cleared when next warned into.
    """
    mutated = getattr(warnings, "_filters_mutated", None)  # Python 3.11 to 3.13
    if mutated is not None:
        mutated()
        return
    lock, mutated = getattr(warnings, "_lock", None), getattr(warnings, "_filters_mutated_lock_held", None)
    if lock is not None and mutated is not None:  # Python 3.14
        with lock:
            mutated()


def _showing(shown: Any) -> Any:
    def showwarning(message: Any, category: Any, filename: str, lineno: int, file: Any = None,
                    line: str | None = None) -> None:
        if not _shown_in_attempts:
            _shown_in_attempts.append(True)
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
