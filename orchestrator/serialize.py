"""Value <-> bytes by type: the materializers and the registry that picks one.

A *materializer* encodes one kind of value into bytes and decodes it back. The
store asks :func:`materializer_for` which one fits a step's output, records its
``name`` next to the artifact, and later decodes with
:func:`get_materializer`. Built-ins, tried in this order after any materializer
a user registered with ``first=True``:

- ``arrow.pandas``: pandas DataFrame / Series as an uncompressed Arrow IPC file;
- ``arrow.table``: pyarrow Table / RecordBatch as an Arrow IPC file;
- ``numpy``: a non-object ndarray in ``.npy`` format;
- ``json``: values that come back identical through JSON;
- ``pickle``: cloudpickle (protocol 5), which takes everything else.

A built-in accepts a value only if the round trip is faithful (same type,
dtypes, index, labels); anything it cannot restore exactly falls through to
pickle. Decoding works from a buffer (a memory-mapped file or inline bytes)
and avoids copies where the format allows, so a decoded value may keep that
buffer alive.

This module must not touch the filesystem, know about digests or checksums,
or import pandas, pyarrow or numpy at import time: those are imported inside
functions, once a value of theirs has been seen.
"""

from __future__ import annotations

import ast
import json
import math
import pickle
import sys
import warnings
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, Protocol, runtime_checkable

from orchestrator.errors import StoreError, did_you_mean

if TYPE_CHECKING:
    import pandas as pd


@runtime_checkable
class Materializer(Protocol):
    """Encodes one kind of value to bytes and decodes it back.

    Attributes:
        name: Stable id recorded in the metadata, e.g. ``"arrow.pandas"``.
        needs_unpickling: True when ``read`` runs pickle (arbitrary code).
    """

    name: str
    needs_unpickling: bool

    def can_write(self, value: object) -> bool:
        """Return True if ``value`` round-trips faithfully through this format."""
        ...

    def write(self, value: object, f: BinaryIO) -> dict[str, Any]:
        """Write the encoded value to ``f``; return JSON-able metadata (may be ``{}``)."""
        ...

    def read(self, data: memoryview, meta: dict[str, Any]) -> object:
        """Decode a value from ``data`` using the metadata ``write`` returned."""
        ...


def _loaded(module: str) -> Any:
    """Return an already imported module, or None: a value of it cannot exist otherwise."""
    return sys.modules.get(module)


# --- JSON ------------------------------------------------------------------

# Python refuses to turn ints of more than 4300 digits into text by default.
_MAX_JSON_INT_BITS = 14_000


def _is_json_exact(value: object) -> bool:
    """Return True if ``json.loads(json.dumps(value))`` gives back an equal value of equal types."""
    kind = type(value)
    if value is None or kind is bool or kind is str:
        return True
    if kind is int:
        return value.bit_length() < _MAX_JSON_INT_BITS  # type: ignore[attr-defined]
    if kind is float:
        return math.isfinite(value)  # type: ignore[arg-type]
    if kind is list:
        return all(_is_json_exact(item) for item in value)  # type: ignore[attr-defined]
    if kind is dict:
        return all(
            type(key) is str and _is_json_exact(item)
            for key, item in value.items()  # type: ignore[attr-defined]
        )
    return False


class _JsonMaterializer:
    name = "json"
    needs_unpickling = False

    def can_write(self, value: object) -> bool:
        try:
            return _is_json_exact(value)
        except RecursionError:  # too deep or self-referencing: pickle copes
            return False

    def write(self, value: object, f: BinaryIO) -> dict[str, Any]:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        # surrogatepass keeps lone surrogates (e.g. from os.fsdecode) exact.
        f.write(text.encode("utf-8", "surrogatepass"))
        return {}

    def read(self, data: memoryview, meta: dict[str, Any]) -> object:
        return json.loads(bytes(data).decode("utf-8", "surrogatepass"))


# --- pickle ------------------------------------------------------------------


class _PickleMaterializer:
    name = "pickle"
    needs_unpickling = True

    def can_write(self, value: object) -> bool:
        return True

    def write(self, value: object, f: BinaryIO) -> dict[str, Any]:
        import cloudpickle

        cloudpickle.dump(value, f, protocol=5)
        return {"protocol": 5}

    def read(self, data: memoryview, meta: dict[str, Any]) -> object:
        return pickle.loads(data)


# --- numpy -------------------------------------------------------------------

_NPY_MAGIC = b"\x93NUMPY"


class _NumpyMaterializer:
    name = "numpy"
    needs_unpickling = False

    def can_write(self, value: object) -> bool:
        np = _loaded("numpy")
        array: Any = value
        return np is not None and type(array) is np.ndarray and not array.dtype.hasobject

    def write(self, value: object, f: BinaryIO) -> dict[str, Any]:
        import numpy as np

        assert isinstance(value, np.ndarray)
        np.lib.format.write_array(f, value, allow_pickle=False)
        return {"dtype": str(value.dtype), "shape": list(value.shape)}

    def read(self, data: memoryview, meta: dict[str, Any]) -> object:
        return _read_npy(data)


def _read_npy(data: memoryview) -> Any:
    """Decode ``.npy`` bytes as an array that shares ``data`` instead of copying it."""
    import numpy as np

    if bytes(data[:6]) != _NPY_MAGIC:
        raise ValueError("payload is not in .npy format")
    major = data[6]
    size_bytes = 2 if major == 1 else 4
    start = 8 + size_bytes
    header_len = int.from_bytes(data[8:start], "little")
    encoding = "latin1" if major < 3 else "utf8"
    header = ast.literal_eval(bytes(data[start : start + header_len]).decode(encoding))
    dtype = np.lib.format.descr_to_dtype(header["descr"])
    shape = tuple(header["shape"])
    order: Literal["C", "F"] = "F" if header["fortran_order"] else "C"
    count = math.prod(shape)
    if count == 0 or dtype.itemsize == 0:
        return np.empty(shape, dtype=dtype, order=order)
    flat = np.frombuffer(data, dtype=dtype, count=count, offset=start + header_len)
    return flat.reshape(shape, order=order)


# --- pandas fidelity ----------------------------------------------------------

_MASKED_DTYPES = frozenset(
    ["Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64"]
    + ["Float32", "Float64", "boolean"]
)
_SERIES_COLUMN = "__series__"


def _dtype_is_faithful(dtype: Any) -> bool:
    """Return True if Arrow gives back a column of this dtype unchanged (object: see values)."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    if isinstance(dtype, np.dtype):
        # complex and long double have no Arrow type.
        return dtype.kind in "biuMmO" or (dtype.kind == "f" and dtype.itemsize <= 8)
    if isinstance(dtype, pd.CategoricalDtype):
        categories = dtype.categories.dtype
        return categories != object and _dtype_is_faithful(categories)
    if isinstance(dtype, pd.StringDtype):
        return dtype.storage == "pyarrow"  # python storage comes back as pyarrow
    if isinstance(dtype, pd.ArrowDtype):
        # Strings come back as StringDtype; nested types do not come back at all.
        arrow_type = dtype.pyarrow_dtype
        return any(
            check(arrow_type)
            for check in (pa.types.is_integer, pa.types.is_floating, pa.types.is_boolean)
        )
    if isinstance(dtype, pd.IntervalDtype):
        return dtype.subtype is not None and dtype.subtype.kind in "iufMm"
    if isinstance(dtype, (pd.DatetimeTZDtype, pd.PeriodDtype)):
        return True
    return str(dtype) in _MASKED_DTYPES


def _object_values_kind(values: Any) -> str | None:
    """Classify an object column: "string", "bytes", "empty" or None (unfaithful).

    Arrow turns every missing value into null, which comes back as None, so
    only None may mark a missing value.
    """
    import pandas as pd

    kind = pd.api.types.infer_dtype(values, skipna=True)
    if kind not in ("string", "bytes", "empty"):
        return None
    missing = pd.isna(values)
    if missing.any() and any(item is not None for item in values[missing]):
        return None
    return kind


def _label_name_ok(name: object) -> bool:
    """Index and label names travel in the metadata as JSON scalars."""
    return type(name) not in (list, dict) and _is_json_exact(name)


def _index_level_plan(level: pd.Index) -> bool | None:
    """Return whether a level needs restoring to object dtype, or None if unfaithful."""
    if not _dtype_is_faithful(level.dtype):
        return None
    if level.dtype != object:
        return False
    if level.hasnans or _object_values_kind(level.to_numpy()) != "string":
        return None
    return True


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
    freqs = [_freq_text(level) for level in levels]
    if any(freq is False for freq in freqs):
        return False
    if any(freqs):
        plan["index_freqs"] = freqs
    return True


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
        return dtype == pd.StringDtype(na_value=np.nan)  # pandas' default ``str``
    return isinstance(dtype, np.dtype) and dtype.kind in "iuf"


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
        if not _is_json_exact(frame.attrs):
            return None
    except RecursionError:
        return None
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
        if not _is_json_exact(value.name):  # the name travels in the metadata
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
    """Write a Table or a RecordBatch (kept as exactly one batch, even if empty)."""
    import pyarrow as pa

    with pa.ipc.new_file(f, data.schema) as writer:
        if type(data) is pa.RecordBatch:
            writer.write_batch(data)
        else:
            writer.write_table(data)


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


class _ArrowPandasMaterializer:
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
        with warnings.catch_warnings():
            # read() restores the names this warns about.
            warnings.filterwarnings("ignore", "The DataFrame has non-str index name")
            table = pa.Table.from_pandas(frame, preserve_index=None)
        _write_ipc(table, f)
        labels = [str(label) for label in frame.columns]
        dtypes = {label: str(dtype) for label, dtype in zip(labels, frame.dtypes)}
        return {"rows": len(frame), "columns": labels, "dtypes": dtypes, **plan}

    def read(self, data: memoryview, meta: dict[str, Any]) -> object:
        table = _read_ipc(data).read_all()
        frame = _restore_frame(_to_pandas(table, data), table, meta)
        if meta.get("kind") != "Series":
            return frame
        series = frame.iloc[:, 0]
        series.name = meta.get("series_name")
        return series


class _ArrowTableMaterializer:
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
        reader = _read_ipc(data)
        if meta.get("kind") == "RecordBatch":
            return reader.get_batch(0)
        return reader.read_all()


# --- registry ----------------------------------------------------------------

_PICKLE = _PickleMaterializer()
_BUILTINS: tuple[Materializer, ...] = (
    _ArrowPandasMaterializer(),
    _ArrowTableMaterializer(),
    _NumpyMaterializer(),
    _JsonMaterializer(),
    _PICKLE,
)
_BUILTIN_NAMES = frozenset(m.name for m in _BUILTINS)
_before_builtins: list[Materializer] = []
_after_builtins: list[Materializer] = []


_SCALARS = (int, float, str, bool, type(None))
_SCALAR_MAX = 1024  # characters of a str taken by the fast path
_INT_MAX = 1 << 64


def scalar_payload(value: object) -> bytes | None:
    """The ``json`` materializer's bytes for a plain scalar, skipping the registry; else None.

    The per-step hot path of small results (an int, a short str): the bytes
    are exactly what ``materializer_for(value)`` would write, so an artifact
    stored either way is the same. None when a user materializer is
    registered ahead of the built-ins (it might claim scalars), for NaN and
    infinities (JSON has none), for long strings and for subclasses.
    """
    if _before_builtins or type(value) not in _SCALARS:
        return None
    if type(value) is float and not math.isfinite(value):  # type: ignore[arg-type]
        return None
    if type(value) is str and len(value) > _SCALAR_MAX:  # type: ignore[arg-type]
        return None
    if type(value) is int and not -_INT_MAX < value < _INT_MAX:  # type: ignore[operator]
        return None  # a huge int: the registry decides (past 4300 digits it is pickled)
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8", "surrogatepass")


def _chain() -> list[Materializer]:
    """Every materializer in the order :func:`materializer_for` tries them."""
    return [*_before_builtins, *_BUILTINS[:-1], *_after_builtins, _PICKLE]


def register_materializer(m: Materializer, *, first: bool = True) -> None:
    """Make a materializer available for writing and reading.

    Register it in every process that stores or loads its values (import the
    module that registers it in the step's module).

    Args:
        m: The materializer; its ``name`` is recorded with each artifact.
        first: Try it before the built-ins (newest registration first);
            otherwise after them, but still before the pickle catch-all.

    Raises:
        StoreError: If ``m`` lacks a part of the protocol or takes a built-in name.
    """
    name = getattr(m, "name", None)
    if not isinstance(name, str) or not name or not isinstance(m, Materializer):
        raise StoreError(
            f"{m!r} is not a materializer: it needs a non-empty str 'name', "
            "'needs_unpickling', and can_write(), write() and read() methods."
        )
    if name in _BUILTIN_NAMES:
        raise StoreError(f"materializer name {name!r} is built in. Choose another name.")
    unregister_materializer(name)
    if first:
        _before_builtins.insert(0, m)
    else:
        _after_builtins.append(m)


def unregister_materializer(name: str) -> None:
    """Forget a user materializer (e.g. at the end of a test). Unknown names are ignored."""
    for registered in (_before_builtins, _after_builtins):
        registered[:] = [m for m in registered if m.name != name]


def materializer_for(value: object) -> Materializer:
    """Return the first materializer that can write ``value`` faithfully (pickle at worst)."""
    for m in _chain():
        if m.can_write(value):
            return m
    return _PICKLE  # pragma: no cover - pickle accepts everything


def get_materializer(name: str) -> Materializer:
    """Return the materializer recorded as ``name``.

    Raises:
        StoreError: If no materializer of that name is registered in this process.
    """
    for m in _chain():
        if m.name == name:
            return m
    known = [m.name for m in _chain()]
    raise StoreError(
        f"no materializer named {name!r} is registered.{did_you_mean(name, known)} "
        "Register it with orchestrator.serialize.register_materializer() before loading."
    )


def needs_unpickling(name: str) -> bool:
    """True if loading with the materializer ``name`` unpickles; an unknown name is assumed to."""
    try:
        return get_materializer(name).needs_unpickling
    except StoreError:
        return True


def needs_signature(name: str) -> bool:
    """True unless ``name`` is a built-in materializer that never unpickles.

    A user materializer is signed even if it does not unpickle: a process that
    has not registered it (``orch cache verify``) cannot tell, and must check.
    """
    return not any(m.name == name and not m.needs_unpickling for m in _BUILTINS)


def is_builtin(m: Materializer) -> bool:
    """Return True for the built-in materializers (whose write may fall back to pickle)."""
    return any(m is builtin for builtin in _BUILTINS)
