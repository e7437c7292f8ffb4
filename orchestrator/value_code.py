"""The code behind a value: what an instance of the user's class, or the user's function, does.

An object pickled by reference (its class named, its code left behind) looks
the same to ``hashing`` before and after the user edits that class, so early
cutoff would keep the steps that use it cached on stale behaviour. ``hashing``
therefore mixes ``behaviour_digest`` into the digest of such values.

Unlike a step's fingerprint (``fingerprint``), which reads normalized source,
this digest reads bytecode only, and decides whose code is the user's from
the object alone: it must come out the same in the driver and in a worker
that received the class by value, without its source file or its module. It
covers the class's own functions, its user base classes, and the user
functions and classes their code reaches by global name (``helpers.clean``
included); installed
packages and the standard library count for nothing.

This module must not import numpy, pandas or pyarrow, and must not hash
values other than code.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from orchestrator import hashing
from orchestrator.code_analysis import _class_functions, _code_digest, function_info
from orchestrator.user_code import module_kind

__all__ = ["behaviour_digest", "is_users"]


def is_users(obj: Any) -> bool:
    """Whether a class or function is the user's code, judged the same in a driver and a worker.

    A worker that received the user's code by value has no module of that
    name loaded: an unloaded module counts as the user's. Installed packages
    and the standard library are always loaded where their objects exist.
    """
    name = getattr(obj, "__module__", None)
    if not isinstance(name, str) or name in ("builtins", "orchestrator") or name.startswith("orchestrator."):
        return False
    if name == "__main__":
        return True
    module = sys.modules.get(name)
    return module is None or module_kind(module) == "user"


def behaviour_digest(obj: type | types.FunctionType) -> str:
    """Digest of the bytecode of ``obj`` and of the user code it reaches (see the module docstring)."""
    parts: list[tuple[str, str, str]] = []
    seen: dict[int, Any] = {}  # id -> object, kept alive so ids stay unique during the walk
    pending: list[Any] = [obj]
    while pending:
        item = pending.pop()
        if id(item) in seen:
            continue
        seen[id(item)] = item
        if isinstance(item, type):
            functions = _class_functions(item)
            code = sorted((f.__qualname__, _code_digest(f.__code__)) for f in functions)
            parts.append(("class", item.__qualname__, hashing.hash_value(code)))
            pending.extend(base for base in item.__bases__ if is_users(base))
            pending.extend(functions)
        elif isinstance(item, types.FunctionType):
            parts.append(("function", item.__qualname__, _code_digest(item.__code__)))
            pending.extend(_reached(item))
    return hashing.hash_value(sorted(parts))


def _reached(fn: types.FunctionType) -> list[Any]:
    """The user functions and classes ``fn``'s code reads by global name (also in user modules)."""
    found: list[Any] = []
    for ref in function_info(fn).refs:
        if ref.root[0] != "global":
            continue
        value = fn.__globals__.get(ref.root[1])
        for attr in ref.attrs:
            if not isinstance(value, types.ModuleType):
                break
            value = getattr(value, attr, None)  # helpers.clean: follow into user modules
        found.append(value)
    # Closures are not followed: what a decorator wraps (a dataclass's generated __repr__) has a
    # module, and so an owner, that depends on where the class was made, not on its code.
    return [v for v in found if isinstance(v, (type, types.FunctionType)) and is_users(v)]
