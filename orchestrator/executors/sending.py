"""Pickling a task for another process, and saying what stopped it when it cannot be.

A task travels to a pool worker, a Dask worker or a timed step's child as a
cloudpickle of its ``TaskSpec``: the step's function, with the globals and
closure values its code uses, and its arguments. Two things make that differ
from running the step in ``orch`` itself, and this module deals with both:

- A ``threading`` lock (``LOCK = threading.Lock()`` around a module's cache)
  cannot be pickled, but needs not be: a worker importing that module would
  make a lock of its own, and a lock orders work in one process only. Locks
  (and so the conditions, events and semaphores built on them) travel as new,
  unlocked locks.
- Anything else that will not pickle (a module-level client whose hashing the
  cache key allowed, a ``multiprocessing`` lock) fails that step's attempt
  with one line naming the step and the value (``UnpicklableStepError``),
  never retried, instead of a pickling traceback out of the run loop. Finding
  the value is done on that failure path only.

It must not import the run loop, the store or lineage: executors only run.
"""

from __future__ import annotations

import io
import shutil
import threading
import time
import types
from collections import ChainMap
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

import cloudpickle

from orchestrator.class_refs import QualnamePickler
from orchestrator.errors import UnpicklableStepError
from orchestrator.retry import Failure

if TYPE_CHECKING:
    from orchestrator.task import TaskResult, TaskSpec

_LOCK_TYPES: dict[type, Any] = {
    type(threading.Lock()): lambda lock: (threading.Lock, ()),
    type(threading.RLock()): lambda lock: (threading.RLock, ()),
}


class _TaskPickler(QualnamePickler):  # type: ignore[misc]
    """cloudpickle, with ``threading`` locks sent as new ones (see the module's docstring), and the
    user's classes rebuilt as defined, qualified names and slots kept (``class_refs.with_qualname``)."""

    dispatch_table: ClassVar[ChainMap[type, Any]] = ChainMap(_LOCK_TYPES, cloudpickle.Pickler.dispatch_table)


def dumps(value: Any) -> bytes:
    """``cloudpickle.dumps(value)`` (protocol 5), locks sent as new ones."""
    buffer = io.BytesIO()
    _TaskPickler(buffer, protocol=5).dump(value)
    return buffer.getvalue()


def dumps_task(spec: TaskSpec, where: str) -> bytes:
    """The pickle of ``spec`` to send to ``where`` (``a process-pool worker``).

    Raises:
        UnpicklableStepError: something the step needs cannot be pickled; the message names it.
    """
    try:
        return dumps(spec)
    except Exception as exc:  # noqa: BLE001 - whatever a value's pickling raises
        raise UnpicklableStepError(_message(spec, where, exc)) from None


def not_sent(spec: TaskSpec, exc: UnpicklableStepError) -> TaskResult:
    """The failed attempt of a task that could not be pickled: it never started, so its spill folder goes."""
    from orchestrator.task import TaskResult

    if spec.spill:
        shutil.rmtree(spec.spill, ignore_errors=True)
    now = time.time()
    return TaskResult(node=spec.node, attempt=spec.attempt, started=now, ended=now,
                      failure=Failure.from_exception(exc))


def _message(spec: TaskSpec, where: str, exc: Exception) -> str:
    """``step 'query' cannot be sent to ...: module-level value 'CONN' it uses cannot be pickled (...)``."""
    found = _unpicklable_part(spec)
    what, error = found if found is not None else ("a value it uses", exc)
    return (f"step '{spec.node}' cannot be sent to {where}: {what} cannot be pickled "
            f"({type(error).__name__}: {error}). Create it inside the step (or in a function the step "
            "calls), from a setting the step takes as a parameter, or run the pipeline on the sequential "
            "executor, which does not pickle steps.")


def _unpicklable_part(spec: TaskSpec) -> tuple[str, Exception] | None:
    """The first argument, closure value, default or global of the step's code that will not pickle."""
    for label, value in _parts(spec):
        try:
            dumps(value)
        except Exception as exc:  # noqa: BLE001 - what the whole task's pickling met
            return label, exc
    return None


def _parts(spec: TaskSpec) -> Iterator[tuple[str, Any]]:
    for name, value in spec.arguments.items():
        yield f"its argument '{name}' (a {type(value).__name__})", value
    seen: set[int] = set()
    yield from _function_parts(spec.fn, spec.step_name, seen)


def _function_parts(fn: Any, owner: str, seen: set[int]) -> Iterator[tuple[str, Any]]:
    """The values ``fn``'s code reaches, then those of the functions among them (each once)."""
    fn = getattr(fn, "__wrapped__", fn)
    if not isinstance(fn, types.FunctionType) or id(fn) in seen:
        return
    seen.add(id(fn))
    values: list[tuple[str, Any]] = []
    code = fn.__code__
    for name, cell in zip(code.co_freevars, fn.__closure__ or ()):
        try:
            values.append((f"closure variable '{name}' of '{owner}'", cell.cell_contents))
        except ValueError:
            continue  # an empty cell: nothing to pickle
    for default in (fn.__defaults__ or ()) + tuple((fn.__kwdefaults__ or {}).values()):
        values.append((f"a default argument of '{owner}'", default))
    for name in _global_names(code):
        if name in fn.__globals__:
            value = fn.__globals__[name]
            if not isinstance(value, types.ModuleType):
                values.append((f"module-level value '{name}' used by '{owner}'", value))
    for label, value in values:
        if not isinstance(value, types.FunctionType):
            yield f"{label} (a {type(value).__name__})", value
    for _, value in values:
        if isinstance(value, types.FunctionType):
            yield from _function_parts(value, value.__name__, seen)


def _global_names(code: types.CodeType) -> Iterator[str]:
    """Names ``code`` and the code nested in it (comprehensions, inner functions) may read as globals."""
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _global_names(const)

