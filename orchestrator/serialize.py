"""Value <-> bytes by type: the materializers and the registry that picks one.

A *materializer* encodes one kind of value into bytes and decodes it back. The
store asks :func:`materializer_for` which one fits a step's output, records its
``name`` next to the artifact, and later decodes with
:func:`get_materializer`. Built-ins, tried in this order after any materializer
a user registered with ``first=True``:

- ``arrow.pandas``: pandas DataFrame / Series as an uncompressed Arrow IPC file;
- ``arrow.table``: pyarrow Table / RecordBatch as an Arrow IPC file
  (both in ``serialize_tables``);
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
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, Protocol, runtime_checkable

from orchestrator.errors import StoreError, did_you_mean
from orchestrator.json_values import is_json_exact
from orchestrator.serialize_tables import ArrowPandasMaterializer, ArrowTableMaterializer

if TYPE_CHECKING:
    pass


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

class _JsonMaterializer:
    name = "json"
    needs_unpickling = False

    def can_write(self, value: object) -> bool:
        try:
            return is_json_exact(value)
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


# A buffer at least this large (an array inside a pickled dict, model or list) is stored after
# the pickle stream instead of inside it, so that loading maps it from the store, not copies it.
OUT_OF_BAND_MIN = 1 << 16
_BUFFER_ALIGN = 64  # as the store aligns payloads: numpy reads aligned data at full speed


class _PickleMaterializer:
    """cloudpickle (protocol 5); large array buffers out of band, after the stream.

    The payload is the pickle stream, then each large buffer at a 64-byte aligned
    offset. ``meta`` records the stream's length and each buffer's offset and
    size; a payload without them (written before) is the stream alone.
    """

    name = "pickle"
    needs_unpickling = True

    def can_write(self, value: object) -> bool:
        return True

    def write(self, value: object, f: BinaryIO) -> dict[str, Any]:
        from orchestrator import class_refs

        kept: list[memoryview] = []

        def out_of_band(buffer: pickle.PickleBuffer) -> bool:
            view = buffer.raw()
            if view.nbytes < OUT_OF_BAND_MIN:
                return True  # in the stream: small buffers are not worth an entry
            kept.append(view)
            return False

        start = f.tell()  # the store's writer counts payload bytes: offsets are from the payload's start
        # cloudpickle; a class a worker got by value loads as the live one
        class_refs.dump(value, f, buffer_callback=out_of_band)
        if not kept:
            return {"protocol": 5}
        stream, spans = f.tell() - start, []
        for view in kept:
            f.write(bytes(-(f.tell() - start) % _BUFFER_ALIGN))
            spans.append([f.tell() - start, view.nbytes])
            f.write(view)
        return {"protocol": 5, "stream": stream, "buffers": spans}

    def read(self, data: memoryview, meta: dict[str, Any]) -> object:
        spans = meta.get("buffers")
        if not spans:
            return pickle.loads(data)
        stream = int(meta["stream"])
        if not all(stream <= int(start) and int(start) + int(size) <= data.nbytes for start, size in spans):
            raise ValueError(f"buffers {spans} lie outside the payload of {data.nbytes} bytes")
        # Arrays are made on these views: writable ones (the store's private map of the object)
        # are shared; a read-only payload (held in metadata.db, fetched from a URL) is copied,
        # as an in-stream buffer would have been, so that every loaded array can be written to.
        views = [data[start:start + size] for start, size in spans]
        buffers = views if not data.readonly else [bytearray(view) for view in views]
        return pickle.loads(data[:stream], buffers=buffers)



# --- numpy -------------------------------------------------------------------

_NPY_MAGIC = b"\x93NUMPY"


class _NumpyMaterializer:
    name = "numpy"
    needs_unpickling = False

    def can_write(self, value: object) -> bool:
        np = _loaded("numpy")
        array: Any = value
        # A memory map is stored as the array it maps (and loads as one, mapped from the store):
        # pickled, it was read whole into memory on every load. A dtype's metadata (h5py's enum
        # dtypes carry one) is not written in .npy, only warned about: pickle keeps it.
        return (np is not None and type(array) in (np.ndarray, np.memmap) and not array.dtype.hasobject
                and array.dtype.metadata is None)

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


# --- registry ----------------------------------------------------------------

_PICKLE = _PickleMaterializer()
_BUILTINS: tuple[Materializer, ...] = (
    ArrowPandasMaterializer(),
    ArrowTableMaterializer(),
    _NumpyMaterializer(),
    _JsonMaterializer(),
    _PICKLE,
)
_BUILTIN_NAMES = frozenset(m.name for m in _BUILTINS)
# The built-ins whose read() never unpickles: their artifacts need no signature (see needs_signature).
_NEVER_UNPICKLE = frozenset(m.name for m in _BUILTINS if not m.needs_unpickling)
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
    kind = type(value)
    if kind is int:
        return int.__repr__(value).encode()  # type: ignore[arg-type]  # what json writes, without its encoder
    if kind is str:
        return _JSON_TEXT.encode(value).encode("utf-8", "surrogatepass")
    return _JSON_CONSTANTS.get(value) if kind is not float else float.__repr__(value).encode()  # type: ignore[arg-type]


# json.dumps(value, separators=..., ensure_ascii=False) builds an encoder at each call (1.3 µs):
# one kept encoder for text, and the constants json writes, give the same bytes.
_JSON_TEXT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_JSON_CONSTANTS: dict[object, bytes] = {True: b"true", False: b"false", None: b"null"}


def _chain() -> list[Materializer]:
    """Every materializer in the order :func:`materializer_for` tries them."""
    return [*_before_builtins, *_BUILTINS[:-1], *_after_builtins, _PICKLE]


def register_materializer(m: Materializer, *, first: bool = True) -> None:
    """Make a materializer available for writing and reading.

    Register it in the pipeline file or a module it imports: the runner sends
    the materializers registered in the driver with each task, so process and
    Dask workers (which do not import the file) use them too; they must
    therefore be picklable.

    Args:
        m: The materializer; its ``name`` is recorded with each artifact.
        first: Try it before the built-ins (newest registration first);
            otherwise after them, but still before the pickle catch-all.

    Raises:
        StoreError: If ``m`` is a class rather than an instance, lacks a part of the
            protocol or takes a built-in name.
    """
    if isinstance(m, type):
        # A class passes the protocol check (its methods are attributes), then every store
        # write fails with "can_write() missing 1 required positional argument".
        raise StoreError(
            f"register_materializer() got the class {m.__qualname__}, not an instance of it. "
            f"Register an instance: register_materializer({m.__qualname__}())."
        )
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


def registered_materializers() -> tuple[tuple[Materializer, ...], tuple[Materializer, ...]]:
    """The materializers registered in this process: (before the built-ins, after them), in order.

    The runner sends them with each task: a process or Dask worker receives the
    step's code by value, without the pipeline file's ``register_materializer``
    call, and would otherwise store such values with pickle and fail to load them.
    """
    return tuple(_before_builtins), tuple(_after_builtins)


def adopt_materializers(registered: tuple[tuple[Materializer, ...], tuple[Materializer, ...]]) -> None:
    """Register those of ``registered_materializers()`` (of another process) not known here by name.

    One this process registered itself, under the same name, is kept as it is.
    """
    before, after = registered
    if not (before or after):
        return  # the common case: no user materializer at all, nothing to compare
    known = {m.name for m in _chain()}
    _before_builtins.extend(m for m in before if m.name not in known)
    _after_builtins.extend(m for m in after if m.name not in known)


def unregister_materializer(name: str) -> None:
    """Forget a user materializer (e.g. at the end of a test). Unknown names are ignored."""
    for registered in (_before_builtins, _after_builtins):
        registered[:] = [m for m in registered if m.name != name]


def materializer_for(value: object) -> Materializer:
    """Return the first materializer that can write ``value`` faithfully (pickle at worst).

    Raises:
        StoreError: A registered materializer's ``can_write`` raised (named in the message).
    """
    for m in _chain():
        try:
            if m.can_write(value):
                return m
        except Exception as exc:
            if is_builtin(m):
                raise
            # A user's can_write sees every value a step returns (before the built-ins), not only
            # its own type: without its name, the error reads like a bug of the step itself.
            raise StoreError(
                f"materializer {m.name!r}: can_write() raised {type(exc).__name__}: {exc} on a "
                f"value of type {type(value).__qualname__}. It is asked about every value a step "
                "returns: make it return False for values it does not take "
                "(e.g. `return isinstance(value, MyType)`)."
            ) from exc
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
    return name not in _NEVER_UNPICKLE  # asked for every artifact a run records: a set, not a walk


def is_builtin(m: Materializer) -> bool:
    """Return True for the built-in materializers (whose write may fall back to pickle)."""
    return any(m is builtin for builtin in _BUILTINS)
