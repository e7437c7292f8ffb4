"""Stable content hashes of values and files.

Every digest is XXH3-128 as 32 lowercase hex characters, and depends only on
content: never on ``PYTHONHASHSEED``, ``id()``, memory layout, dict or set
insertion order, or how an Arrow column happens to be chunked. Values are fed
to one streaming hasher as a self-delimiting encoding (a type tag, then
lengths, then payload), so ``("ab", "c")`` and ``("a", "bc")``, ``[1]`` and
``(1,)``, ``1``, ``1.0`` and ``True``, ``"1"`` and ``b"1"`` all differ.

This module holds the public entry points, the dispatch by type, the
encoding of scalars and containers, the pickle-reduction fallback for other
objects, and file and directory digests. numpy arrays, pandas and Arrow
objects and scipy sparse matrices are encoded by ``hashing_tables``, which builds on this module's
primitives and is imported from here only when a value of one of those
libraries first shows up.

This module must not import numpy, pandas, pyarrow, scipy or ``hashing_tables`` at
import time: start-up stays light, those types are recognised by their module
name only, and imports between the two modules point one way. It hashes data,
not code: a step's code fingerprint lives in ``fingerprint.py`` and only
calls ``hash_value`` for the constants it finds. The one exception is a value
whose behaviour is the user's own code: an instance of a class from the
user's modules, or such a function passed as a value, carries that code's
digest (``value_code.behaviour_digest``, imported when such a value first
shows up), because pickled by reference it would look the same after the code
changed, and early cutoff would keep its consumers cached on stale behaviour.
"""

from __future__ import annotations

import contextlib
import contextvars
import copyreg
import dataclasses
import enum
import functools
import gc
import math
import os
import pathlib
import stat
import struct
import threading
import time
import types
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from typing import Any

import xxhash

from orchestrator.errors import UnhashableValueError
from orchestrator.folder_ignore import IgnoreRules

_Hasher = xxhash.xxh3_128
_oneshot = xxhash.xxh3_128_hexdigest
_u64 = struct.Struct("<Q").pack
_f64 = struct.Struct("<d").pack

_READ_CHUNK = 8 << 20  # 8 MiB: large enough to run at memory speed, small enough to stay cheap
_STREAM_THRESHOLD = 1 << 16  # bigger str/bytes values are streamed instead of concatenated
_RACY_NS = 2_000_000_000  # a file modified this recently may change again within its mtime tick
_CANONICAL_NAN = b"\x00\x00\x00\x00\x00\x00\xf8\x7f"

# Types from these libraries (and scipy's sparse matrices) are encoded by hashing_tables
# (see _choose_handler).
_TABLE_LIBRARIES = frozenset({"numpy", "pandas", "pyarrow"})
_SPARSE_MODULE = "scipy.sparse"

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


def hash_file(
    path: os.PathLike[str] | str,
    memo: MutableMapping[str, str] | None = None,
    listing: list[tuple[str, str]] | None = None,
) -> str:
    """Return the content digest of a file or a directory tree.

    A file's digest depends only on its bytes, not on its name or location. A
    directory's digest covers each entry's relative POSIX path and content;
    symlinks are followed, and entries that are neither regular files nor
    directories (sockets, FIFOs, dangling links) are ignored, and so is what
    is never data (``.DS_Store``, ``__pycache__/``, ``.ipynb_checkpoints/``,
    editor swap and backup files, ``.git/``) or what the folder's
    ``.orchignore`` names (``folder_ignore``).

    Args:
        path: The file or directory.
        memo: Optional mapping kept by the caller between calls. It maps a
            key built from a file's resolved path, size, mtime, inode and ctime
            to that file's digest, so unchanged files are not read again. Files
            modified (or whose mtime was set) in the last two seconds are not
            memoised: another write within the same tick would go unnoticed.
        listing: Optional list that a directory's files are appended to, as
            (relative POSIX path, content digest), so that a caller can say
            which file of a folder changed without reading it again.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        NotAFileError: ``path`` is a pipe, a device or a socket.
    """
    path = os.fspath(path)
    info = os.stat(path)
    if stat.S_ISDIR(info.st_mode):
        return _dir_digest(path, info, memo, listing)
    if not stat.S_ISREG(info.st_mode):
        raise NotAFileError(path, info.st_mode)
    return _file_digest(path, info, memo)


class NotAFileError(OSError):
    """A path that is a pipe, a device or a socket: hashing it would consume it (a pipe), or never end (``/dev/zero``)."""

    def __init__(self, path: str, mode: int) -> None:
        kind = "a named pipe" if stat.S_ISFIFO(mode) else "a character device" if stat.S_ISCHR(mode) \
            else "a block device" if stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else "not a file"
        super().__init__(
            f"{path} is {kind}, not a file or folder: a path is an input identified by its content, read "
            "before its step runs, which would leave a pipe empty for the step (or never end, for a device). "
            "Write it to a file first (`cat ... > data.csv`) and pass that.")


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
        module = base.__module__ or ""
        library = module.partition(".")[0]
        if library in _TABLE_LIBRARIES or module.startswith(_SPARSE_MODULE):
            # Deferred: hashing_tables imports this module, and is only needed once such a value exists.
            from orchestrator.hashing_tables import LIBRARY_HANDLERS

            return LIBRARY_HANDLERS[library]
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
    _feed_user_code(hasher, type(value))
    _feed(hasher, value.value, stack)


def _feed_dataclass(hasher: Any, value: Any, stack: set[int]) -> None:
    if isinstance(value, type):  # the dataclass itself, not an instance
        _feed_class_ref(hasher, value, stack)
        return
    _enter(value, stack)
    fields = dataclasses.fields(value)
    # The module is left out on purpose: moving a module must not change its values' digests.
    _feed_text(hasher, b"D", type(value).__qualname__)
    _feed_user_code(hasher, type(value))
    hasher.update(_u64(len(fields)))
    for field in fields:
        _feed_text(hasher, b"", field.name)
        try:
            item = getattr(value, field.name)
        except AttributeError:  # an init=False field not set yet: no value encoding starts with \0
            hasher.update(b"\x00unset")
            continue
        _feed(hasher, item, stack)
    extra = _extra_attributes(value, fields)
    if extra:
        # State set outside the fields (``model.weights_ = ...``) is data too; nothing is fed
        # when there is none, so such a dataclass hashes as it always did.
        hasher.update(b"\x00extra")
        _feed(hasher, extra, stack)
    stack.discard(id(value))


def _extra_attributes(value: Any, fields: tuple[dataclasses.Field[Any], ...]) -> dict[str, Any]:
    """Instance attributes of a dataclass that are not fields, nor cached properties of its fields."""
    state = getattr(value, "__dict__", None)
    if not state:
        return {}
    names = {field.name for field in fields}
    kind = type(value)
    return {
        name: item
        for name, item in state.items()
        if name not in names and not isinstance(getattr(kind, name, None), functools.cached_property)
    }


def _feed_path(hasher: Any, value: pathlib.PurePath, stack: set[int]) -> None:
    # A path value is text; reading the file it names is hash_file's job, if the caller wants it.
    text = _mode.path_text
    _feed_text(hasher, b"P", value.as_posix() if text is None else text(value))


def _feed_class_ref(hasher: Any, value: type, stack: set[int]) -> None:
    _feed_text(hasher, b"C", getattr(value, "__qualname__", value.__name__))
    _feed_user_code(hasher, value)


def _feed_user_code(hasher: Any, obj: Any) -> None:
    """Feed the code digest of a class or function of the user's own modules (nothing for others).

    On the path of every instance hashed: one flag and one dict lookup per call.
    """
    if _mode.by_name or obj is _mode.left_out:
        return
    feed = _CODE_FEEDS.get(obj)
    if feed is None:
        digest = _user_code_digest(obj)
        data = digest.encode()
        feed = b"@" + _u64(len(data)) + data if digest else b""
        if len(_CODE_FEEDS) >= _CODE_FEEDS_MAX:
            _CODE_FEEDS.clear()  # dynamically made classes must not pile up
        _CODE_FEEDS[obj] = feed
    if feed:
        hasher.update(feed)


class _CodeMode(threading.local):
    by_name = False  # True while a behaviour digest is computed in this thread
    left_out: Any = None  # a class whose code ``without_code_of`` leaves out
    path_text: Callable[[pathlib.PurePath], str] | None = None  # see ``paths_as``


_mode = _CodeMode()
_CODE_FEEDS: dict[Any, bytes] = {}  # class or function -> the bytes _feed_user_code feeds for it
_CODE_FEEDS_MAX = 4096


@contextlib.contextmanager
def code_by_name() -> Iterator[None]:
    """While a behaviour digest is computed, the user's code inside the values it hashes counts by name.

    Its own walk covers the code it reaches; nested digests would make the
    result depend on which value was hashed first, and could loop.
    """
    before = _mode.by_name
    _mode.by_name = True
    try:
        yield
    finally:
        _mode.by_name = before


@contextlib.contextmanager
def without_code_of(cls: type) -> Iterator[None]:
    """While it lasts, values of ``cls`` hash by their data alone, without the code of ``cls``.

    For an explanation only (the object a step's method is bound to, whose
    class counts as a part of its own): never for a key.
    """
    before = _mode.left_out
    _mode.left_out = cls
    try:
        yield
    finally:
        _mode.left_out = before


@contextlib.contextmanager
def paths_as(text: Callable[[pathlib.PurePath], str]) -> Iterator[None]:
    """While it lasts, a path value in this thread hashes as ``text(path)`` rather than as its own text.

    For the paths in a key's parameters, whose text must not depend on the
    folder a project is checked out in (``dag.path_in_key``). The code digest of
    a class or function of the user's (memoised) is never made under it.
    """
    before = _mode.path_text
    _mode.path_text = text
    try:
        yield
    finally:
        _mode.path_text = before


def user_code_digest(obj: Any) -> str:
    """The code digest a value of the user's class ``obj`` is hashed with ("" for others' classes).

    Read from the memo that hashing the value filled, so recording it beside a
    key (for a reason to say the class's code changed) costs no second walk.
    """
    feed = _CODE_FEEDS.get(obj)
    if feed is None:
        return _user_code_digest(obj)
    return feed[9:].decode() if feed else ""  # b"@", its length (8 bytes), the digest


def _user_code_digest(obj: Any) -> str:
    """``value_code.behaviour_digest`` of ``obj`` if it is the user's class or function, else ""."""
    if not isinstance(obj, (type, types.FunctionType)):
        return ""
    from orchestrator.value_code import behaviour_digest, is_users

    if not is_users(obj):
        return ""
    # Memoised for every later value of the class: a path constant its code reads hashes as its own
    # text, whichever key (``paths_as``) first asked for it.
    paths, _mode.path_text = _mode.path_text, None
    try:
        return behaviour_digest(obj)
    except (AttributeError, TypeError, ValueError):
        return ""  # code it cannot read (an extension type's methods): by name only, as before
    finally:
        _mode.path_text = paths


def ufunc_function(value: Any) -> types.FunctionType | None:
    """The Python function a numpy ufunc made by ``np.frompyfunc(square, 1, 1)`` calls, else None.

    Such a ufunc pickles by its name (``"square (vectorized)"``), which leaves
    the function's code out of every digest. numpy hands the function to the
    garbage collector as what the ufunc holds (``gc.get_referents``), on
    numpy 1.26 and 2; where it does not, None, and the ufunc counts by name as
    before. Never imports numpy: the type is recognised by its module.
    """
    kind = type(value)
    if kind.__name__ != "ufunc" or kind.__module__ != "numpy":
        return None
    held = [item for item in gc.get_referents(value) if isinstance(item, types.FunctionType)]
    return held[0] if len(held) == 1 else None


def _feed_builtin_subclass(hasher: Any, value: Any, stack: set[int]) -> None:
    """Subclasses of built-in types: class name, the built-in value, then any extra state."""
    _feed_text(hasher, b"U", type(value).__qualname__)
    _feed_user_code(hasher, type(value))
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
    function = value.__func__ if isinstance(value, types.MethodType) else value
    if isinstance(function, types.FunctionType):
        from orchestrator.value_code import is_users

        if is_users(function):
            # By name and what it does, not by its pickle: that holds file names and line
            # numbers, and is by reference in the driver but by value in a worker.
            _feed_text(hasher, b"F", function.__qualname__)
            if function is not value:
                _feed(hasher, value.__self__, stack)  # a bound method: its instance too
            _feed_user_code(hasher, function)
            return
    # Deferred: only values without a structural encoding need it.
    import cloudpickle  # type: ignore[import-untyped]

    try:
        data = cloudpickle.dumps(value, protocol=5)
    except Exception as exc:
        raise UnhashableValueError(
            f"cannot hash a value of type {type(value).__qualname__}: {exc}"
        ) from exc
    _feed_buffer(hasher, b"K", data)


_FIELDS_SET = frozenset({"__pydantic_fields_set__", "__fields_set__"})  # pydantic 2's and 1's


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
    state = _slots_state(value, state)
    if type(state) is dict and not _FIELDS_SET.isdisjoint(state):
        # Which fields a pydantic model was given rather than defaulted is how it was made, not
        # what it holds: Cfg(beta=0.5) equals Cfg(name="adam", beta=0.5), for pydantic too, and a
        # run repeated from its recorded parameters (every field) must find the same key.
        state = {k: v for k, v in state.items() if k not in _FIELDS_SET}
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


def _slots_state(value: Any, state: Any) -> Any:
    """Default state of an object with slots as ``(None, {every attribute})``.

    Python reduces such an object to ``(__dict__ or None, slot values)``. A
    class that cloudpickle alone rebuilt by value in a worker had no real slots
    (``class_refs.with_slots`` now keeps them, where ``type`` makes the class),
    so there the same object reduced to ``(attributes, attributes)``: which of
    the two holds an attribute is storage, not data.
    """
    if (
        type(state) is not tuple
        or len(state) != 2
        or getattr(type(value), "__getstate__", None) is not object.__getstate__
    ):
        return state
    held, slots = state
    if (held is not None and type(held) is not dict) or type(slots) is not dict:
        return state
    return (None, {**(held or {}), **slots})


def _feed_callable_ref(hasher: Any, func: Any, stack: set[int]) -> None:
    name = getattr(func, "__qualname__", None)
    if isinstance(name, str):
        _feed_text(hasher, b"C", name)
        _feed_user_code(hasher, func)
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


# -- files -----------------------------------------------------------------------------------


def _file_digest(path: str, info: os.stat_result, memo: MutableMapping[str, str] | None) -> str:
    if memo is None:
        return _read_file_digest(path)
    # The ctime too: an edit that keeps the size and restores the mtime (`touch -d`, `cp -p`,
    # `rsync -t`, an unpacked archive) keeps size, mtime and inode, but no one can set the ctime.
    key = (f"{os.path.realpath(path)}\x00{info.st_size}\x00{info.st_mtime_ns}\x00{info.st_ino}"
           f"\x00{info.st_ctime_ns}")
    digest = memo.get(key)
    if digest is None:
        digest = _read_file_digest(path)
        if time.time_ns() - max(info.st_mtime_ns, info.st_ctime_ns) >= _RACY_NS:
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


# Folders a directory input's digest leaves out: the store a run writes to, when it lies inside one.
_SKIPPED_FOLDERS: contextvars.ContextVar[frozenset[tuple[int, int]]] = contextvars.ContextVar(
    "skipped_folders", default=frozenset())


@contextlib.contextmanager
def skipping_folders(paths: Iterable[str | os.PathLike[str]]) -> Iterator[None]:
    """Leave these folders out of every directory digest computed in the block.

    A store inside a folder input (``./cache`` under ``-p data=.``, or
    ``--store data/cache``) changes with every run that writes to it, so the
    folder's digest would change too and its step would never stay cached. The
    store is no data a step reads: it is left out, as if it were not there, so
    the digest is also the one the folder had before the store was made.
    Folders are matched by (device, inode), whatever path reaches them; one
    that does not exist is skipped.
    """
    found = set()
    for path in paths:
        try:
            info = os.stat(path)
        except OSError:
            continue
        found.add((info.st_dev, info.st_ino))
    token = _SKIPPED_FOLDERS.set(_SKIPPED_FOLDERS.get() | found)
    try:
        yield
    finally:
        _SKIPPED_FOLDERS.reset(token)


def _dir_digest(path: str, info: os.stat_result, memo: MutableMapping[str, str] | None,
                listing: list[tuple[str, str]] | None = None) -> str:
    hasher = _Hasher()
    hasher.update(b"\x00dir\x00")
    rules = IgnoreRules.of(path)
    for tag, relative, digest in _walk(path, "", {(info.st_dev, info.st_ino)}, memo, rules):
        _feed_text(hasher, tag, relative)
        _feed_text(hasher, b"", digest)
        if listing is not None and tag == b"f":
            listing.append((relative, digest))
    return hasher.hexdigest()


def _walk(
    path: str, prefix: str, ancestors: set[tuple[int, int]], memo: MutableMapping[str, str] | None,
    rules: IgnoreRules,
) -> Iterator[tuple[bytes, str, str]]:
    """Yield (kind, relative POSIX path, digest) for a directory's entries, sorted by name.

    Entries ``rules`` leave out (tool debris, what ``.orchignore`` names) are
    skipped as if absent, a folder with everything in it.
    """
    with os.scandir(path) as entries:
        names = sorted((entry.name, entry.path) for entry in entries)
    for name, full in names:
        relative = f"{prefix}{name}"
        try:
            info = os.stat(full)  # follows symlinks
        except FileNotFoundError:
            continue  # a dangling symlink
        if rules.ignored(relative, stat.S_ISDIR(info.st_mode)):
            continue  # not data: a .DS_Store, __pycache__/, an editor's swap file...
        if stat.S_ISDIR(info.st_mode):
            identity = (info.st_dev, info.st_ino)
            if identity in _SKIPPED_FOLDERS.get():
                continue  # the store: it changes with every run, and holds no data a step reads
            if identity in ancestors:  # a symlink back up the tree: note it, do not loop
                yield b"l", relative, ""
                continue
            yield b"d", relative, ""
            yield from _walk(full, relative + "/", ancestors | {identity}, memo, rules)
        elif stat.S_ISREG(info.st_mode):
            yield b"f", relative, _file_digest(full, info, memo)
