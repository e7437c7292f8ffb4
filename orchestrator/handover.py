"""Handing a value the driver kept in memory to the next step, as if it had been loaded from the store.

With the sequential executor a step's outputs stay in the driver's memory
for the steps that read them, which saves loading them again. A step may
change its input in place (``df["a"] *= 100``), and that must neither reach
another step that reads the same output nor differ from what the process and
Dask executors do, where every step loads its own copy. So a kept value is
handed over only when that is safe and cheap: values that cannot change, a
pandas object as a copy-on-write copy, a numpy array as a copy. Anything else
(lists, dicts, models, user classes) is loaded from the store again,
checksum-checked like on any other executor. The driver keeps such a copy
too, not the object the step returned, which the step's module may hold and
change later. Parameter values made in the pipeline body get the same
treatment (``own_copy``), with a deep copy for the rest: once when the body
calls the step (``Trace.copy_of``, shared by calls given the same unchanged
value), once per attempt.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable
from pathlib import PurePath
from typing import Any

#: Returned by ``handover`` for a value that must be loaded from the store instead.
LOAD = object()

#: A numpy array of more bytes than this is not kept as a copy when the store maps its object back:
#: each reader loads it by a private memory map instead, which costs no memory of the driver's own
#: (a 1 GB array was copied once to keep and once more per reader: 2 GB held for 1 GB of data).
MAPPED_ABOVE = 1 << 20

_UNCHANGEABLE = (bool, int, float, complex, str, bytes, type(None), range, PurePath)


def handover(value: Any) -> Any:
    """``value`` itself, an independent copy of it, or ``LOAD`` when neither is safe and cheap."""
    copier = _copier(value)
    return LOAD if copier is None else copier(value)


def kept_output(value: Any, store_maps: bool) -> Any:
    """What the driver keeps of a step's output for the steps that read it, or ``LOAD``.

    As ``handover``, except that a large numpy array is left in the store when
    the store loads objects by memory map (``store_maps``): loading it there is
    what the process and Dask executors do, shares the page cache, and copies
    nothing until a reader changes it in place (the map is private).
    """
    if store_maps and _is_large_array(value):
        return LOAD
    return handover(value)


def _is_large_array(value: Any) -> bool:
    np = sys.modules.get("numpy")
    return np is not None and type(value) in (np.ndarray, np.memmap) and value.nbytes > MAPPED_ABOVE


def _same(value: Any) -> Any:
    return value


def _copier(value: Any) -> Callable[[Any], Any] | None:
    """How to hand ``value`` over (itself, or a copy), or None when it must be loaded instead."""
    if isinstance(value, _UNCHANGEABLE):
        return _same
    if type(value) is tuple:
        return _same if all(_copier(item) is _same for item in value) else None
    library = type(value).__module__.partition(".")[0]
    if library == "numpy":
        return _numpy(value)
    if library == "pandas":
        return _pandas(value)
    if library == "pyarrow":
        pa = sys.modules["pyarrow"]
        # Arrow arrays and tables cannot be changed in place.
        return _same if isinstance(value, (pa.Array, pa.ChunkedArray, pa.Table, pa.RecordBatch)) else None
    return None


def _numpy(value: Any) -> Callable[[Any], Any] | None:
    np = sys.modules["numpy"]
    if isinstance(value, np.generic):
        return _same  # numpy scalars are immutable
    if isinstance(value, np.ndarray) and not value.dtype.hasobject:
        return np.ndarray.copy
    return None


def _pandas(value: Any) -> Callable[[Any], Any] | None:
    pd = sys.modules["pandas"]
    if not isinstance(value, (pd.DataFrame, pd.Series, pd.Index)):
        return None
    if any(dtype == object for dtype in _dtypes(value)):
        return None  # cells may hold lists or dicts that a copy would still share
    # With copy-on-write (always on from pandas 3), a shallow copy is independent and costs no data.
    deep = not (int(pd.__version__.split(".")[0]) >= 3 or bool(pd.options.mode.copy_on_write))
    return lambda frame: frame.copy(deep=deep)


def _dtypes(value: Any) -> list[Any]:
    return list(value.dtypes) if hasattr(value, "columns") else [value.dtype]


def own_copy(value: Any) -> Any:
    """A parameter value for one step, which it may change without reaching another step.

    Values made in the pipeline body (a list, an array, a frame) are passed to
    every step that takes them; other executors pickle them per task, so each
    step has its own. A value that cannot be copied is passed as it is.
    """
    shared = handover(value)
    if shared is not LOAD:
        return shared
    try:
        return copy.deepcopy(value)
    except Exception:  # noqa: BLE001 - a lock, a client, an open file: passed as it is
        return value
