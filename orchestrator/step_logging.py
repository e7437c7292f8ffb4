"""A step's own logging configuration: in effect while the step runs, undone after it.

While a step runs, the root logger holds the capture's handler (``capture``). So a
``logging.basicConfig(level=logging.DEBUG)`` called in the step found a handler there
and did nothing, as ``basicConfig`` does on a configured root: the step's DEBUG records
were neither kept nor shown, and ``orch logs`` had its INFO lines only. And what a step
did set on the root logger (``logging.getLogger().setLevel(DEBUG)``, a ``dictConfig``
with a ``root`` section) stayed after it: the steps after it logged at DEBUG, and into
handlers that wrote to the finished step's capture, where their text was lost, the
driver's own messages included. On a process or Dask worker the same step changed
another process, so what a step saw depended on the executor.

Here ``basicConfig`` called while a step's capture is active sees the root logger as
the step would in a process of its own, without the capture's handler (which stays, so
the records are kept under ``logs`` too), and what the step changed on the root logger,
its level and its handlers, is put back when the step ends, as ``process_state`` puts
back the working folder. A step that configures nothing pays a copy of the root
logger's handler list and two comparisons. This module must not change what logging
does outside steps: the wrapper calls ``basicConfig`` as it is when no capture is active.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

#: The capture's handler once ``allow_basic_config`` installed the wrapper (one per process).
_capture_handler: list[Any] = []


def allow_basic_config(handler: Any) -> None:
    """Make ``logging.basicConfig`` in a step configure as if ``handler`` were not on the root logger.

    Called once per process, when the capture's handler is made. ``handler.target`` is not None
    while a capture is active; ``handler.root_configured()`` is told after a step's ``basicConfig``.
    """
    if _capture_handler:
        return
    _capture_handler.append(handler)
    real = logging.basicConfig

    @functools.wraps(real)
    def basicConfig(**kwargs: Any) -> None:
        root = logging.root
        if handler.target is None or handler not in root.handlers:
            real(**kwargs)
            return
        root.removeHandler(handler)
        try:
            real(**kwargs)
        finally:
            root.addHandler(handler)
            handler.root_configured()

    basicConfig._orch_wraps = real  # type: ignore[attr-defined]
    logging.basicConfig = basicConfig


def root_changed(handlers: list[logging.Handler], level: int) -> bool:
    """Whether the root logger's handlers or level differ from ``handlers`` and ``level`` (taken before the step)."""
    root = logging.root
    return root.level != level or root.handlers != handlers


def put_back_root(handlers: list[logging.Handler], level: int, capture_handler: Any) -> None:
    """Give the root logger back the handlers and level it had before the step.

    ``capture_handler`` is left as it is: another thread's step may be using it. The handlers
    the step added are taken off, not closed: the step's code may hold one and add it again.
    """
    root = logging.root
    kept = [h for h in handlers if h is not capture_handler]
    if [h for h in root.handlers if h is not capture_handler] != kept:
        for h in root.handlers[:]:
            if h is not capture_handler and h not in kept:
                root.removeHandler(h)
        for h in kept:
            if h not in root.handlers:
                root.addHandler(h)
    if root.level != level:
        root.setLevel(level)  # clears the loggers' caches of their effective level too
