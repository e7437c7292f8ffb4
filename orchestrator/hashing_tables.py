"""Content hashes of arrays and tables: numpy, pandas and Arrow values, scipy sparse matrices.

The tabular half of ``hashing``'s encoding. ``hashing`` hands a value here
when its type comes from numpy, pandas or pyarrow (see ``LIBRARY_HANDLERS``)
and imports this module only then. Array and column bytes are fed straight
from their buffers where they can be; an Arrow column hashes the same however
it is chunked or sliced, and whatever its null slots hold; an object column
of strings is hashed from its text joined in blocks (through Arrow when it
also holds ``None``) rather than element by element, when every string is an
exact ``str``: a ``str`` subclass (a ``str`` enum member, ``np.str_``) is
another value with the same text, and goes element by element, by type.
Bytes that hold no data are made canonical first: every float NaN (whatever
its sign and payload, which arithmetic and machines choose differently) has
one bit pattern, as in ``hashing``, and the padding of aligned records and
x87 long doubles, which nothing initialises, is zero.

This module must not import numpy, pandas, pyarrow or scipy at import time: it takes
them from ``sys.modules``, where the value being hashed has already put them.
Imports point from here to ``hashing`` only, never back at import time. It
must not encode scalars or containers itself (elements go back through
``hashing._feed``, so a value hashes the same inside a column as outside),
and it must not read files.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Iterator
from typing import Any

from orchestrator.hashing import (
    _READ_CHUNK,
    Handler,
    _enc_int,
    _feed,
    _feed_buffer,
    _feed_reduced,
    _feed_text,
    _Hasher,
    _u64,
    ufunc_function,
)

_OBJECT_STRINGS_MIN = (
    64  # below this, joining or converting an object column costs more than it saves
)
_OBJECT_STRINGS_BLOCK = 1 << 22  # rows per Arrow conversion: bounds the extra memory
# Rows per join of an all-``str`` object array: small enough that a block's objects are still
# in the CPU cache when they are read the second time (listing them, then joining them).
_OBJECT_TEXT_BLOCK = 1 << 12


# -- numpy -----------------------------------------------------------------------------------


def _dtype_token(dtype: Any) -> str:
    # dtype.str is "|V16" for every 16-byte record type: records need their field layout.
    if dtype.names is None:
        return dtype.str
    try:
        return str(dtype.descr)
    except ValueError:
        # Fields out of offset order (what selecting fields in another order gives:
        # records[["price", "qty"]]) have no descr; the dtype's text names each field's format
        # and offset, and starts with "{" where a descr starts with "[", so no digest changes.
        return str(dtype)


def _feed_numpy(hasher: Any, value: Any, stack: set[int]) -> None:
    np = sys.modules["numpy"]
    if isinstance(value, np.ndarray):
        _feed_ndarray(hasher, value, stack)
    elif isinstance(value, np.generic):
        _feed_numpy_scalar(hasher, value)
    elif isinstance(value, np.dtype):
        _feed_text(hasher, b"nd", _dtype_token(value))
    elif isinstance(value, (np.random.Generator, np.random.RandomState, np.random.BitGenerator)):
        _feed_random_state(hasher, value, stack)
    else:
        _feed_reduced(hasher, value, stack)
        function = ufunc_function(value)
        if function is not None:
            from orchestrator.value_code import is_users

            if is_users(function):
                # `np.frompyfunc(square, 1, 1)` pickles by name: the code of the user's function
                # it calls counts, as np.vectorize's does. Other ufuncs hash as they did.
                _feed(hasher, function, stack)


def _feed_random_state(hasher: Any, value: Any, stack: set[int]) -> None:
    """Feed a random generator as its type and its bit generator's type and state.

    Their pickles changed form in numpy 2 (a generator is rebuilt from its bit
    generator object, no longer from its name and state), so a generator in
    the same state hashed differently under numpy 1.26 and 2; the state
    (``bit_generator.state``) is the same dict under both.
    """
    np = sys.modules["numpy"]
    _feed_text(hasher, b"NR", type(value).__qualname__)
    if isinstance(value, np.random.RandomState):
        _feed(hasher, value.get_state(legacy=False), stack)
        return
    bits = value.bit_generator if isinstance(value, np.random.Generator) else value
    _feed_text(hasher, b"", type(bits).__qualname__)
    # Not its seed sequence (what spawn() derives streams from): numpy 1.26 does not pickle it, so
    # a generator loaded from the store would hash differently from the one stored.
    _feed(hasher, bits.state, stack)


def _feed_numpy_scalar(hasher: Any, value: Any) -> None:
    np = sys.modules["numpy"]
    data = value.tobytes()
    nan_part, padding = _layout(value.dtype)
    if nan_part is not None or padding is not None:
        data = _canonical(np.array(value).reshape(1), nan_part, padding).tobytes()
    _feed_text(hasher, b"n", _dtype_token(value.dtype))
    _feed_buffer(hasher, b"", data)


def _feed_ndarray(hasher: Any, array: Any, stack: set[int]) -> None:
    np = sys.modules["numpy"]
    fill = None
    if type(array) is np.memmap:
        # How the data is held, not what it is: a step's `np.load(path, mmap_mode="r")[rows]` is
        # the same value as the array it maps, and is stored and loaded back as that array.
        array = array.view(np.ndarray)
    elif type(array) is not np.ndarray:
        _feed_text(hasher, b"U", type(array).__qualname__)
        if isinstance(array, np.ma.MaskedArray):
            mask = np.ma.getmaskarray(array)
            # Values under the mask are not data: the same masked array may hold anything there.
            _feed_ndarray(hasher, np.asarray(mask), stack)
            fill = _fill_value(array, stack)
            array = np.ma.filled(array, np.zeros((), dtype=array.dtype))
        array = array.view(np.ndarray)
    array = _little_endian(array)
    _feed_text(hasher, b"A", _dtype_token(array.dtype))
    hasher.update(_u64(array.ndim) + b"".join(_u64(dim) for dim in array.shape))
    if array.dtype.hasobject or array.dtype.kind == "T":
        # Object (and variable-width string) arrays hold pointers: hash the elements themselves.
        _feed_object_values(hasher, array.ravel(order="C"), stack)
    else:
        _feed_array_bytes(hasher, array)
    if fill is not None:
        # A masked array's fill value is data (what `filled()` puts under the mask) and pickle,
        # the store, keeps it. Nothing is fed for the dtype's default, so such an array hashes
        # as it always did; no value encoding starts with \0, so this cannot pass for another.
        hasher.update(b"\x00fill")
        _feed_ndarray(hasher, fill, stack)


def _fill_value(array: Any, stack: set[int]) -> Any:
    """A masked array's fill value as a 0-d array, or None if it is its dtype's default.

    ``_fill_value`` stays None until the value is set or first read (when numpy
    sets the default): read it there, so hashing does not change the array.
    """
    fill = getattr(array, "_fill_value", None)
    if fill is None:
        return None
    fill = _as_fill(fill, array.dtype)
    if _array_digest(fill, stack) == _default_fill_digest(array.dtype):
        return None  # set to the default (or read once): the array it always was
    return fill


def _as_fill(fill: Any, dtype: Any) -> Any:
    """A stored fill value as a 0-d array of the masked array's dtype, as ``filled()`` casts it."""
    np = sys.modules["numpy"]
    with np.errstate(all="ignore"):  # numpy keeps 1e20 for float16, which casts to inf
        return np.asarray(fill, dtype=dtype)


@functools.lru_cache(maxsize=256)
def _default_fill_digest(dtype: Any) -> bytes:
    """The digest of the fill value numpy gives a masked array of ``dtype`` by default.

    Taken from an empty masked array, as numpy stores it on first read
    (``default_fill_value`` alone gives 999999 for int8, which does not fit).
    """
    np = sys.modules["numpy"]
    empty = np.ma.masked_array(np.empty(0, dtype=dtype))
    _ = empty.fill_value  # numpy stores its default in _fill_value on first read
    return _array_digest(_as_fill(empty._fill_value, dtype), set())


def _array_digest(array: Any, stack: set[int]) -> bytes:
    sub = _Hasher()
    _feed_ndarray(sub, array, stack)
    return sub.digest()


def _little_endian(array: Any) -> Any:
    """The array itself, or a little-endian copy of one that holds big-endian numbers.

    Byte order is storage, not value: ``>i4`` data (read from a FITS or HDF5
    file, or native on a big-endian machine) hashes like the same numbers in
    ``<i4``, dtype token included, so digests agree across machines too.
    """
    little = _little_endian_dtype(array.dtype)
    return array if little is None else array.astype(little)


@functools.lru_cache(maxsize=256)
def _little_endian_dtype(dtype: Any) -> Any:
    """``dtype`` with every field little-endian, or None if it already is (or has no order)."""
    try:
        little = dtype.newbyteorder("<")
    except (TypeError, ValueError):  # new-style dtypes (StringDType) have no byte order to set
        return None
    return None if little == dtype else little


def _feed_array_bytes(hasher: Any, array: Any) -> None:
    """Feed the C-order bytes of a fixed-width array without copying it whole.

    Bytes that are not data are made canonical on the way: every NaN gets one
    bit pattern, and padding (of aligned records and x87 long doubles) is zero.
    """
    np = sys.modules["numpy"]
    hasher.update(_u64(array.nbytes))
    nan_part, padding = _layout(array.dtype)
    plain = nan_part is None and padding is None
    if array.flags.c_contiguous:
        flat = array.reshape(-1)
        if plain:
            hasher.update(flat.view(np.uint8))
        else:
            _feed_canonical(hasher, flat, nan_part, padding)
        return
    # A strided view: copy a block of rows at a time, so the bytes equal those of its copy.
    rows = max(1, _READ_CHUNK // max(1, array[:1].nbytes))
    for start in range(0, len(array), rows):
        block = np.ascontiguousarray(array[start : start + rows])
        if not plain:
            block = _canonical(block, nan_part, padding)
        hasher.update(block.reshape(-1).view(np.uint8))


def _feed_canonical(hasher: Any, flat: Any, nan_part: Any, padding: Any) -> None:
    """Feed a flat contiguous array's canonical bytes in small blocks.

    A block stays in cache between the NaN check and the hash, and nothing
    is copied unless the block has a NaN or padding.
    """
    np = sys.modules["numpy"]
    items = max(1, _CANONICAL_BLOCK // max(1, flat.itemsize))
    for start in range(0, len(flat), items):
        hasher.update(_canonical(flat[start : start + items], nan_part, padding).view(np.uint8))


# How much of an x87 extended double (numpy's long double on x86) is value: its other 2 or 6
# bytes are padding that nothing initialises.
_X87_BYTES = 10
_CANONICAL_BLOCK = 1 << 18  # bytes per block of an array whose NaNs or padding are made canonical


@functools.lru_cache(maxsize=256)
def _layout(dtype: Any) -> tuple[Any, Any]:
    """How to make an item's bytes canonical: (the float type whose NaNs to unify, padding bytes).

    The first is the dtype of one part of a float or complex value, else None;
    the second the positions of the bytes of one item that hold no value, or
    None if there are none.
    """
    np = sys.modules["numpy"]
    nan_part = np.empty(0, dtype=dtype).real.dtype if dtype.kind in "fc" else None
    used = np.zeros(dtype.itemsize, dtype=bool)
    _mark_value_bytes(dtype, 0, used)
    padding = None if used.all() else np.flatnonzero(~used)
    return nan_part, padding


def _mark_value_bytes(dtype: Any, offset: int, used: Any) -> None:
    """Mark in ``used`` the bytes of an item of ``dtype`` (at ``offset``) that hold its value."""
    np = sys.modules["numpy"]
    if dtype.names is not None:
        for name in dtype.names:
            field, field_offset = dtype.fields[name][:2]
            _mark_value_bytes(field, offset + field_offset, used)
    elif dtype.subdtype is not None:
        base, shape = dtype.subdtype
        if _layout(base)[1] is None:
            used[offset : offset + dtype.itemsize] = True
        else:
            for item in range(math.prod(shape)):
                _mark_value_bytes(base, offset + item * base.itemsize, used)
    elif dtype.kind in "fc" and _is_x87(np.empty(0, dtype=dtype).real.dtype):
        part = dtype.itemsize // 2 if dtype.kind == "c" else dtype.itemsize
        for start in range(offset, offset + dtype.itemsize, part):
            used[start : start + _X87_BYTES] = True
    else:
        used[offset : offset + dtype.itemsize] = True


def _is_x87(part: Any) -> bool:
    np = sys.modules["numpy"]
    return bool(
        part.itemsize > _X87_BYTES
        and part.byteorder in "=|<"
        and sys.byteorder == "little"
        and np.finfo(part).nmant == 63
    )


def _canonical(block: Any, nan_part: Any, padding: Any) -> Any:
    """A contiguous block's items as a flat array, with NaNs unified and padding zeroed.

    The block itself (flattened) when nothing needs changing; a copy otherwise.
    """
    np = sys.modules["numpy"]
    flat = block.reshape(-1)
    copied = False
    if nan_part is not None:
        parts = flat.view(nan_part)
        if len(parts) and _has_nan(parts):
            parts = parts.copy()
            parts[np.isnan(parts)] = np.nan
            flat, copied = parts.view(block.dtype), True
    if padding is not None and len(flat):
        if not copied:
            flat = flat.copy()
        flat.view(np.uint8).reshape(len(flat), -1)[:, padding] = 0
    return flat


def _has_nan(values: Any) -> bool:
    np = sys.modules["numpy"]
    if values.itemsize == 2:  # numpy has no fast half-float minimum: compare the bits
        bits = values.view(np.uint16)
        return bool(np.max(np.bitwise_and(bits, 0x7FFF)) > 0x7C00)
    return bool(np.isnan(np.minimum.reduce(values)))  # a minimum is NaN if any value is


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
    if len(values) < _OBJECT_STRINGS_MIN or values.dtype.kind != "O":
        return None
    text_digest = _object_text_digest(values)
    if text_digest is not None or "pandas" not in sys.modules:
        return text_digest
    try:
        import pyarrow as pa  # type: ignore[import-untyped]
    except ImportError:
        return None
    try:
        # Without a type, Arrow infers one per block: only text blocks come back as strings
        # (bytes give binary, mixed values raise), though a str subclass counts as text too.
        chunks = [
            pa.array(values[start : start + _OBJECT_STRINGS_BLOCK], from_pandas=False)
            for start in range(0, len(values), _OBJECT_STRINGS_BLOCK)
        ]
    except (pa.ArrowException, TypeError, ValueError, UnicodeError, OverflowError):
        # NaN, pd.NA, lone surrogates, an int past 64 bits: the element-wise path tells them apart
        return None
    if not all(pa.types.is_string(c.type) or pa.types.is_large_string(c.type) for c in chunks):
        return None  # bytes, all-None blocks or other values: the element-wise path
    if not all(_only_types(values[start : start + _OBJECT_STRINGS_BLOCK].tolist(), _TEXT_TYPES)
               for start in range(0, len(values), _OBJECT_STRINGS_BLOCK)):
        return None  # Arrow takes a str subclass as its text: the element-wise path hashes its type
    if any(c.null_count or not pa.types.is_string(c.type) or c.offset for c in chunks):
        return _arrow_column_digest(chunks, set())
    # Fresh, null-free string arrays made from fixed-size blocks: equal values give equal
    # blocks, so each block's own offsets (from 0) and bytes are hashed as they are, uncopied.
    np = sys.modules["numpy"]
    ends, data = _Hasher(), _Hasher()
    for chunk in chunks:
        _, offsets, text = chunk.buffers()
        used = int(np.frombuffer(offsets, dtype="<i4", count=len(chunk) + 1)[-1])
        ends.update(memoryview(offsets)[: (len(chunk) + 1) * 4])
        if used:
            data.update(memoryview(text)[:used])  # the buffer may be longer: only the values' bytes
    return b"b" + _u64(len(values)) + ends.digest() + data.digest()


def _object_text_digest(values: Any) -> bytes | None:
    """Digest of an object array holding only ``str``, or None if it holds anything else.

    Touching ten million scattered Python objects is what hashing such a column costs, so
    each is read as few times as possible: a block of them is listed, their types checked,
    and they are joined with NUL by ``str.join`` (C speed), and the UTF-8 bytes are hashed.
    Only exact ``str`` may be joined: ``str.join`` takes a ``str`` subclass (a ``str`` enum
    member, ``np.str_``) as its text, though it is another value, which the element-wise
    path hashes with its type. The joined text decodes back to the same strings only if
    none of them holds a NUL itself, which one count per block confirms; any that does, or
    a ``None``, leaves the array to the Arrow path. Which path an array takes depends on its
    values alone, so equal arrays always hash alike.
    """
    np = sys.modules["numpy"]
    data = _Hasher()
    for start in range(0, len(values), _OBJECT_TEXT_BLOCK):
        items = values[start : start + _OBJECT_TEXT_BLOCK].tolist()
        if not _only_types(items, _STR_TYPE):
            return None
        encoded = "\x00".join(items).encode("utf-8", "surrogatepass")
        # numpy counts the NULs several times faster than ``bytes.count`` does.
        if np.count_nonzero(np.frombuffer(encoded, dtype=np.uint8) == 0) != len(items) - 1:
            return None  # a string holds a NUL: the separators would not mark every boundary
        if start:
            data.update(b"\x00")
        data.update(encoded)
    return b"j" + _u64(len(values)) + data.digest()


_STR_TYPE: frozenset[type] = frozenset({str})
_TEXT_TYPES: frozenset[type] = frozenset({str, type(None)})


def _only_types(items: list[Any], types: frozenset[type]) -> bool:
    """Whether every item's type is exactly one of ``types`` (a subclass is not).

    ``map(type, ...)`` keeps the loop in C; counting the exact ``str`` first is
    the common case's one pass.
    """
    kinds = list(map(type, items))
    return kinds.count(str) == len(kinds) or set(kinds) <= types


# -- pandas ----------------------------------------------------------------------------------


def _feed_pandas(hasher: Any, value: Any, stack: set[int]) -> None:
    pd = sys.modules["pandas"]
    if isinstance(value, pd.DataFrame):
        _feed_frame(hasher, value, stack)
        _feed_attrs(hasher, value, stack)
    elif isinstance(value, pd.Series):
        hasher.update(b"x")
        _feed(hasher, value.name, stack)
        _feed_index(hasher, value.index, stack)
        _feed_pandas_values(hasher, value.array, stack)
        _feed_attrs(hasher, value, stack)
    elif isinstance(value, pd.Index):
        _feed_index(hasher, value, stack)
    elif isinstance(value, pd.api.extensions.ExtensionArray):
        hasher.update(b"xa")
        _feed_pandas_values(hasher, value, stack)
    elif value is pd.NaT:
        hasher.update(b"PN")  # its pickle names a private function pandas 3 renamed
    elif isinstance(value, pd.Timestamp):
        _feed_timestamp(hasher, value)
    else:
        _feed_reduced(hasher, value, stack)


def _feed_timestamp(hasher: Any, stamp: Any) -> None:
    """Feed a Timestamp as its instant, its unit and its time zone's name.

    Its pickle holds the time zone object, which pandas 2 makes with pytz and
    pandas 3 with zoneinfo for the same ``tz="Europe/Paris"``, so the same
    instant hashed differently under each (and under one, by which
    library's object the caller passed). A zone counts by its name, as in a
    column's dtype (``datetime64[ns, Europe/Paris]``).
    """
    moment = stamp.asm8  # the instant in UTC, at the Timestamp's own unit
    hasher.update(b"PT" + _enc_int(int(moment.view("i8"))))
    _feed_text(hasher, b"", stamp.unit)
    _feed_text(hasher, b"", "" if stamp.tz is None else _zone_name(stamp.tz))


def _zone_name(zone: Any) -> str:
    """A time zone's name: zoneinfo's key, pytz's zone, else its text (``UTC``, ``UTC+01:00``)."""
    name = getattr(zone, "key", None) or getattr(zone, "zone", None)
    return name if isinstance(name, str) else str(zone)


def _feed_attrs(hasher: Any, value: Any, stack: set[int]) -> None:
    """Feed a frame's or series' ``attrs`` (units, a source, a schema version) when it has any.

    They are data a consumer may read, and the store keeps them: two frames
    that differ only there must not share a digest, or the consumer stays
    cached on the old ones. Nothing is fed when they are empty, so such a
    value hashes as it always did; no value encoding starts with \\0, so this
    suffix cannot pass for another value.
    """
    attrs = value.attrs
    if attrs:
        hasher.update(b"\x00attrs")
        _feed(hasher, dict(attrs), stack)


def _feed_frame(hasher: Any, frame: Any, stack: set[int]) -> None:
    hasher.update(b"X" + _u64(frame.shape[0]) + _u64(frame.shape[1]))
    columns = frame.columns
    if _plain_labels(columns):
        # Labels hashed as values, as they always were: the same text labels may sit in an object
        # or a str Index (pandas 2 and 3 make one each from the same code).
        _feed(hasher, list(columns.names), stack)
        _feed(hasher, columns.tolist(), stack)
    else:
        # Any other Index counts whole, as the row index does: its type, dtype and a date index's
        # freq (Index([0, 1]) is not RangeIndex(2), nor an int32 or object Index of 0 and 1; a
        # CategoricalIndex is not its labels), which the store keeps. The plain encoding starts
        # with a list and no value encoding starts with \0, so neither can pass for the other.
        hasher.update(b"\x00columns")
        _feed_index(hasher, columns, stack)
    _feed_index(hasher, frame.index, stack)
    for _, column in frame.items():
        _feed_pandas_values(hasher, column.array, stack)


def _plain_labels(columns: Any) -> bool:
    """Whether a frame's column Index keeps the encoding of its labels alone.

    So are a RangeIndex (what a frame without labels gets), and an Index (or
    each level of a MultiIndex) of object or ``str`` dtype holding exact
    ``str`` only, the labels most frames have: their digests stay what they
    were. Every other Index is hashed whole.
    """
    pd = sys.modules["pandas"]
    if type(columns) is pd.RangeIndex:
        return True
    if type(columns) is pd.MultiIndex:
        levels = [columns.get_level_values(level) for level in range(columns.nlevels)]
    elif type(columns) is pd.Index:
        levels = [columns]
    else:
        return False
    return len(columns) > 0 and all(
        type(level) is pd.Index
        and _dtype_text(level.dtype) in ("object", "str")
        and _only_types(level.tolist(), _STR_TYPE)
        for level in levels
    )


def _feed_index(hasher: Any, index: Any, stack: set[int], with_freq: bool = True) -> None:
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
        freq = index.freq if with_freq and isinstance(index, (pd.DatetimeIndex, pd.TimedeltaIndex)) else None
        if freq is not None:
            # A date index's frequency (`freq="D"`) is data a consumer reads (`shift`, `asfreq`, a
            # forecasting model) and the store keeps it: two series that differ only there must not
            # share a digest. Nothing is fed without one, so such an index hashes as it always did;
            # no value encoding starts with \0, so this suffix cannot pass for another value.
            hasher.update(b"\x00freq")
            _feed_text(hasher, b"", index.freqstr)


def _feed_pandas_values(hasher: Any, array: Any, stack: set[int]) -> None:
    """Feed one column's dtype (as text) and values, reading its buffers where it can."""
    pd = sys.modules["pandas"]
    np = sys.modules["numpy"]
    dtype = array.dtype
    # pandas 2's StringArray is a NumpyExtensionArray too: its dtype must stay "string".
    numpy_backed = isinstance(array, pd.arrays.NumpyExtensionArray) and not isinstance(
        array, pd.arrays.StringArray
    )
    if numpy_backed:
        values = _little_endian(array.to_numpy(copy=False))
        dtype = values.dtype  # its text is the one of the pandas dtype, in little-endian order
    _feed_text(hasher, b"V", _dtype_text(dtype))
    hasher.update(_u64(len(array)))
    if numpy_backed:
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
        _feed_index(hasher, array.categories, stack, with_freq=False)  # followed by bytes, not a tag
        _feed_array_bytes(hasher, np.asarray(array.codes))
    elif isinstance(array, pd.core.arrays.masked.BaseMaskedArray):
        _feed_masked(hasher, array._data, array._mask)
    elif isinstance(array, pd.arrays.ArrowExtensionArray):
        hasher.update(b"q" + _arrow_column_digest(_chunks_of(array.__arrow_array__()), stack))
    elif isinstance(array, pd.arrays.StringArray):  # str values and missing markers
        _feed_object_values(hasher, array.to_numpy(dtype=object, na_value=None), stack)
    else:
        _feed_object_values(hasher, np.asarray(array, dtype=object), stack)


def _dtype_text(dtype: Any) -> str:
    """A column's dtype as text, one name for one dtype under every supported pandas.

    pandas 2.2 calls the string dtype of ``future.infer_string`` "string"
    (storage ``pyarrow_numpy``), the very dtype pandas 2.3 and 3 call "str"
    (Arrow storage, NaN for missing): the same column hashed differently
    after an upgrade to pandas 3, and under pandas 2.2 like a ``string``
    column, whose missing value is ``pd.NA``.
    """
    if getattr(dtype, "storage", None) == "pyarrow_numpy":
        return "str"
    return str(dtype)


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
            # A field that may not hold nulls is another table (Table.equals says so), written as
            # Arrow prints it; a nullable field's text is its type alone, as it always was.
            _feed_text(hasher, b"", str(field.type) if field.nullable else f"{field.type} not null")
            hasher.update(_arrow_column_digest(_chunks_of(column), stack))
        ranges, attrs = _pandas_extras(value.schema.metadata, value.num_rows)
        # Each is fed only when there is one, so other tables hash as they always did; no value
        # encoding starts with \0, so these cannot pass for another value.
        if ranges:
            hasher.update(b"\x00range")
            _feed(hasher, ranges, stack)
        if attrs:  # what to_pandas() gives the frame as its attrs
            hasher.update(b"\x00attrs")
            _feed(hasher, attrs, stack)
        # A field's own metadata (units, a description, Parquet's field ids) is kept by the store
        # and read by a consumer: Table.equals(check_metadata=True) tells such tables apart.
        described = [[position, field.metadata] for position, field in enumerate(value.schema) if field.metadata]
        if described:
            hasher.update(b"\x00fields")
            _feed(hasher, described, stack)
        # And a nested field's (a list's item, a struct's member), which the store keeps as well.
        nested = [[position, *inner] for position, field in enumerate(value.schema)
                  for inner in _child_metadata(field.type)]
        if nested:
            hasher.update(b"\x00nested")
            _feed(hasher, nested, stack)
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


def _child_metadata(kind: Any, path: tuple[int, ...] = ()) -> Iterator[list[Any]]:
    """``[child path..., metadata]`` of each field nested in Arrow type ``kind`` that has metadata, depth first."""
    for index in range(getattr(kind, "num_fields", 0)):
        child = kind.field(index)
        where = (*path, index)
        if child.metadata:
            yield [*where, child.metadata]
        yield from _child_metadata(child.type, where)


def _pandas_extras(metadata: dict[bytes, bytes] | None, rows: int) -> tuple[list[Any], dict[Any, Any]]:
    """What ``to_pandas()`` rebuilds from a table's pandas metadata alone: (RangeIndex, attrs).

    ``Table.from_pandas`` keeps a RangeIndex as (name, start, stop, step)
    rather than as a column, and the frame's ``attrs`` as "attributes", so two
    such tables of equal columns differ only there, and ``to_pandas()`` gives
    them different frames. The ranges are empty for the default
    ``RangeIndex(rows)`` (what a table without metadata gives too), and both
    are empty for other metadata, which holds library versions and nothing
    that is data.
    """
    import json

    text = (metadata or {}).get(b"pandas")
    if not text:
        return [], {}
    try:
        pandas_metadata = json.loads(text)
        entries = pandas_metadata.get("index_columns", [])
        ranges = [
            [entry.get("name"), entry["start"], entry["stop"], entry["step"]]
            for entry in entries
            if isinstance(entry, dict) and entry.get("kind") == "range"
        ]
    except (ValueError, KeyError, AttributeError, TypeError):
        return [], {}  # not pandas' format: nothing to add
    attrs = pandas_metadata.get("attributes")
    return ([] if ranges == [[None, 0, rows, 1]] else ranges), (attrs if isinstance(attrs, dict) else {})


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
            valid = _drop_nulls(chunk)
            if valid is None:  # nested values Arrow cannot filter: fed as Python values, as they would be
                for item in chunk.to_pylist():
                    if item is not None:
                        _feed(streams.data, item, stack)
                position += size
                continue
            chunk = valid
        _feed_arrow_chunk(chunk, streams, stack)
        position += size
    return _u64(position) + streams.nulls.digest() + streams.ends.digest() + streams.data.digest()


def _drop_nulls(chunk: Any) -> Any:
    """The chunk's valid values, or None for a nested type holding view values.

    Arrow has no filter for string_view and binary_view (a column read from
    Parquet or Polars may have them): such a chunk is cast as
    ``_feed_arrow_chunk`` casts it anyway, and a list or struct of them is
    left to the caller, which feeds its values as Python objects, as the
    nested path does.
    """
    pa = sys.modules["pyarrow"]
    chunk = _without_views(pa, chunk)
    try:
        return chunk.drop_null()
    except pa.ArrowNotImplementedError:
        if pa.types.is_nested(chunk.type):
            return None
        raise


def _without_views(pa: Any, chunk: Any) -> Any:
    """A string_view or binary_view chunk as large_string or large_binary; others as they are."""
    kind = chunk.type
    if _is_view_type(pa, kind):
        return chunk.cast(pa.large_string() if pa.types.is_string_view(kind) else pa.large_binary())
    return chunk


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
    if _is_view_type(pa, kind):
        chunk = _without_views(pa, chunk)
        kind = chunk.type
    if len(chunk) == 0 or pa.types.is_null(kind):
        return
    if pa.types.is_boolean(kind):
        # Bits are packed from a chunk-dependent offset: one byte per value compares across chunks.
        streams.data.update(chunk.to_numpy(zero_copy_only=False).view(np.uint8))
    elif _is_variable_binary(pa, kind):
        _feed_arrow_binary(chunk, streams)
    elif pa.types.is_floating(kind):
        dtype = np.dtype(kind.to_pandas_dtype())
        values = np.frombuffer(
            chunk.buffers()[1], dtype=dtype, count=len(chunk), offset=chunk.offset * dtype.itemsize
        )
        _feed_canonical(streams.data, values, dtype, None)  # every NaN the same, as in numpy
    elif _fixed_width(kind):
        width = _fixed_width(kind)
        buffer = chunk.buffers()[1]
        start = chunk.offset * width
        streams.data.update(memoryview(buffer)[start : start + len(chunk) * width])
    else:
        # Nested types (list, struct, map, union) take the slow, simple and correct path.
        for item in chunk.to_pylist():
            _feed(streams.data, item, stack)


def _is_view_type(pa: Any, kind: Any) -> bool:
    """Whether ``kind`` is Arrow's string_view or binary_view (pyarrow 16 on; older has neither)."""
    is_string_view = getattr(pa.types, "is_string_view", None)
    return bool(is_string_view is not None and (is_string_view(kind) or pa.types.is_binary_view(kind)))


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


# -- scipy.sparse ----------------------------------------------------------------------------


def _feed_scipy_sparse(hasher: Any, value: Any, stack: set[int]) -> None:
    """Feed a sparse matrix or array by its type, shape, dtype and canonical entries.

    Its pickle would hold the storage: the order of entries (a COO matrix
    built in another order), duplicate entries that add up, explicit zeros,
    and flags scipy caches on first use (``has_sorted_indices``), so equal
    matrices hashed differently. The entries are summed, stripped of zeros
    and sorted by position instead; the type stays in, as a pandas dtype does.
    """
    np = sys.modules["numpy"]
    sparse = sys.modules["scipy.sparse"]
    if not sparse.issparse(value):  # another scipy.sparse object (a LinearOperator)
        _feed_reduced(hasher, value, stack)
        return
    coo = value.tocoo(copy=True)  # sum_duplicates works in place: never on the caller's matrix
    coo.sum_duplicates()
    coo.eliminate_zeros()
    # ``coords`` arrived in scipy 1.13 (with n-dimensional COO arrays); older ones have row/col.
    axes = coo.coords if hasattr(coo, "coords") else (coo.row, coo.col)
    coords = [np.asarray(axis, dtype="<i8") for axis in axes]
    order = np.lexsort(coords[::-1]) if coords else np.arange(0)
    _feed_text(hasher, b"M", type(value).__qualname__)
    hasher.update(_u64(len(coo.shape)) + b"".join(_u64(dim) for dim in coo.shape))
    for axis in coords:
        _feed_array_bytes(hasher, axis[order])
    _feed_ndarray(hasher, np.asarray(coo.data)[order], stack)


#: The encoder for each library whose types ``hashing`` sends here, by top-level module name.
LIBRARY_HANDLERS: dict[str, Handler] = {
    "numpy": _feed_numpy,
    "pandas": _feed_pandas,
    "pyarrow": _feed_arrow,
    "scipy": _feed_scipy_sparse,
}
