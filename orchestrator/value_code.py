"""The code behind a value: what an instance of the user's class, or the user's function, does.

An object pickled by reference (its class named, its code left behind) looks
the same to ``hashing`` before and after the user edits that class, so early
cutoff would keep the steps that use it cached on stale behaviour. ``hashing``
therefore mixes ``behaviour_digest`` into the digest of such values.

Unlike a step's fingerprint (``fingerprint``), which reads normalized source,
this digest reads bytecode only, and decides whose code is the user's from
the object alone: it must come out the same in the driver and in a worker
that received the class by value, without its source file or its module. It
covers the class's own functions and data, its user base classes, and the
user functions, classes and constants their code reads by global name
(``helpers.clean`` and ``helpers.FACTOR`` included); installed packages and
the standard library count for nothing.

This module must not import numpy, pandas or pyarrow, and must not hash
values other than code.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import inspect
import itertools
import logging
import sys
import types
from typing import Any

from orchestrator import hashing
from orchestrator.code_analysis import (
    _class_functions,
    _code_digest,
    closure_functions,
    function_info,
    method_digests,
)
from orchestrator.user_code import is_library_function, module_kind

__all__ = ["behaviour_digest", "class_code_parts", "is_users"]


def is_users(obj: Any) -> bool:
    """Whether a class, function or module is the user's code, judged the same in a driver and a worker.

    A worker that received the user's code by value has no module of that
    name loaded: an unloaded module counts as the user's. Installed packages
    and the standard library are always loaded where their objects exist.
    """
    name = obj.__name__ if isinstance(obj, types.ModuleType) else getattr(obj, "__module__", None)
    if not isinstance(name, str) or name in ("builtins", "orchestrator") or name.startswith("orchestrator."):
        return False
    if name == "__main__":
        return True
    module = sys.modules.get(name)
    return module is None or module_kind(module) == "user"


def class_code_parts(value: Any) -> dict[str, dict[str, Any]]:
    """What a key records of a parameter holding the user's classes or functions, for explanations only.

    ``{"config.ModelConfig": {"code": the digest its hash holds, "methods": {name: digest}}}``, for
    the value's class and those of the configs in its fields (``ModelConfig.opt``, an ``Optimizer``),
    lists and dicts, and for a function of the user's passed as a value (``loss=losses.focal``) the
    digest of its own code: an edited ``ModelConfig.forest_kwargs`` changes the parameter's digest
    while it prints the same, and with this the reason names the method (or the class, the
    function) rather than "its code or contents changed". Empty for a value holding none. A class's
    digest is the one hashing the value memoized. Recorded once per key, the walk stays short: the first ``_MOST_ITEMS`` of a list or
    dict (a list of configs is of one class or a few), ``_MOST_WALKED`` objects in all.
    """
    out: dict[str, dict[str, Any]] = {}
    pending, seen = [value], 0
    while pending and seen < _MOST_WALKED:
        item = pending.pop()
        seen += 1
        if isinstance(item, (list, tuple, set, frozenset)):
            pending.extend(itertools.islice(item, _MOST_ITEMS))
            continue
        if isinstance(item, dict):
            pending.extend(itertools.islice(item.values(), _MOST_ITEMS))
            continue
        if isinstance(item, types.FunctionType):
            if is_users(item) and not is_library_function(item):
                # Its own code only: a closure value that changed is no code to name (nor are the
                # helpers it calls, which its digest holds too: the reason then says what it said).
                out.setdefault(f"{item.__module__}.{item.__qualname__}",
                               {"code": function_info(item).digest, "methods": {}})
            continue
        cls = type(item)
        if item is None or isinstance(item, (str, bytes, int, float, type)) or not is_users(cls):
            continue
        name = f"{cls.__module__}.{cls.__qualname__}"
        if name not in out:
            digest = hashing.user_code_digest(cls)
            if digest:
                out[name] = {"code": digest, "methods": _written_methods(cls)}
        pending.extend(getattr(item, field, None) for field in _field_names(item))
    return out


def _written_methods(cls: type) -> dict[str, str]:
    """``method_digests`` without the methods a decorator made from the fields (a dataclass's
    ``__init__``, ``__eq__``): a field added out of its repr names the class, not three methods
    nobody wrote."""
    return {name: digest for name, digest in method_digests(cls).items()
            if not getattr(getattr(_innermost(vars(cls).get(name)), "__code__", None), "co_filename",
                           "").startswith("<")}


_MOST_WALKED = 64  # objects of a parameter looked at for the user's classes it holds
_MOST_ITEMS = 16  # items of one list, set or dict looked at


def _field_names(value: Any) -> list[str]:
    """The fields of a dataclass or pydantic model instance (configs nest in them); none for others."""
    if dataclasses.is_dataclass(value):
        return [f.name for f in dataclasses.fields(value)]
    model_fields = getattr(type(value), "model_fields", None)  # pydantic 2, read from the class
    return list(model_fields) if isinstance(model_fields, dict) else []


def behaviour_digest(obj: type | types.FunctionType) -> str:
    """Digest of what ``obj`` does: its bytecode and the data and user code it reaches.

    A class counts with its functions (a wrapped method by what it wraps: a
    scikit-learn transformer's ``transform``, an ``lru_cache``), its data
    attributes and its user base classes; a function with its default values;
    the function given (not the functions it reaches) also with its closure
    values; and every function of both, with the user functions and classes
    and the constants (``OFFSET``, ``helpers.FACTOR``) its code reads by global
    name. Values met on the way count by their data only (see
    ``hashing.code_by_name``), so the digest does not depend on which value was
    hashed first.
    """
    with hashing.code_by_name():
        parts: list[tuple[str, str, str]] = []
        seen: dict[int, Any] = {}  # id -> object, kept alive so ids stay unique during the walk
        pending: list[Any] = [obj]
        while pending:
            item = pending.pop()
            if id(item) in seen:
                continue
            seen[id(item)] = item
            if isinstance(item, type):
                parts.extend(_class_parts(item, pending))
            elif isinstance(item, types.FunctionType):
                parts.append(("function", item.__qualname__, _code_digest(item.__code__)))
                parts.extend(_default_parts(item))
                if item is obj:
                    parts.extend(("closure", f"{item.__qualname__}:{name}", _token(_cell(cell)))
                                 for name, cell in zip(item.__code__.co_freevars, item.__closure__ or ()))
                parts.extend(_reached(item, pending))
                if not is_library_function(item):
                    # A decorator of yours without functools.wraps: its wrapper holds the function.
                    pending.extend(held for held in closure_functions(item)
                                   if is_users(held) and not is_library_function(held))
                wrapped = _innermost(item)
                if wrapped is not item:
                    pending.append(wrapped)
        return hashing.hash_value(sorted(parts))


def _class_parts(cls: type, pending: list[Any]) -> list[tuple[str, str, str]]:
    # A metaclass may copy the standard library's functions into the class (Enum.__new__ and
    # _generate_next_value_ into every enum, namedtuple's _make): they count by name, as the
    # standard library does everywhere else, since their bytecode changes with Python's patch
    # release and split the digests of two machines.
    functions: list[types.FunctionType] = []
    others: list[types.FunctionType] = []
    for function in _class_functions(cls):
        (others if is_library_function(function) else functions).append(function)
    code = sorted((f.__qualname__, _code_digest(f.__code__)) for f in functions)
    code += sorted((f.__qualname__, f"library {f.__code__.co_qualname}") for f in others)
    parts = [("class", cls.__qualname__, hashing.hash_value(code))]
    machinery = _enum_machinery if issubclass(cls, enum.Enum) else None
    for name, value in sorted(vars(cls).items()):
        if name.startswith("__") and name.endswith("__"):
            continue
        if machinery is not None and machinery(name, value):
            continue
        wrapped = _innermost(value)
        if wrapped is not value and isinstance(wrapped, types.FunctionType):
            if not is_library_function(wrapped):  # Enum's _generate_next_value_, a staticmethod in 3.13
                pending.append(wrapped)  # a wrapped method: what it wraps is the user's code
        elif not isinstance(value, _CODE_ATTRIBUTES):
            parts.append(("attribute", f"{cls.__qualname__}.{name}", _token(value)))
            if machinery is None or not isinstance(value, cls):  # an enum's members are the class itself
                pending.extend(_code_in(value))  # a registry of classes (KINDS = {"a": Alpha}) by their code
    pending.extend(base for base in cls.__bases__ if is_users(base))
    # A method under a decorator of yours without functools.wraps (`@timed def run`) is held in its
    # wrapper's closure, which the walk follows for every function of yours. (A library's wrapper,
    # such as the one dataclass puts around __repr__, is not among `functions`.)
    pending.extend(functions)
    return parts


def _enum_machinery(name: str, value: Any) -> bool:
    """Whether an enum's class attribute is what ``enum`` keeps for itself, not the user's data.

    ``_member_map_``, ``_value2member_map_``, ``_use_args_`` and the like are
    derived from the members (which count, each by name and value), and which
    of them exist changes between Python releases. Enum reserves every
    ``_sunder_`` name; one the user defines as a function still counts as code.
    """
    sunder = len(name) > 2 and name[0] == name[-1] == "_" and name[1] != "_" and name[-2] != "_"
    return sunder and not isinstance(_innermost(value), (types.FunctionType, *_CODE_ATTRIBUTES))


# A slot's descriptor is neither code nor data (the instance's state holds the value), and a
# class that cloudpickle rebuilds by value in a worker has none: counting it split the digests.
_CODE_ATTRIBUTES = (
    types.FunctionType,
    staticmethod,
    classmethod,
    property,
    functools.cached_property,
    types.MemberDescriptorType,
)


def _default_parts(fn: types.FunctionType) -> list[tuple[str, str, str]]:
    parts = [("default", f"{fn.__qualname__}:{i}", _token(v)) for i, v in enumerate(fn.__defaults__ or ())]
    parts += [("default", f"{fn.__qualname__}:{k}", _token(v)) for k, v in sorted((fn.__kwdefaults__ or {}).items())]
    return parts


def _reached(fn: types.FunctionType, pending: list[Any]) -> list[tuple[str, str, str]]:
    """Queue the user functions and classes ``fn`` reads by global name; return the constants it reads."""
    constants: list[tuple[str, str, str]] = []
    for ref in function_info(fn).refs:
        if ref.root[0] != "global" or ref.root[1] not in fn.__globals__:
            continue
        value, name = fn.__globals__[ref.root[1]], ref.root[1]
        for attr in ref.attrs:
            if not isinstance(value, types.ModuleType) or not is_users(value):
                break
            value, name = getattr(value, attr, None), f"{name}.{attr}"  # helpers.clean, helpers.FACTOR
        if isinstance(value, (type, types.FunctionType)):
            if is_users(value):
                pending.append(value)
        elif isinstance(value, types.ModuleType):
            if is_users(value):
                # A module of yours used as a whole (`getattr(helpers, name)(x)`): any of its functions
                # and classes may run (those it imports from your other modules too), as a step's
                # fingerprint counts them.
                pending.extend(v for v in vars(value).values()
                               if isinstance(v, (type, types.FunctionType)) and is_users(v))
        elif not isinstance(value, (types.BuiltinFunctionType, logging.Logger)):
            constants.append(("constant", name, _token(value)))
            pending.extend(_code_in(value))
    # Closures of what the walk reaches are not followed: a decorator's wrapper (a dataclass's
    # generated __repr__) holds functions whose module depends on where the class was made.
    return constants


_PLAIN = frozenset({int, float, complex, str, bytes, bool, type(None)})


def _code_in(value: Any, depth: int = 0) -> list[Any]:
    """The user's functions and classes a constant holds (``HANDLERS = {Kind.A: h_a}``), a few levels deep.

    The constant's token names them only (``code_by_name``), but the code that
    reads it calls them: editing ``h_a`` must change the digest, as it changes
    the fingerprint of a step reading ``HANDLERS``. An instance counts by its class.
    """
    if isinstance(value, (dict, types.MappingProxyType)):  # a mappingproxy's pickle names its functions only
        items: list[Any] = [*value.keys(), *value.values()]
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = list(value)
    else:
        items = [value]
    found: list[Any] = []
    for item in items:
        if type(item) in _PLAIN:
            continue  # a large table of numbers or names holds no code: skipped cheaply
        inner = _innermost(item.func if isinstance(item, functools.partial) else item)
        if isinstance(inner, (type, types.FunctionType)):
            if is_users(inner):
                found.append(inner)
        elif isinstance(inner, (dict, types.MappingProxyType, list, tuple, set, frozenset)):
            if depth < 3 and inner is not value:
                found.extend(_code_in(inner, depth + 1))
        elif is_users(type(inner)):
            found.append(type(inner))
        elif is_users(held := hashing.ufunc_function(inner)):  # np.frompyfunc(square, 1, 1)
            found.append(held)
    return found


def _innermost(obj: Any) -> Any:
    """What a chain of ``functools.wraps`` wrappers wraps, or ``obj`` itself."""
    try:
        return inspect.unwrap(obj)
    except ValueError:  # a wrapper that wraps itself
        return obj


def _cell(cell: Any) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # a cell not yet filled in
        return None


def _token(value: Any) -> str:
    """A value's digest by its data, or its type's name when it has no hashable data."""
    try:
        return hashing.hash_value(value)
    except Exception:  # noqa: BLE001 - an object that cannot be pickled (a lock, a connection)
        return f"<{type(value).__qualname__}>"
