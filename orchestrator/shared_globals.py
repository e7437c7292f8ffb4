"""Warnings for a step that changes a module-level value which another step of the pipeline reads.

``setup`` sets ``CONFIG["scale"]`` and ``use`` reads it: run one after the
other in one process, ``use`` sees the change; on a process pool or Dask each
task gets its own copy of the module's globals, as imported; and a cached
``setup`` does not run at all. Meanwhile ``use``'s key counts ``CONFIG`` as it
was when the pipeline was built, so one key stands for results computed with
either value, depending on what was cached and where it ran. The fix is to
pass the value as an output; ``shared_global_warnings`` says so when the
pipeline is built, once per run: one line per value, naming the first step
that changes it and the first that reads it (a factory's thousand writers of
one log are one line).

What the code does comes from its bytecode (``code_analysis``): the step's
own function and the functions of the user's that its fingerprint walked
(its helpers, as its key counts them). A global that a step both changes and reads is its own memo
(``_CACHE[x] = x * x`` in ``square``, read only by it; a lazy ``global
_MODEL``), which ``docs/concepts.md`` allows: a step that reads such a memo
and changes it too is not warned of, only one that reads what another step
changes and changes nothing of it itself. This module reads a built DAG; it
changes no key, runs no user code and imports nothing of the user's.
"""

from __future__ import annotations

import builtins
import os
import types
from collections.abc import MutableSet
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orchestrator.code_analysis import Change, function_info, global_changes
from orchestrator.user_code import is_user_module

if TYPE_CHECKING:
    from orchestrator.dag import DAG
    from orchestrator.fingerprint import CodeFingerprint
    from orchestrator.step import Step

_MISSING = object()
# Values no code changes in place, and objects that are code rather than data: never a shared value.
_NOT_DATA = (types.ModuleType, type, types.FunctionType, types.BuiltinFunctionType, types.MethodType,
             int, float, complex, str, bytes, bool, type(None))

# A place a value lives: ("name", id of a module's globals, name) for what a name is bound to, or
# ("value", id of the object) for what the object holds, whichever names it goes by.
_Place = tuple[Any, ...]


@dataclass
class _Uses:
    """The module-level values one step's code changes and reads."""

    changes: dict[_Place, tuple[str, str]] = field(default_factory=dict)  # place -> (shown as, in which function)
    changed: set[_Place] = field(default_factory=set)  # every place its changes touch, by name and by value
    reads: set[_Place] = field(default_factory=set)


def shared_global_warnings(dag: DAG) -> list[str]:
    """One line per module-level value a step changes and another step of ``dag`` reads without changing it.

    A warning only: code this reading of bytecode does not follow (an opcode of another Python)
    gives none, rather than stopping a pipeline that may well be right.
    """
    try:
        return _warnings(dag)
    except (ValueError, TypeError, IndexError, AttributeError, KeyError):
        return []


def _warnings(dag: DAG) -> list[str]:
    steps = {id(node.step): (node.step, node.code) for node in dag.nodes.values()}
    if len(steps) < 2:
        return []
    uses = [(step, _uses_of(code)) for step, code in steps.values()]
    # By place, so that thousands of steps (a factory's) cost one pass, not one per pair of steps.
    readers: dict[_Place, list[Step]] = {}
    for step, used in uses:
        for place in used.reads - used.changed:
            readers.setdefault(place, []).append(step)
    # One line per value, however many steps change it (a map's items, a factory's steps).
    pairs: dict[_Place, tuple[str, str, list[str], list[str]]] = {}
    for writer, written in uses:
        for place, (shown, where) in written.changes.items():
            names = [step.name for step in readers.get(place, ()) if step is not writer]
            if names:
                pairs.setdefault(place, (shown, where, [], names))[2].append(writer.name)
    return [_message(writers, shown, where, names) for shown, where, writers, names in pairs.values()]


def _message(writers: list[str], shown: str, where: str, readers: list[str]) -> str:
    writer, reader = writers[0], readers[0]
    return (f"step '{writer}'{_others(writers)} changes {shown}{where}, which step '{reader}' reads"
            f"{_others(readers)}: on a process pool or Dask '{reader}' sees the module as it was imported, and "
            f"when '{writer}' is cached it does not run at all, so '{reader}' may compute with either value. "
            f"Return the value from '{writer}' and pass it to '{reader}' instead.")


def _others(names: list[str]) -> str:
    """`` (and 2 other steps)`` after the first of ``names``; "" for one."""
    more = len(names) - 1
    return f" (and {more} other step{'s' if more > 1 else ''})" if more else ""


def _uses_of(code: CodeFingerprint) -> _Uses:
    """What the functions a step's fingerprint walked change and read, the step's own function first."""
    uses = _Uses()
    root = code.functions[0] if code.functions else None
    for fn in code.functions:
        scope = fn.__globals__
        for change in global_changes(fn.__code__):
            found = _changed_place(scope, change)
            if found is None:
                continue
            place, names, shown = found
            uses.changed.update(names)
            if place not in uses.changes:
                uses.changes[place] = (shown, "" if fn is root else f" in `{_function_shown(fn, root)}`")
        for ref in function_info(fn).refs:
            if ref.root[0] == "global":
                uses.reads.update(_read_places(scope, ref.root[1], ref.attrs))
    return uses


def _changed_place(scope: dict[str, Any], change: Change) -> tuple[_Place, set[_Place], str] | None:
    """Where ``change`` lands (the place it changes, every place naming it, how to show it), or None
    when it is no module-level value of the user's: a library's setting, a class, a function."""
    place: _Place
    if change.rebinds:
        place = ("name", id(scope), change.name)
        return place, {place}, _shown(scope, change.name)
    found = _resolve(scope, change.name, change.attrs)
    if found is None:
        return None
    owner, name, held, rest = found
    if isinstance(held, types.ModuleType):
        if rest or not change.stored or not is_user_module(held):
            return None
        place = ("name", id(vars(held)), change.stored)  # `config.SCALE = 3`: rebinds a name of that module
        return place, {place}, _shown(vars(held), change.stored)
    if isinstance(held, _NOT_DATA):
        return None
    if change.method == "add" and not rest and not isinstance(held, MutableSet):
        return None  # a frame's or an array's add() makes a new object
    place = ("value", id(held))
    return place, {place, ("name", id(owner), name)}, _shown(owner, name)


def _read_places(scope: dict[str, Any], name: str, attrs: tuple[str, ...]) -> set[_Place]:
    """The places a read of ``name.attrs`` reaches: the name it ends at, and the value it holds."""
    found = _resolve(scope, name, attrs)
    if found is None:
        # A builtin, or a global not bound yet (``global _MODEL`` in a helper that binds it first).
        return set() if hasattr(builtins, name) or name.startswith("__") else {("name", id(scope), name)}
    owner, last, held, _ = found
    places: set[_Place] = {("name", id(owner), last)}
    if not isinstance(held, _NOT_DATA):
        places.add(("value", id(held)))
    return places


def _resolve(scope: dict[str, Any], name: str, attrs: tuple[str, ...]) -> tuple[dict[str, Any], str, Any, tuple[str, ...]] | None:
    """(the globals that bind it, its name there, the object, the attributes left to read in it) for a
    global read as ``name.attrs``: attributes of a module of the user's are its globals; None if unbound."""
    if name.startswith("__") and name.endswith("__"):
        return None
    held = scope.get(name, _MISSING)
    if held is _MISSING:
        return None
    owner = scope
    for index, attr in enumerate(attrs):
        if not (isinstance(held, types.ModuleType) and is_user_module(held)):
            return owner, name, held, attrs[index:]
        owner, name = vars(held), attr
        held = owner.get(attr, _MISSING)
        if held is _MISSING:
            return None
    return owner, name, held, ()


def _shown(scope: dict[str, Any], name: str) -> str:
    """``CONFIG (g.py)``: the name, and the file of the module that binds it (its name without one)."""
    file = scope.get("__file__")
    return f"{name} ({os.path.basename(file) if isinstance(file, str) else scope.get('__name__', '?')})"


def _function_shown(fn: types.FunctionType, root: types.FunctionType | None) -> str:
    """A helper as the step's module names it: ``configure``, or ``helpers.configure`` from another module."""
    module = fn.__module__ or ""
    if root is not None and module == root.__module__:
        return fn.__qualname__
    return f"{module.rpartition('.')[2]}.{fn.__qualname__}"
