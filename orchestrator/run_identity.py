"""The id of the run a step's attempt belongs to, readable from inside the step: ``current_run_id()``.

A step's own error message could only say ``orch show RUN_ID`` and leave the user
to find which run; with the id it names the command to type. The id is not part
of any key (a cached result keeps the id of the run that computed it), so a
step must use it for messages and logs, not for what it returns.
"""

from __future__ import annotations

import contextvars

_CURRENT_RUN: contextvars.ContextVar[str | None] = contextvars.ContextVar("orchestrator_run_id", default=None)


def current_run_id() -> str | None:
    """The id of the run whose step is running here (``orch show ID`` shows it), or None outside a run."""
    return _CURRENT_RUN.get()


class running_for:
    """``with running_for(run_id): step()``: ``current_run_id()`` answers ``run_id`` inside (none for "")."""

    __slots__ = ("_run_id", "_token")

    def __init__(self, run_id: str) -> None:
        self._run_id = run_id or None

    def __enter__(self) -> None:
        self._token = _CURRENT_RUN.set(self._run_id)

    def __exit__(self, *exc: object) -> None:
        _CURRENT_RUN.reset(self._token)
