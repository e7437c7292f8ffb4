"""Pickle the user's classes that arrived by value so that they load as the live class wherever it exists.

Process and Dask workers receive the user's classes by value (cloudpickle), as
classes of a module they never imported. An output that a worker pickles would
then carry its class by value too, and another process loading it (the next
``orch run``, ``run.output()`` in a notebook, a registry or serving process)
would rebuild a second class of the same name: ``isinstance(cfg, Config)``
would be False there, and a dataclass would compare unequal to one built by
the user's own code, so results would depend on which executor produced the
cache. Such a class is written here as its module, its qualified name and the
class by value: loading takes the live class of that name where its module is
loaded, the class a task brought along in a worker, and builds the class from
its value only where neither exists.
"""

from __future__ import annotations

import pickle
import sys
from collections.abc import Callable
from typing import Any, BinaryIO

import cloudpickle

# Classes that tasks brought to this worker by value, by (module, qualified name): an input
# stored by an earlier run's worker loads as the class this task's code uses.
_carried: dict[tuple[str, str], type] = {}


def dump(value: object, f: BinaryIO, buffer_callback: Callable[[pickle.PickleBuffer], Any] | None = None) -> None:
    """``cloudpickle.dump(value, f, protocol=5)``, with by-value user classes loadable as the live class.

    ``buffer_callback`` is pickle's: a buffer it returns a false value for is left out of the
    stream (out of band), for the caller to store beside it.
    """
    _Pickler(f, protocol=5, buffer_callback=buffer_callback).dump(value)


class _Pickler(cloudpickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, type) and _travelled_by_value(obj):
            return _live_class, (obj.__module__, obj.__qualname__, cloudpickle.dumps(obj, protocol=5))
        return super().reducer_override(obj)


def _named(module: str, qualname: str) -> Any:
    """The object called ``qualname`` in the loaded module ``module``, or None."""
    found: Any = sys.modules.get(module)
    for part in qualname.split("."):
        try:
            found = getattr(found, part, None)
        except Exception:  # noqa: BLE001 - a module's own __getattr__ may raise anything
            return None
    return found


def _travelled_by_value(cls: type) -> bool:
    """True for a class that this process cannot find by its name: one that came by value.

    A class of a function body (``<locals>``) has no name to find it by: it
    stays as cloudpickle writes it.
    """
    module, qualname = getattr(cls, "__module__", None), getattr(cls, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str) or "<locals>" in qualname:
        return False
    # Not only when its module is not loaded here: a worker may have imported the user's file
    # meanwhile (a pickle by reference does), where that name is another object than this copy.
    return _named(module, qualname) is not cls


def _live_class(module: str, qualname: str, by_value: bytes) -> type:
    """Unpickling's side of ``_Pickler``: the live class, the one a task brought, or the stored one.

    Stored objects name this function (``orchestrator.class_refs._live_class``) and
    its three arguments: keep both, or older stores stop loading.
    """
    found = _named(module, qualname)
    if isinstance(found, type):
        return found
    carried = _carried.get((module, qualname))
    if carried is not None:
        return carried
    return pickle.loads(by_value)  # type: ignore[no-any-return]


def remember_classes(fn: Any) -> None:
    """Note the by-value classes that a task's step function uses by name (its globals and closure)."""
    for _ in range(8):  # a decorated function, a functools.partial or a bound method: what it wraps
        inner = getattr(fn, "__wrapped__", None) or getattr(fn, "func", None) or getattr(fn, "__func__", None)
        if inner is None or inner is fn:
            break
        fn = inner
    values = list(getattr(fn, "__globals__", {}).values())
    values += [cell.cell_contents for cell in getattr(fn, "__closure__", None) or () if _filled(cell)]
    for value in values:
        if isinstance(value, type) and _travelled_by_value(value):
            _carried[(value.__module__, value.__qualname__)] = value


def _filled(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018 - an empty cell raises
    except ValueError:
        return False
    return True
