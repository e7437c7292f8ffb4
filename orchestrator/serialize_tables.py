"""Tables in Arrow IPC: the ``arrow.pandas`` and ``arrow.table`` materializers.

A pandas DataFrame or Series is written as an uncompressed Arrow IPC file
(Arrow IPC over Parquet: on this machine class it writes at ~1.9 GB/s
against Parquet's ~0.5 GB/s, and it can be memory-mapped on load), with a
small plan in the metadata that restores what Arrow alone would lose: index
levels and names, column labels, frequencies, masked and categorical dtypes.
A frame that this plan cannot restore exactly is refused (``can_write`` is
False) and falls through to pickle. Numeric columns are read back as views of
the mapped buffer, without copies.

This module must not touch the filesystem or know about digests, and must
not import pandas or pyarrow at import time: a value of theirs has to exist
before either is needed.
"""

from __future__ import annotations

import functools
import sys
import warnings
from typing import TYPE_CHECKING, Any, BinaryIO

from orchestrator.errors import StoreError
from orchestrator.json_values import is_json_exact

if TYPE_CHECKING:
    import pandas as pd


def _loaded(module: str) -> Any:
    """Return an already imported module, or None: a value of it cannot exist otherwise."""
    return sys.modules.get(module)


# --- pandas fidelity ----------------------------------------------------------

_MASKED_DTYPES = frozenset(
    ["Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64"]
    + ["Float32", "Float64", "boolean"]
)
_SERIES_COLUMN = "__series__"


@functools.lru_cache(maxsize=1)
def _pandas_major() -> int:
    """pandas' major version: what Arrow gives back to pandas 2 differs in places."""
    import pandas as pd

    return int(pd.__version__.split(".")[0])


def _dtype_is_faithful(dtype: Any) -> bool:
    """Return True if Arrow gives back a column of this dtype unchanged (object: see values)."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    if isinstance(dtype, np.dtype):
        # complex and long double have no Arrow type.
        return dtype.kind in "biuMmO" or (dtype.kind == "f" and dtype.itemsize <= 8)
    if isinstance(dtype, pd.CategoricalDtype):
        # Arrow keeps a dictionary's values, but pandas rebuilds categories of numpy and str
        # dtypes only: tz-aware dates came back naive, Int64 as int64, and periods or intervals
        # made an artifact that failed to load.
        categories = dtype.categories.dtype
        if isinstance(categories, pd.StringDtype):
            return _is_default_str(categories)
        return isinstance(categories, np.dtype) and categories.kind in "biufMm" and _dtype_is_faithful(categories)
    if isinstance(dtype, pd.StringDtype):
        # python storage comes back as pyarrow; before pandas 3, pyarrow comes back as python.
        return dtype.storage == "pyarrow" and _pandas_major() >= 3
    if isinstance(dtype, pd.ArrowDtype):
        # Strings come back as StringDtype; nested types do not come back at all.
        arrow_type = dtype.pyarrow_dtype
        return any(
            check(arrow_type)
            for check in (pa.types.is_integer, pa.types.is_floating, pa.types.is_boolean)
        )
    if isinstance(dtype, pd.IntervalDtype):
        # A tz-aware subtype (kind "M" too) made an artifact that failed to load.
        subtype = dtype.subtype
        return isinstance(subtype, np.dtype) and subtype.kind in "iufMm"
    if isinstance(dtype, (pd.DatetimeTZDtype, pd.PeriodDtype)):
        return True
    return str(dtype) in _MASKED_DTYPES


def _object_values_kind(values: Any) -> str | None:
    """Classify an object column: "string", "bytes", "empty" or None (unfaithful).

    Arrow turns every missing value into null, which comes back as None, so
    only None may mark a missing value. A ``str`` or ``bytes`` subclass (a
    ``str`` enum member, ``np.str_``) comes back as the plain type, another
    value: ``infer_dtype`` counts it as text, so the types are checked too.
    """
    import pandas as pd

    kind = pd.api.types.infer_dtype(values, skipna=True)
    if kind not in ("string", "bytes", "empty"):
        return None
    missing = pd.isna(values)
    if missing.any() and any(item is not None for item in values[missing]):
        return None
    if kind != "empty" and not set(map(type, values.tolist())) <= {str if kind == "string" else bytes, type(None)}:
        return None
    return kind


def _label_name_ok(name: object) -> bool:
    """Index and label names travel in the metadata as JSON scalars."""
    return type(name) not in (list, dict) and is_json_exact(name)


def _index_level_plan(level: pd.Index) -> bool | None:
    """Return whether a level needs restoring to object dtype, or None if unfaithful."""
    if not _dtype_is_faithful(level.dtype) or _is_half_float(level.dtype):
        return None
    if level.dtype != object:
        return False
    if level.hasnans or _object_values_kind(level.to_numpy()) != "string":
        return None
    return True


def _is_half_float(dtype: Any) -> bool:
    """Return True for ``halffloat[pyarrow]``: Arrow's conversion builds a numpy float16 index of
    it, which pandas refuses, so a frame indexed by one was stored but could not be loaded."""
    import pandas as pd
    import pyarrow as pa

    return isinstance(dtype, pd.ArrowDtype) and pa.types.is_float16(dtype.pyarrow_dtype)


def _index_plan(index: pd.Index, plan: dict[str, Any]) -> bool:
    """Check the row index; note in ``plan`` what to restore. False if unfaithful."""
    import pandas as pd

    if not all(_label_name_ok(name) for name in index.names):
        return False
    plan["index_names"] = list(index.names)  # Arrow turns non-str names into str
    if type(index) is pd.RangeIndex:
        return True
    levels = index.levels if isinstance(index, pd.MultiIndex) else [index]
    object_levels = []
    for position, level in enumerate(levels):
        needs_object = _index_level_plan(level)
        if needs_object is None:
            return False
        if needs_object:
            object_levels.append(position)
    plan["object_index_levels"] = object_levels
    dtypes = {}
    for position, level in enumerate(levels):
        if _arrow_restores_index_dtype(level.dtype):
            continue
        text = _dtype_text(level.dtype)
        if text is None:
            return False
        dtypes[str(position)] = text
    if dtypes:
        plan["index_dtypes"] = dtypes
    freqs = [_freq_text(level) for level in levels]
    if any(freq is False for freq in freqs):
        return False
    if any(freqs):
        plan["index_freqs"] = freqs
    return True


def _arrow_restores_index_dtype(dtype: Any) -> bool:
    """Return True if Arrow's pandas metadata gives an index level of this dtype back as it was.

    It does for numpy dtypes and the dtypes pandas keeps whole in that metadata
    (categorical, interval, period, tz-aware datetimes, ``str``), but not for
    masked (``Int64``), ``string[pyarrow]`` or ``ArrowDtype`` levels: those come
    back as numpy or ``str`` levels, and ``Int64`` with a missing value as
    float64, so their dtype is kept in the plan and restored from the table.
    """
    import numpy as np
    import pandas as pd

    if isinstance(dtype, pd.StringDtype):
        return _is_default_str(dtype)
    return isinstance(
        dtype, (np.dtype, pd.CategoricalDtype, pd.IntervalDtype, pd.PeriodDtype, pd.DatetimeTZDtype)
    )


def _dtype_text(dtype: Any) -> str | None:
    """Text that ``pandas_dtype`` turns back into ``dtype``, or None if there is none."""
    import pandas as pd

    candidates = [str(dtype)]
    if isinstance(dtype, pd.StringDtype):  # str() says "string" for either storage
        candidates.insert(0, f"string[{dtype.storage}]")
    for text in candidates:
        try:
            if pd.api.types.pandas_dtype(text) == dtype:
                return text
        except (TypeError, ValueError):
            continue
    return None


def _restore_index_dtypes(frame: pd.DataFrame, table: Any, dtypes: dict[str, str]) -> None:
    """Rebuild the index levels whose dtype Arrow's conversion changed, from the table's columns.

    From the Arrow column, not by casting the converted level: an ``Int64``
    level with a missing value came back as float64, which is not exact past 2**53.
    """
    import pandas as pd

    names = (table.schema.pandas_metadata or {}).get("index_columns", [])
    index = frame.index
    levels = [index.get_level_values(i) for i in range(index.nlevels)]
    changed = False
    for position, text in dtypes.items():
        i = int(position)
        dtype = pd.api.types.pandas_dtype(text)
        if levels[i].dtype == dtype or i >= len(names) or not isinstance(names[i], str):
            continue
        values = dtype.__from_arrow__(table.column(names[i]))  # type: ignore[union-attr]
        levels[i] = pd.Index(values, name=levels[i].name)
        changed = True
    if not changed:
        return
    if isinstance(index, pd.MultiIndex):
        frame.index = pd.MultiIndex.from_arrays(levels, names=index.names)
    else:
        frame.index = levels[0]


def _freq_text(level: pd.Index) -> str | bool | None:
    """Return a level's freq as text (Arrow drops it), None if it has none, False if lossy."""
    import pandas as pd

    freq = getattr(level, "freq", None)
    if not isinstance(level, (pd.DatetimeIndex, pd.TimedeltaIndex)) or freq is None:
        return None
    try:  # custom business days, for one, lose their holidays in text
        return level.freqstr if pd.tseries.frequencies.to_offset(level.freqstr) == freq else False
    except ValueError:
        return False


def _with_freq(level: pd.Index, freq: str | None) -> pd.Index:
    if not freq:
        return level
    try:
        return type(level)(level, freq=freq)
    except ValueError:  # a MultiIndex level that lost unused values no longer fits
        return level


def _is_plain_label_dtype(dtype: Any) -> bool:
    """Return True for label dtypes Arrow's pandas metadata restores as they were."""
    import numpy as np
    import pandas as pd

    if isinstance(dtype, pd.StringDtype):
        return _is_default_str(dtype)
    return isinstance(dtype, np.dtype) and dtype.kind in "iuf"


def _is_default_str(dtype: Any) -> bool:
    """Return True for pandas' default ``str`` dtype (Arrow-backed text, NaN when missing)."""
    import numpy as np
    import pandas as pd

    try:
        return bool(dtype == pd.StringDtype(na_value=np.nan))
    except TypeError:  # pandas before 2.3 has no such dtype: every StringDtype uses pd.NA
        return False


def _labels_plan(columns: pd.Index, plan: dict[str, Any]) -> bool:
    """Check the column labels; note in ``plan`` what to restore. False if unfaithful."""
    import pandas as pd

    if not columns.is_unique or not all(_label_name_ok(name) for name in columns.names):
        return False
    plan["label_names"] = list(columns.names)
    if type(columns) is pd.RangeIndex:
        plan["range_labels"] = [columns.start, columns.stop, columns.step]
        return True
    if isinstance(columns, pd.MultiIndex):
        return all(_is_plain_label_dtype(level.dtype) for level in columns.levels)
    if _is_plain_label_dtype(columns.dtype):
        return True
    if _index_level_plan(columns):  # object dtype holding only str
        plan["object_labels"] = True
        return True
    return False


def _frame_plan(frame: pd.DataFrame) -> dict[str, Any] | None:
    """Return what ``read`` must restore after Arrow, or None if Arrow is not faithful."""
    import pandas as pd

    if type(frame) is not pd.DataFrame or not frame.flags.allows_duplicate_labels:
        return None
    try:
        if not is_json_exact(frame.attrs):
            return None
    except RecursionError:
        return None
    if frame.attrs and _pandas_major() < 3:
        return None  # pandas 2 writes attrs into Arrow's metadata but does not read them back
    plan: dict[str, Any] = {}
    if not _labels_plan(frame.columns, plan) or not _index_plan(frame.index, plan):
        return None
    object_columns = []
    for position, dtype in enumerate(frame.dtypes):
        if not _dtype_is_faithful(dtype):
            return None
        if dtype == object:
            kind = _object_values_kind(frame.iloc[:, position].to_numpy())
            if kind is None:
                return None
            if kind == "string":  # comes back as pandas' str dtype unless restored
                object_columns.append(position)
    plan["object_columns"] = object_columns
    return plan


def _as_frame(obj: object) -> tuple[pd.DataFrame, dict[str, Any]] | None:
    """Return the frame to write and the restore plan, or None if not faithful."""
    pd = _loaded("pandas")
    if pd is None:
        return None
    value: Any = obj
    if type(value) is pd.Series:
        if not is_json_exact(value.name):  # the name travels in the metadata
            return None
        frame = value.to_frame(name=_SERIES_COLUMN)
        plan = _frame_plan(frame)
        if plan is not None:
            plan.update(kind="Series", series_name=value.name)
    elif type(value) is pd.DataFrame:
        frame = value
        plan = _frame_plan(frame)
        if plan is not None:
            plan["kind"] = "DataFrame"
    else:
        return None
    return (frame, plan) if plan is not None else None


def _restore_frame(frame: pd.DataFrame, table: Any, plan: dict[str, Any]) -> pd.DataFrame:
    """Undo what Arrow's pandas conversion changes (object strings, RangeIndex labels, freq)."""
    import pandas as pd

    for position in plan.get("object_columns", ()):
        values = table.column(position).to_numpy(zero_copy_only=False)
        frame.isetitem(position, pd.Series(values, index=frame.index, dtype=object, copy=False))
    if plan.get("index_dtypes"):
        _restore_index_dtypes(frame, table, plan["index_dtypes"])
    object_levels = plan.get("object_index_levels")
    if object_levels:
        index = frame.index
        if isinstance(index, pd.MultiIndex):
            levels = [index.levels[i].astype(object) for i in object_levels]
            frame.index = index.set_levels(levels, level=object_levels)
        else:
            frame.index = index.astype(object)
    freqs = plan.get("index_freqs")
    if freqs:
        index = frame.index
        if isinstance(index, pd.MultiIndex):
            frame.index = index.set_levels(
                [_with_freq(lv, f) for lv, f in zip(index.levels, freqs)]
            )
        else:
            frame.index = _with_freq(index, freqs[0])
    if plan.get("range_labels"):
        start, stop, step = plan["range_labels"]
        frame.columns = pd.RangeIndex(start, stop, step)
    elif plan.get("object_labels"):
        frame.columns = frame.columns.astype(object)
    if "index_names" in plan:
        frame.index = frame.index.set_names(plan["index_names"])
    if "label_names" in plan:
        frame.columns = frame.columns.set_names(plan["label_names"])
    return frame


# --- Arrow -------------------------------------------------------------------


def _write_ipc(data: Any, f: BinaryIO) -> None:
    """Write a Table or a RecordBatch (kept as exactly one batch, even if empty).

    A table of no rows is written as one empty batch too: Arrow writes no
    batch for it otherwise, and a dictionary travels with a batch, so the
    categories of an empty frame's categorical column (a filter that kept no
    row) came back as none.
    """
    import pyarrow as pa

    if type(data) is pa.Table and data.num_rows == 0 and data.num_columns:
        data = pa.RecordBatch.from_arrays(
            [column.chunk(0) if column.num_chunks else column.combine_chunks() for column in data.columns],
            schema=data.schema,
        )
    with pa.ipc.new_file(f, data.schema) as writer:
        if type(data) is pa.RecordBatch:
            writer.write_batch(data)
        else:
            writer.write_table(data)


@functools.lru_cache(maxsize=1)
def _pandas_arrow_types_registered() -> None:
    """Register pandas' Arrow types for periods and intervals, as pandas does only when it first writes one.

    A table written from a frame with such a column or index level holds
    them as Arrow extension types; a process that has not written one yet (a
    re-run, a worker, ``orchestrator.load``) read their storage instead: the
    period ordinals as integers and the intervals as dicts, with no warning.
    """
    try:
        import pandas.core.arrays.arrow.extension_types  # noqa: F401 - registers them on import
    except ImportError:  # a pandas that keeps them elsewhere registers them with its Arrow support
        pass


def _read_ipc(data: memoryview) -> Any:
    """Open an Arrow IPC file over ``data`` without copying: buffers keep ``data`` alive."""
    import pyarrow as pa

    return pa.ipc.open_file(pa.py_buffer(data))


def _to_pandas(table: Any, data: memoryview) -> pd.DataFrame:
    """Convert like ``table.to_pandas()``, but view plain numeric columns inside ``data``.

    Arrow copies such columns into new blocks (its zero-copy arrays are
    read-only, which would break in-place edits). A view of a writable buffer,
    such as the store's private file mapping, is writable, costs nothing and
    never changes the file: written pages are copied by the OS.
    """
    import pandas as pd

    shell = table.slice(0, 0).to_pandas()  # the exact labels and dtypes, for free
    views = _numeric_views(table, data, list(shell.dtypes))
    if not views:
        return table.to_pandas()
    rest = table
    for position in sorted(views, reverse=True):
        rest = rest.remove_column(position)
    converted = rest.to_pandas()
    others = iter(range(converted.shape[1]))
    columns = {
        position: pd.Series(views[position], index=converted.index, copy=False)
        if position in views
        else converted.iloc[:, next(others)]
        for position in range(len(shell.columns))
    }
    # copy=False also skips consolidation, which would copy the views.
    frame = pd.DataFrame(columns, index=converted.index, copy=False)
    frame.columns = shell.columns
    frame.attrs = converted.attrs
    return frame


def _numeric_views(table: Any, data: memoryview, dtypes: list[Any]) -> dict[int, Any]:
    """Writable arrays over ``data`` for int/float data columns without nulls, by position."""
    import numpy as np
    import pyarrow as pa

    if data.readonly or sys.byteorder != "little":
        return {}
    base = pa.py_buffer(data).address
    views = {}
    for position, dtype in enumerate(dtypes):  # data columns come first in the table
        column = table.column(position)
        kind = column.type
        plain = pa.types.is_integer(kind) or (pa.types.is_floating(kind) and kind.bit_width > 16)
        if (
            not plain
            or column.num_chunks != 1
            or column.null_count
            or dtype != kind.to_pandas_dtype()
        ):
            continue
        chunk = column.chunk(0)
        start = chunk.buffers()[1].address - base + chunk.offset * dtype.itemsize
        if 0 <= start <= data.nbytes - len(chunk) * dtype.itemsize and start % dtype.itemsize == 0:
            views[position] = np.frombuffer(data, dtype=dtype, count=len(chunk), offset=start)
    return views


class ArrowPandasMaterializer:
    name = "arrow.pandas"
    needs_unpickling = False

    def can_write(self, value: object) -> bool:
        return _as_frame(value) is not None

    def write(self, value: object, f: BinaryIO) -> dict[str, Any]:
        import pyarrow as pa

        prepared = _as_frame(value)
        if prepared is None:
            raise StoreError(f"a {type(value).__name__} cannot be stored faithfully as Arrow")
        frame, plan = prepared
        if any(name is not None for name in frame.index.names):
            # Arrow names index columns after their names, as text: an index named 0 beside a
            # column labelled 0 made one column of the two, and the frame read back lost a
            # column or failed to load. read() restores the names from the plan.
            frame = frame.rename_axis(index=[None] * frame.index.nlevels)
        with warnings.catch_warnings():
            # read() restores the names this warns about.
            warnings.filterwarnings("ignore", "The DataFrame has non-str index name")
            table = pa.Table.from_pandas(frame, preserve_index=None)
        _write_ipc(table, f)
        labels = [str(label) for label in frame.columns]
        dtypes = {label: str(dtype) for label, dtype in zip(labels, frame.dtypes)}
        return {"rows": len(frame), "columns": labels, "dtypes": dtypes, **plan}

    def read(self, data: memoryview, meta: dict[str, Any]) -> object:
        _pandas_arrow_types_registered()
        table = _read_ipc(data).read_all()
        frame = _restore_frame(_to_pandas(table, data), table, meta)
        if meta.get("kind") != "Series":
            return frame
        series = frame.iloc[:, 0]
        series.name = meta.get("series_name")
        return series


class ArrowTableMaterializer:
    name = "arrow.table"
    needs_unpickling = False

    def can_write(self, value: object) -> bool:
        pa = _loaded("pyarrow")
        return pa is not None and type(value) in (pa.Table, pa.RecordBatch)

    def write(self, value: object, f: BinaryIO) -> dict[str, Any]:
        data: Any = value
        _write_ipc(data, f)
        schema = data.schema
        return {
            "kind": type(value).__name__,
            "rows": data.num_rows,
            "columns": schema.names,
            "dtypes": {field.name: str(field.type) for field in schema},
        }

    def read(self, data: memoryview, meta: dict[str, Any]) -> object:
        if any("extension<pandas." in str(t) for t in (meta.get("dtypes") or {}).values()):
            _pandas_arrow_types_registered()  # a table made from a frame with periods or intervals
        reader = _read_ipc(data)
        if meta.get("kind") == "RecordBatch":
            return reader.get_batch(0)
        return reader.read_all()
