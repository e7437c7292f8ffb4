"""What a step that is a method bound to an object can reach of its class: a narrower fingerprint.

``step(trainer.fit)`` runs ``fit`` and whatever ``fit`` reaches through
``self``: ``self.helper(...)``, ``self.THRESHOLD``, a property, and so on,
transitively. Editing another method of the class (``plot``, ``__repr__``)
changes nothing the step does, so it should not re-run it. This module
lists the class members a bound method reaches, by reading ``self.NAME`` in
its code (``code_analysis.first_argument_attributes``) and looking each name
up along the class's MRO as Python would; and the instance's own data.

It gives up (returns None, and the whole class counts as before) whenever
what the method reaches cannot be read from its code: ``self`` passed to a
function or used other than by attribute (``getattr(self, name)``,
``type(self)``), a zero-argument ``super()``, a class with custom attribute
access (``__getattr__``...) or its own pickling, a descriptor of unknown
behaviour, a base class that is not the user's (a library's method may call
back into the user's), or a user metaclass. A missed member would leave a
step cached on stale code; an extra one only costs a re-run.

This module decides which members; ``fingerprint`` digests them.
"""

from __future__ import annotations

import abc
import functools
import inspect
import types
import typing
from dataclasses import dataclass
from typing import Any, TypeGuard

from orchestrator.code_analysis import first_argument_attributes
from orchestrator.user_code import object_kind

# Bases that add no behaviour to an instance's attribute lookup or its methods.
_NEUTRAL_BASES: tuple[type, ...] = (object, abc.ABC, typing.Generic)  # type: ignore[arg-type]
_NEUTRAL_METACLASSES: tuple[type, ...] = (type, abc.ABCMeta)
# Hooks that make `self.x` run code other than what `x` names, or that make the instance's data
# something other than its __dict__.
_CUSTOM_HOOKS = frozenset({
    "__getattr__", "__getattribute__", "__setattr__", "__delattr__", "__slots__",
    "__reduce__", "__reduce_ex__", "__getstate__", "__getnewargs__", "__getnewargs_ex__",
})


@dataclass(frozen=True)
class Member:
    """A class attribute a bound method reaches: ``name`` as found on ``owner`` (a class of the MRO)."""

    owner: type
    name: str
    value: Any  # what vars(owner)[name] holds: a function, a descriptor, data


@dataclass(frozen=True)
class Reach:
    """What a method bound to ``obj`` can reach: class members, and the object's own data."""

    members: tuple[Member, ...]
    state: dict[str, Any] | None  # vars(obj); None when bound to a class (a classmethod)


def bound_reach(obj: Any, fn: types.FunctionType) -> Reach | None:
    """The members of ``obj``'s class that ``fn`` bound to ``obj`` reaches, or None if it cannot tell."""
    cls = obj if isinstance(obj, type) else type(obj)
    if not _plain_class(cls):
        return None
    state = None
    if not isinstance(obj, type):
        attributes = getattr(obj, "__dict__", None)
        if type(attributes) is not dict:
            return None
        state = dict(attributes)
    members: dict[str, Member] = {}
    pending: list[types.FunctionType] = [fn]
    seen: set[int] = set()
    while pending:
        function = pending.pop()
        if id(function) in seen:
            continue
        seen.add(id(function))
        names = first_argument_attributes(function)
        if names is None:
            return None
        for name in sorted(names - members.keys()):
            member = _lookup(cls, name)
            if member is None:
                continue  # only on the instance (its data counts), or nowhere yet
            methods = _methods_of(member.value)
            if methods is None:
                return None
            members[name] = member
            pending.extend(methods)
    return Reach(tuple(members[name] for name in sorted(members)), state)


def _plain_class(cls: type) -> bool:
    """A class whose attribute lookup and data are what its MRO's ``vars`` say: user classes only."""
    if type(cls) not in _NEUTRAL_METACLASSES:
        return False
    for klass in cls.__mro__:
        if klass in _NEUTRAL_BASES:
            continue
        if object_kind(klass)[0] != "user" or (_CUSTOM_HOOKS & vars(klass).keys()) - _frozen_guards(klass):
            return False
    return True


def _frozen_guards(klass: type) -> set[str]:
    """The ``__setattr__``/``__delattr__`` that ``@dataclass(frozen=True)`` generates: they only refuse writes.

    Reading an attribute never runs them, and a method that writes one fails
    whatever else the class holds, so they hide nothing a method reaches.
    """
    params = vars(klass).get("__dataclass_params__")
    if not getattr(params, "frozen", False):
        return set()
    return {name for name in ("__setattr__", "__delattr__")
            if getattr(getattr(vars(klass).get(name), "__code__", None), "co_filename", None) == "<string>"}


def _lookup(cls: type, name: str) -> Member | None:
    for klass in cls.__mro__:
        if klass not in _NEUTRAL_BASES and name in vars(klass):
            return Member(klass, name, vars(klass)[name])
    return None


def _methods_of(value: Any) -> list[types.FunctionType] | None:
    """The user functions a class attribute runs with the instance (or class) as first argument.

    ``[]`` for data and for what gets no instance (a static method, a nested
    class: the fingerprint follows those as code); None for a descriptor or a
    function this module cannot read, so the whole class counts.
    """
    if isinstance(value, (staticmethod, type)):
        return []
    if isinstance(value, classmethod):
        value = value.__func__
    if isinstance(value, property):
        accessors = [f for f in (value.fget, value.fset, value.fdel) if f is not None]
        functions = [f for f in accessors if _users_function(f)]
        return functions if len(functions) == len(accessors) else None
    if isinstance(value, functools.cached_property):
        return [value.func] if _users_function(value.func) else None
    if isinstance(value, types.FunctionType):
        return [value] if _users_function(value) else None
    if hasattr(type(value), "__get__"):
        # A method wrapped by a decorator object (functools.lru_cache): the function it wraps
        # receives the instance. Any other descriptor decides for itself what it passes.
        try:
            inner = inspect.unwrap(value)
        except ValueError:
            return None
        return [inner] if inner is not value and _users_function(inner) else None
    return []  # data: hashed by value


def _users_function(fn: Any) -> TypeGuard[types.FunctionType]:
    return isinstance(fn, types.FunctionType) and object_kind(fn)[0] == "user"
