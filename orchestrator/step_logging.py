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

A ``dictConfig`` or ``fileConfig`` in a step also disables every logger that existed
before it and is not named in it (``disable_existing_loggers``, on by default): the
steps after it logged nothing through those loggers. The loggers are noted when such a
configuration starts in a step (``logging.config`` calls ``_clearExistingHandlers``
first, also through a ``from logging.config import dictConfig`` made earlier) and put
back as they were when the step ends; the handlers the configuration made are closed.

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
import sys
from dataclasses import dataclass
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


@dataclass
class _Loggers:
    """The named loggers and handlers as they were before a step's ``dictConfig`` or ``fileConfig``."""

    loggers: list[tuple[logging.Logger, int, list[logging.Handler], bool, bool]]
    named: dict[str, logging.Handler]
    listed: list[Any]  # ``logging._handlerList``: weak references to every handler, flushed at exit
    disable: int


#: The loggers as they were before the running step's first ``dictConfig``/``fileConfig``, until it ends.
before_config: list[_Loggers] = []
config_hooked: list[bool] = []


def hook_config() -> None:
    """Note the loggers before a ``dictConfig``/``fileConfig`` in a step, once ``logging.config`` is imported.

    Called before each step until it is (``logging.config`` costs 20 ms to import: not imported for this).
    """
    config: Any = sys.modules.get("logging.config")
    if config is None or config_hooked or not _capture_handler:
        return
    config_hooked.append(True)
    real = config._clearExistingHandlers
    handler = _capture_handler[0]

    @functools.wraps(real)
    def _clearExistingHandlers() -> None:
        if handler.target is not None and not before_config:
            manager = logging.root.manager
            loggers = [(lg, lg.level, lg.handlers[:], lg.propagate, lg.disabled)
                       for lg in list(manager.loggerDict.values()) if isinstance(lg, logging.Logger)]
            before_config.append(_Loggers(loggers, dict(logging._handlers),  # type: ignore[attr-defined]
                                          logging._handlerList[:], manager.disable))  # type: ignore[attr-defined]
        real()

    config._clearExistingHandlers = _clearExistingHandlers


def put_back_loggers() -> None:
    """Give the named loggers back what they had before the step's configuration (``before_config``).

    A logger the configuration made that holds one of its handlers is reset to a plain one: those
    handlers wrote to the step's capture, and are closed.
    """
    before = before_config.pop()
    manager = logging.root.manager
    known = {id(h) for h in before.named.values()}
    made = [h for h in logging._handlers.values() if id(h) not in known]  # type: ignore[attr-defined]
    made_ids = {id(h) for h in made}
    with logging._lock:  # type: ignore[attr-defined]
        kept = set()
        for logger, level, handlers, propagate, disabled in before.loggers:
            kept.add(id(logger))
            logger.level, logger.propagate, logger.disabled = level, propagate, disabled
            logger.handlers[:] = handlers
        for new in list(manager.loggerDict.values()):
            if isinstance(new, logging.Logger) and id(new) not in kept and any(id(h) in made_ids for h in new.handlers):
                new.handlers[:] = [h for h in new.handlers if id(h) not in made_ids]
                new.level, new.propagate = logging.NOTSET, True
        listed = {id(ref) for ref in before.listed}
        logging._handlerList[:] = before.listed + [  # type: ignore[attr-defined]
            ref for ref in logging._handlerList if id(ref) not in listed]  # type: ignore[attr-defined]
        manager.disable = before.disable
        manager._clear_cache()  # type: ignore[attr-defined]  # the loggers' effective levels changed
    for h in made:
        h.close()
    logging._handlers.clear()  # type: ignore[attr-defined]
    logging._handlers.update(before.named)  # type: ignore[attr-defined]
