"""Stable content hashes of values and files.

Every digest is XXH3-128 as 32 lowercase hex characters, and depends only on
content: never on ``PYTHONHASHSEED``, ``id()``, memory layout, dict or set
insertion order, or how an Arrow column happens to be chunked. Values are fed
to one streaming hasher as a self-delimiting encoding (a type tag, then
lengths, then payload), so ``("ab", "c")`` and ``("a", "bc")``, ``[1]`` and
``(1,)``, ``1``, ``1.0`` and ``True``, ``"1"`` and ``b"1"`` all differ.

This module must not import numpy, pandas or pyarrow at import time: start-up
stays light, and those types are recognised by their module name only once a
value of theirs shows up. It hashes data, never code: a step's code
fingerprint lives in ``fingerprint.py`` and only calls ``hash_value`` for the
constants it finds.
"""

from __future__ import annotations

import copyreg
import dataclasses
import enum
import math
import os
import pathlib
import stat
import struct
import sys
import time
import types
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

import xxhash

from orchestrator.errors import UnhashableValueError

_Hasher = xxhash.xxh3_128
_oneshot = xxhash.xxh3_128_hexdigest
_u64 = struct.Struct("<Q").pack
_f64 = struct.Struct("<d").pack

_READ_CHUNK = 8 << 20  # 8 MiB: large enough to run at memory speed, small enough to stay cheap
_STREAM_THRESHOLD = 1 << 16  # bigger str/bytes values are streamed instead of concatenated
_OBJECT_STRINGS_MIN = (
    64  # below this, converting an object column to Arrow costs more than it saves
)
_OBJECT_STRINGS_BLOCK = 1 << 22  # rows per Arrow conversion: bounds the extra memory
_RACY_NS = 2_000_000_000  # a file modified this recently may change again within its mtime tick
_CANONICAL_NAN = b"\x00\x00\x00\x00\x00\x00\xf8\x7f"

Handler = Callable[[Any, Any, set[int]], None]


# -- public API -----------------------------------------------------------------------------


def hash_value(value: object) -> str:
    """Return the content digest of a Python value.

    Args:
        value: Any value: scalars, containers, dataclasses, enums, paths,
            numpy arrays, pandas and Arrow objects; anything else that can be
            pickled.

    Returns:
        32 lowercase hex characters.

    Raises:
        UnhashableValueError: The value (or something inside it) cannot be
            pickled, or it contains itself.
    """
    kind = type(value)
    encode = _SCALARS.get(kind)
    small = kind not in (str, bytes) or len(value) <= _STREAM_THRESHOLD  # type: ignore[arg-type]
    if encode is not None and small:
        # The fast path produces the very bytes _feed would: digests do not depend on the path.
        return _oneshot(encode(value))
    hasher = _Hasher()
    try:
        _feed(hasher, value, set())
    except RecursionError:
        raise UnhashableValueError(
            f"cannot hash a value of type {type(value).__qualname__}: it is nested too deeply"
        ) from None
    return hasher.hexdigest()


def hash_bytes(data: bytes | bytearray | memoryview) -> str:
    """Return the plain XXH3-128 digest of raw bytes (no type tag)."""
    if isinstance(data, memoryview) and not data.c_contiguous:
        data = data.tobytes()
    return _oneshot(data)


def combine(*parts: str) -> str:
    """Return the digest of an ordered sequence of digests or other strings.

    Each part is length-prefixed, so ``combine("ab", "c") != combine("a", "bc")``.
    """
    chunks = [b"\x00combine\x00", _u64(len(parts))]
    for part in parts:
        data = part.encode("utf-8", "surrogatepass")
        chunks.append(_u64(len(data)))
        chunks.append(data)
    return _oneshot(b"".join(chunks))


def hash_file(path: os.PathLike[str] | str, memo: MutableMapping[str, str] | None = None) -> str:
    """Return the content digest of a file or a directory tree.

    A file's digest depends only on its bytes, not on its name or location. A
    directory's digest covers each entry's relative POSIX path and content;
    symlinks are followed, and entries that are neither regular files nor
    directories (sockets, FIFOs, dangling links) are ignored.

    Args:
        path: The file or directory.
        memo: Optional mapping kept by the caller between calls. It maps a
            key built from a file's resolved path, size, mtime and inode to
            that file's digest, so unchanged files are not read again. Files
            modified in the last two seconds are not memoised: another write
            within the same mtime tick would go unnoticed.

    Raises:
        FileNotFoundError: ``path`` does not exist.
    """
    path = os.fspath(path)
    info = os.stat(path)
    if stat.S_ISDIR(info.st_mode):
        return _dir_digest(path, info, memo)
    return _file_digest(path, info, memo)


# -- scalars ---------------------------------------------------------------------------------


def _float_bits(value: float) -> bytes:
    # Every NaN is the same value to the user, whatever its sign and payload bits.
    return _CANONICAL_NAN if math.isnan(value) else _f64(value)


def _enc_int(value: int) -> bytes:
    size = (value.bit_length() + 8) >> 3
    return b"i" + _u64(size) + value.to_bytes(size, "little", signed=True)


def _enc_str(value: str) -> bytes:
    data = value.encode("utf-8", "surrogatepass")
    return b"s" + _u64(len(data)) + data


def _enc_bytes(value: bytes) -> bytes:
    return b"y" + _u64(len(value)) + value


_SCALARS: dict[type, Callable[[Any], bytes]] = {
    type(None): lambda value: b"N",
    bool: lambda value: b"T" if value else b"F",
    int: _enc_int,
    float: lambda value: b"f" + _float_bits(value),
    complex: lambda value: b"c" + _float_bits(value.real) + _float_bits(value.imag),
    str: _enc_str,
    bytes: _enc_bytes,
}


def _feed_text(hasher: Any, tag: bytes, text: str) -> None:
    data = text.encode("utf-8", "surrogatepass")
    hasher.update(tag + _u64(len(data)))
    hasher.update(data)


def _feed_buffer(hasher: Any, tag: bytes, data: Any) -> None:
    view = memoryview(data)
    if not view.c_contiguous:
        view = memoryview(view.tobytes())
    hasher.update(tag + _u64(view.nbytes))
    hasher.update(view.cast("B") if view.ndim != 1 or view.format != "B" else view)


# -- dispatch --------------------------------------------------------------------------------


def _feed(hasher: Any, value: Any, stack: set[int]) -> None:
    """Feed the encoding of ``value`` to ``hasher``; ``stack`` holds the containers being fed."""
    kind = type(value)
    encode = _SCALARS.get(kind)
    if encode is not None:
        if kind is str and len(value) > _STREAM_THRESHOLD:
            _feed_text(hasher, b"s", value)
        elif kind is bytes and len(value) > _STREAM_THRESHOLD:
            _feed_buffer(hasher, b"y", value)
        else:
            hasher.update(encode(value))
        return
    handler = _HANDLERS.get(kind)
    if handler is None:
        handler = _HANDLERS[kind] = _choose_handler(kind)
    handler(hasher, value, stack)


def _choose_handler(kind: type) -> Handler:
    """Pick the encoder for a type that is not one of the exact built-in types."""
    if issubclass(kind, enum.Enum):
        return _feed_enum
    if dataclasses.is_dataclass(kind):
        return _feed_dataclass
    for base in kind.__mro__:
        library = (base.__module__ or "").partition(".")[0]
        if library in _LIBRARY_HANDLERS:
            return _LIBRARY_HANDLERS[library]
    if issubclass(kind, pathlib.PurePath):
        return _feed_path
    if issubclass(kind, type):
        return _feed_class_ref
    if issubclass(kind, _BY_PICKLE):
        return _feed_pickled
    if issubclass(kind, (list, tuple, dict, set, frozenset, str, bytes, int, float)):
        return _feed_builtin_subclass
    return _feed_reduced


def _enter(value: Any, stack: set[int]) -> None:
    if id(value) in stack:
        raise UnhashableValueError(
            f"cannot hash a value of type {type(value).__qualname__}: it contains itself "
            "(a reference cycle)"
        )
    stack.add(id(value))


def _feed_sequence(hasher: Any, tag: bytes, value: Any, stack: set[int]) -> None:
    _enter(value, stack)
    hasher.update(tag + _u64(len(value)))
    for item in value:
        _feed(hasher, item, stack)
    stack.discard(id(value))


def _digest_of(items: tuple[Any, ...], stack: set[int]) -> bytes:
    sub = _Hasher()
    for item in items:
        _feed(sub, item, stack)
    return sub.digest()


def _feed_unordered(hasher: Any, tag: bytes, value: Any, entries: Any, stack: set[int]) -> None:
    # Sorting per-entry digests makes the result independent of insertion and hash order.
    _enter(value, stack)
    digests = sorted(_digest_of(entry, stack) for entry in entries)
    hasher.update(tag + _u64(len(digests)))
    hasher.update(b"".join(digests))
    stack.discard(id(value))


def _feed_list(hasher: Any, value: list[Any], stack: set[int]) -> None:
    _feed_sequence(hasher, b"l", value, stack)


def _feed_tuple(hasher: Any, value: tuple[Any, ...], stack: set[int]) -> None:
    _feed_sequence(hasher, b"t", value, stack)


def _feed_dict(hasher: Any, value: dict[Any, Any], stack: set[int]) -> None:
    _feed_unordered(hasher, b"d", value, value.items(), stack)


def _feed_set(hasher: Any, value: set[Any], stack: set[int]) -> None:
    _feed_unordered(hasher, b"S", value, ((item,) for item in value), stack)


def _feed_frozenset(hasher: Any, value: frozenset[Any], stack: set[int]) -> None:
    _feed_unordered(hasher, b"Z", value, ((item,) for item in value), stack)


def _feed_bytearray(hasher: Any, value: bytearray, stack: set[int]) -> None:
    _feed_buffer(hasher, b"Y", value)


def _feed_memoryview(hasher: Any, value: memoryview, stack: set[int]) -> None:
    _feed_text(hasher, b"m", value.format)
    hasher.update(_u64(value.ndim) + b"".join(_u64(dim) for dim in value.shape or ()))
    _feed_buffer(hasher, b"", value)


def _feed_enum(hasher: Any, value: enum.Enum, stack: set[int]) -> None:
    _feed_text(hasher, b"E", type(value).__qualname__)
    _feed(hasher, value.value, stack)


def _feed_dataclass(hasher: Any, value: Any, stack: set[int]) -> None:
    if isinstance(value, type):  # the dataclass itself, not an instance
        _feed_class_ref(hasher, value, stack)
        return
    _enter(value, stack)
    fields = dataclasses.fields(value)
    # The module is left out on purpose: moving a module must not change its values' digests.
    _feed_text(hasher, b"D", type(value).__qualname__)
    hasher.update(_u64(len(fields)))
    for field in fields:
        _feed_text(hasher, b"", field.name)
        _feed(hasher, getattr(value, field.name), stack)
    stack.discard(id(value))


def _feed_path(hasher: Any, value: pathlib.PurePath, stack: set[int]) -> None:
    # A path value is text; reading the file it names is hash_file's job, if the caller wants it.
    _feed_text(hasher, b"P", value.as_posix())


def _feed_class_ref(hasher: Any, value: type, stack: set[int]) -> None:
    _feed_text(hasher, b"C", getattr(value, "__qualname__", value.__name__))


def _feed_builtin_subclass(hasher: Any, value: Any, stack: set[int]) -> None:
    """Subclasses of built-in types: class name, the built-in value, then any extra state."""
    _feed_text(hasher, b"U", type(value).__qualname__)
    if hasattr(value, "_fields") and isinstance(value, tuple):  # a namedtuple
        _feed_tuple(hasher, value, stack)
        return
    if isinstance(value, OrderedDict):
        _feed_sequence(hasher, b"o", list(value.items()), stack)
    elif isinstance(value, defaultdict):
        _feed(hasher, value.default_factory, stack)
        _feed_dict(hasher, value, stack)
    else:
        base = next(b for b in type(value).__mro__ if b in _BASE_HANDLERS)
        _enter(value, stack)
        _BASE_HANDLERS[base](hasher, base(value), stack)
        stack.discard(id(value))
    extra = getattr(value, "__dict__", None)
    _feed(hasher, dict(extra) if extra else None, stack)


def _feed_pickled(hasher: Any, value: Any, stack: set[int]) -> None:
    # Deferred: only values without a structural encoding need it.
    import cloudpickle  # type: ignore[import-untyped]

    try:
        data = cloudpickle.dumps(value, protocol=5)
    except Exception as exc:
        raise UnhashableValueError(
            f"cannot hash a value of type {type(value).__qualname__}: {exc}"
        ) from exc
    _feed_buffer(hasher, b"K", data)


def _feed_reduced(hasher: Any, value: Any, stack: set[int]) -> None:
    """Hash an object through its pickle reduction, with dicts and sets order-independent.

    Pickling the object whole would make its digest depend on the order of any
    dict or set inside it; walking the reduction reuses this module's encoding.
    """
    reducer = copyreg.dispatch_table.get(type(value))
    try:
        reduced = reducer(value) if reducer is not None else value.__reduce_ex__(5)
    except Exception:  # noqa: BLE001 - any reduction failure: cloudpickle may still know the type
        _feed_pickled(hasher, value, stack)  # and raises UnhashableValueError if it does not
        return
    if isinstance(reduced, str):  # a module-level singleton, pickled by name
        _feed_text(hasher, b"G", f"{type(value).__qualname__}:{reduced}")
        return
    func, args, state, list_items, dict_items = (tuple(reduced) + (None,) * 5)[:5]
    _enter(value, stack)
    hasher.update(b"O")
    if func in _NEWOBJ and args:
        _feed_class_ref(hasher, args[0], stack)
        args = args[1:]
    else:
        _feed_callable_ref(hasher, func, stack)
    _feed(hasher, args, stack)
    _feed(hasher, state, stack)
    _feed(hasher, list(list_items) if list_items is not None else None, stack)
    _feed(hasher, dict(dict_items) if dict_items is not None else None, stack)
    stack.discard(id(value))


def _feed_callable_ref(hasher: Any, func: Any, stack: set[int]) -> None:
    name = getattr(func, "__qualname__", None)
    if isinstance(name, str):
        _feed_text(hasher, b"C", name)
    else:
        _feed(hasher, func, stack)


_NEWOBJ = (getattr(copyreg, "__newobj__", None), getattr(copyreg, "__newobj_ex__", None))
_BY_PICKLE = (
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.ModuleType,
    types.CodeType,
)

_BASE_HANDLERS: dict[type, Handler] = {
    list: _feed_list,
    tuple: _feed_tuple,
    dict: _feed_dict,
    set: _feed_set,
    frozenset: _feed_frozenset,
    str: lambda h, v, s: h.update(_enc_str(v)),
    bytes: lambda h, v, s: h.update(_enc_bytes(v)),
    int: lambda h, v, s: h.update(_enc_int(v)),
    float: lambda h, v, s: h.update(b"f" + _float_bits(v)),
}

_HANDLERS: dict[type, Handler] = {
    list: _feed_list,
    tuple: _feed_tuple,
    dict: _feed_dict,
    set: _feed_set,
    frozenset: _feed_frozenset,
    bytearray: _feed_bytearray,
    memoryview: _feed_memoryview,
    type: _feed_class_ref,
}


# -- numpy -----------------------------------------------------------------------------------


def _dtype_token(dtype: Any) -> str:
    # dtype.str is "|V16" for every 16-byte record type: records need their field layout.
    return str(dtype.descr) if dtype.names is not None else dtype.str


def _feed_numpy(hasher: Any, value: Any, stack: set[int]) -> None:
    np = sys.modules["numpy"]
    if isinstance(value, np.ndarray):
        _feed_ndarray(hasher, value, stack)
    elif isinstance(value, np.generic):
        _feed_numpy_scalar(hasher, value)
    elif isinstance(value, np.dtype):
        _feed_text(hasher, b"nd", _dtype_token(value))
    else:
        _feed_reduced(hasher, value, stack)


def _feed_numpy_scalar(hasher: Any, value: Any) -> None:
    np = sys.modules["numpy"]
    data = value.tobytes()
    if value.dtype.kind == "f" and np.isnan(value):
        data = np.array(np.nan, dtype=value.dtype).tobytes()
    _feed_text(hasher, b"n", _dtype_token(value.dtype))
    _feed_buffer(hasher, b"", data)


def _feed_ndarray(hasher: Any, array: Any, stack: set[int]) -> None:
    np = sys.modules["numpy"]
    if type(array) is not np.ndarray:
        _feed_text(hasher, b"U", type(array).__qualname__)
        if isinstance(array, np.ma.MaskedArray):
            mask = np.ma.getmaskarray(array)
            # Values under the mask are not data: the same masked array may hold anything there.
            _feed_ndarray(hasher, np.asarray(mask), stack)
            array = np.ma.filled(array, np.zeros((), dtype=array.dtype))
        array = array.view(np.ndarray)
    _feed_text(hasher, b"A", _dtype_token(array.dtype))
    hasher.update(_u64(array.ndim) + b"".join(_u64(dim) for dim in array.shape))
    if array.dtype.hasobject or array.dtype.kind == "T":
        # Object (and variable-width string) arrays hold pointers: hash the elements themselves.
        _feed_object_values(hasher, array.ravel(order="C"), stack)
    else:
        _feed_array_bytes(hasher, array)


def _feed_array_bytes(hasher: Any, array: Any) -> None:
    """Feed the C-order bytes of a fixed-width array without copying it whole."""
    np = sys.modules["numpy"]
    hasher.update(_u64(array.nbytes))
    if array.flags.c_contiguous:
        hasher.update(array.reshape(-1).view(np.uint8))
        return
    # A strided view: copy a block of rows at a time, so the bytes equal those of its copy.
    rows = max(1, _READ_CHUNK // max(1, array[:1].nbytes))
    for start in range(0, len(array), rows):
        block = np.ascontiguousarray(array[start : start + rows])
        hasher.update(block.reshape(-1).view(np.uint8))


def _feed_object_values(hasher: Any, values: Any, stack: set[int]) -> None:
    """Feed a 1-D object array: all-string arrays go through Arrow, others element by element."""
    digest = _object_strings_digest(values)
    if digest is not None:
        hasher.update(b"os" + digest)
        return
    hasher.update(b"oe" + _u64(len(values)))
    for item in values.tolist() if values.dtype.kind == "O" else values.astype(object).tolist():
        _feed(hasher, item, stack)


def _object_strings_digest(values: Any) -> bytes | None:
    """Digest of an object array of ``str`` and ``None``, or None if it holds anything else."""
    if len(values) < _OBJECT_STRINGS_MIN or "pandas" not in sys.modules:
        return None
    try:
        import pyarrow as pa  # type: ignore[import-untyped]
    except ImportError:
        return None
    if values.dtype.kind != "O":
        return None
    try:
        # Without a type, Arrow infers one per block: only all-text blocks come back as strings
        # (bytes give binary, mixed values raise), so no separate type check is needed.
        chunks = [
            pa.array(values[start : start + _OBJECT_STRINGS_BLOCK], from_pandas=False)
            for start in range(0, len(values), _OBJECT_STRINGS_BLOCK)
        ]
    except (pa.ArrowException, TypeError, ValueError, UnicodeError):
        return None  # NaN, pd.NA or lone surrogates: the element-wise path tells them apart
    if not all(pa.types.is_string(c.type) or pa.types.is_large_string(c.type) for c in chunks):
        return None  # bytes, all-None blocks or other values: the element-wise path
    return _arrow_column_digest(chunks, set())


# -- pandas ----------------------------------------------------------------------------------


def _feed_pandas(hasher: Any, value: Any, stack: set[int]) -> None:
    pd = sys.modules["pandas"]
    if isinstance(value, pd.DataFrame):
        _feed_frame(hasher, value, stack)
    elif isinstance(value, pd.Series):
        hasher.update(b"x")
        _feed(hasher, value.name, stack)
        _feed_index(hasher, value.index, stack)
        _feed_pandas_values(hasher, value.array, stack)
    elif isinstance(value, pd.Index):
        _feed_index(hasher, value, stack)
    elif isinstance(value, pd.api.extensions.ExtensionArray):
        hasher.update(b"xa")
        _feed_pandas_values(hasher, value, stack)
    else:
        _feed_reduced(hasher, value, stack)


def _feed_frame(hasher: Any, frame: Any, stack: set[int]) -> None:
    hasher.update(b"X" + _u64(frame.shape[0]) + _u64(frame.shape[1]))
    # Column labels are hashed as values: the same labels may sit in an object or a str Index.
    _feed(hasher, list(frame.columns.names), stack)
    _feed(hasher, frame.columns.tolist(), stack)
    _feed_index(hasher, frame.index, stack)
    for _, column in frame.items():
        _feed_pandas_values(hasher, column.array, stack)


def _feed_index(hasher: Any, index: Any, stack: set[int]) -> None:
    pd = sys.modules["pandas"]
    _feed(hasher, list(index.names), stack)
    if type(index) is pd.RangeIndex:
        # Equal ranges hash equal (range(0, 0) == range(5, 5)); no need to materialise them.
        span = range(index.start, index.stop, index.step)
        first = span[0] if span else 0
        step = span.step if len(span) > 1 else 1
        hasher.update(b"Ir" + _enc_int(len(span)) + _enc_int(first) + _enc_int(step))
    elif isinstance(index, pd.MultiIndex):
        hasher.update(b"Im" + _u64(index.nlevels))
        for level in range(index.nlevels):
            _feed_pandas_values(hasher, index.get_level_values(level).array, stack)
    else:
        hasher.update(b"Ii")
        _feed_pandas_values(hasher, index.array, stack)


def _feed_pandas_values(hasher: Any, array: Any, stack: set[int]) -> None:
    """Feed one column's dtype (as text) and values, reading its buffers where it can."""
    pd = sys.modules["pandas"]
    np = sys.modules["numpy"]
    dtype = array.dtype
    _feed_text(hasher, b"V", str(dtype))
    hasher.update(_u64(len(array)))
    if isinstance(array, pd.arrays.NumpyExtensionArray):
        values = array.to_numpy(copy=False)
        if values.dtype.kind == "O":
            _feed_object_values(hasher, values, stack)
        else:
            _feed_array_bytes(hasher, values)
    elif isinstance(
        array, (pd.arrays.DatetimeArray, pd.arrays.TimedeltaArray, pd.arrays.PeriodArray)
    ):
        _feed_array_bytes(hasher, array.asi8)  # NaT is int64 min; unit and tz are in str(dtype)
    elif isinstance(array, pd.Categorical):
        hasher.update(b"T" if dtype.ordered else b"F")
        _feed_index(hasher, array.categories, stack)
        _feed_array_bytes(hasher, np.asarray(array.codes))
    elif isinstance(array, pd.core.arrays.masked.BaseMaskedArray):
        _feed_masked(hasher, array._data, array._mask)
    elif isinstance(array, pd.arrays.ArrowExtensionArray):
        hasher.update(b"q" + _arrow_column_digest(_chunks_of(array.__arrow_array__()), stack))
    elif isinstance(array, pd.arrays.StringArray):  # str values and missing markers
        _feed_object_values(hasher, array.to_numpy(dtype=object, na_value=None), stack)
    else:
        _feed_object_values(hasher, np.asarray(array, dtype=object), stack)


def _feed_masked(hasher: Any, data: Any, mask: Any) -> None:
    np = sys.modules["numpy"]
    missing = np.flatnonzero(mask)
    if len(missing):
        # Whatever a masked slot holds is not data; zero it in a copy so it cannot matter.
        data = data.copy()
        data[missing] = 0
    _feed_array_bytes(hasher, missing.astype("<i8"))
    _feed_array_bytes(hasher, data)


# -- pyarrow ---------------------------------------------------------------------------------


def _chunks_of(column: Any) -> list[Any]:
    return list(column.chunks) if hasattr(column, "chunks") else [column]


def _feed_arrow(hasher: Any, value: Any, stack: set[int]) -> None:
    pa = sys.modules["pyarrow"]
    if isinstance(value, (pa.Table, pa.RecordBatch)):
        # Tables and record batches with the same schema and values hash the same.
        hasher.update(b"R" + _u64(value.num_rows) + _u64(value.num_columns))
        for field, column in zip(value.schema, value.columns):
            _feed_text(hasher, b"", field.name)
            _feed_text(hasher, b"", str(field.type))
            hasher.update(_arrow_column_digest(_chunks_of(column), stack))
    elif isinstance(value, (pa.Array, pa.ChunkedArray)):
        # An Array is a ChunkedArray of one chunk: equal values hash equal however chunked.
        _feed_text(hasher, b"Q", str(value.type))
        hasher.update(_arrow_column_digest(_chunks_of(value), stack))
    elif isinstance(value, pa.Scalar):
        _feed_text(hasher, b"Qs", str(value.type))
        _feed(hasher, value.as_py(), stack)
    elif isinstance(value, (pa.DataType, pa.Schema, pa.Field)):
        _feed_text(hasher, b"Qt", str(value))
    else:
        _feed_reduced(hasher, value, stack)


class _ColumnStreams:
    """The three streams of one Arrow column, fed chunk by chunk (see _arrow_column_digest)."""

    def __init__(self) -> None:
        self.nulls = _Hasher()
        self.ends = _Hasher()
        self.data = _Hasher()
        self.data_size = 0  # bytes of variable-width values fed so far


def _arrow_column_digest(chunks: list[Any], stack: set[int]) -> bytes:
    """Digest of one Arrow column's values, independent of chunking, slicing and null slots.

    Three streams are fed chunk by chunk: the positions of nulls, where each
    variable-width value ends (counted from the column's first byte), and
    the bytes of the valid values. Chunk boundaries reach none of them, so
    any chunking of equal values gives equal streams; and null slots are
    dropped, so whatever they hold is moot.
    """
    streams = _ColumnStreams()
    position = 0
    for chunk in chunks:
        size = len(chunk)
        if size == 0:
            continue
        if chunk.null_count:
            _feed_null_positions(streams.nulls, chunk, position)
            chunk = chunk.drop_null()
        _feed_arrow_chunk(chunk, streams, stack)
        position += size
    return _u64(position) + streams.nulls.digest() + streams.ends.digest() + streams.data.digest()


def _feed_null_positions(nulls: Any, chunk: Any, position: int) -> None:
    np = sys.modules["numpy"]
    is_null = chunk.is_null().to_numpy(zero_copy_only=False)
    nulls.update((np.flatnonzero(is_null) + position).astype("<i8"))


def _feed_arrow_chunk(chunk: Any, streams: _ColumnStreams, stack: set[int]) -> None:
    """Feed one null-free chunk's value ends and value bytes."""
    pa = sys.modules["pyarrow"]
    np = sys.modules["numpy"]
    kind = chunk.type
    if isinstance(kind, pa.ExtensionType):
        chunk, kind = chunk.storage, kind.storage_type
    if pa.types.is_dictionary(kind):
        # Each chunk may carry its own dictionary: only the decoded values are comparable.
        chunk = chunk.dictionary_decode()
        kind = chunk.type
    if pa.types.is_string_view(kind) or pa.types.is_binary_view(kind):
        chunk = chunk.cast(
            pa.large_string() if pa.types.is_string_view(kind) else pa.large_binary()
        )
        kind = chunk.type
    if len(chunk) == 0 or pa.types.is_null(kind):
        return
    if pa.types.is_boolean(kind):
        # Bits are packed from a chunk-dependent offset: one byte per value compares across chunks.
        streams.data.update(chunk.to_numpy(zero_copy_only=False).view(np.uint8))
    elif _is_variable_binary(pa, kind):
        _feed_arrow_binary(chunk, streams)
    elif _fixed_width(kind):
        width = _fixed_width(kind)
        buffer = chunk.buffers()[1]
        start = chunk.offset * width
        streams.data.update(memoryview(buffer)[start : start + len(chunk) * width])
    else:
        # Nested types (list, struct, map, union) take the slow, simple and correct path.
        for item in chunk.to_pylist():
            _feed(streams.data, item, stack)


def _is_variable_binary(pa: Any, kind: Any) -> bool:
    return bool(
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
    )


def _fixed_width(kind: Any) -> int:
    try:
        bits = kind.bit_width
    except ValueError:
        return 0
    return bits // 8 if bits >= 8 and bits % 8 == 0 else 0


def _feed_arrow_binary(chunk: Any, streams: _ColumnStreams) -> None:
    np = sys.modules["numpy"]
    pa = sys.modules["pyarrow"]
    large = pa.types.is_large_string(chunk.type) or pa.types.is_large_binary(chunk.type)
    offset_type = np.dtype(np.int64 if large else np.int32)
    _, offsets_buffer, data_buffer = chunk.buffers()
    offsets = np.frombuffer(
        offsets_buffer,
        dtype=offset_type,
        count=len(chunk) + 1,
        offset=chunk.offset * offset_type.itemsize,
    )
    first, last = int(offsets[0]), int(offsets[-1])
    ends = offsets[1:]
    shift = streams.data_size - first
    # Ends as int64 counted from the column's start: string and large_string agree, and an
    # unsliced single-chunk large_string column (pandas' str dtype) is hashed without a copy.
    if shift or not large:
        ends = ends.astype(np.int64)
        ends += shift
    streams.ends.update(ends)
    if last > first:
        streams.data.update(memoryview(data_buffer)[first:last])
    streams.data_size += last - first


_LIBRARY_HANDLERS: dict[str, Handler] = {
    "numpy": _feed_numpy,
    "pandas": _feed_pandas,
    "pyarrow": _feed_arrow,
}


# -- files -----------------------------------------------------------------------------------


def _file_digest(path: str, info: os.stat_result, memo: MutableMapping[str, str] | None) -> str:
    if memo is None:
        return _read_file_digest(path)
    key = f"{os.path.realpath(path)}\x00{info.st_size}\x00{info.st_mtime_ns}\x00{info.st_ino}"
    digest = memo.get(key)
    if digest is None:
        digest = _read_file_digest(path)
        if time.time_ns() - info.st_mtime_ns >= _RACY_NS:
            memo[key] = digest
    return digest


def _read_file_digest(path: str) -> str:
    """Read a file in chunks and return its digest; the only place file bytes are read."""
    hasher = _Hasher()
    hasher.update(b"\x00file\x00")
    buffer = bytearray(_READ_CHUNK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        while size := handle.readinto(buffer):
            hasher.update(view[:size])
    return hasher.hexdigest()


def _dir_digest(path: str, info: os.stat_result, memo: MutableMapping[str, str] | None) -> str:
    hasher = _Hasher()
    hasher.update(b"\x00dir\x00")
    for tag, relative, digest in _walk(path, "", {(info.st_dev, info.st_ino)}, memo):
        _feed_text(hasher, tag, relative)
        _feed_text(hasher, b"", digest)
    return hasher.hexdigest()


def _walk(
    path: str, prefix: str, ancestors: set[tuple[int, int]], memo: MutableMapping[str, str] | None
) -> Iterator[tuple[bytes, str, str]]:
    """Yield (kind, relative POSIX path, digest) for a directory's entries, sorted by name."""
    with os.scandir(path) as entries:
        names = sorted((entry.name, entry.path) for entry in entries)
    for name, full in names:
        relative = f"{prefix}{name}"
        try:
            info = os.stat(full)  # follows symlinks
        except FileNotFoundError:
            continue  # a dangling symlink
        if stat.S_ISDIR(info.st_mode):
            identity = (info.st_dev, info.st_ino)
            if identity in ancestors:  # a symlink back up the tree: note it, do not loop
                yield b"l", relative, ""
                continue
            yield b"d", relative, ""
            yield from _walk(full, relative + "/", ancestors | {identity}, memo)
        elif stat.S_ISREG(info.st_mode):
            yield b"f", relative, _file_digest(full, info, memo)
