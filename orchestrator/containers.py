"""Rebuilding a list, tuple or dict an argument held, with other items, as the same kind of container.

A step's argument may hold step outputs inside a container of the user's
(``Pair(a=raw, b=clean)``, a namedtuple; an ``OrderedDict``; a
``defaultdict``). The driver puts the outputs' values (or references to
them) in their places, and a worker loads the references: both rebuild the
container, and the step must get the kind it was given, not a plain tuple
or dict that has lost its fields or its default.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any


def like(template: list[Any] | tuple[Any, ...] | dict[Any, Any], items: Iterable[Any]) -> Any:
    """A container of ``template``'s type holding ``items`` (``(key, value)`` pairs for a dict).

    A subclass that cannot be rebuilt so (its constructor takes other
    arguments) comes back as the plain list, tuple or dict.
    """
    kind = type(template)
    if kind is list:
        return items if type(items) is list else list(items)
    if kind is tuple:
        return tuple(items)
    if kind is dict:
        return dict(items)
    items = list(items)
    try:
        if isinstance(template, tuple):
            make = getattr(kind, "_make", None)  # a namedtuple takes its fields one by one
            return make(items) if make is not None else kind(items)
        if isinstance(template, list):
            same = copy.copy(template)  # keeps what the instance holds besides its items
            same[:] = items
            return same
        mapping = copy.copy(template)  # a defaultdict keeps its default factory
        mapping.clear()
        mapping.update(items)
        return mapping
    except Exception:  # noqa: BLE001 - a container of the user's with rules of its own: the plain kind
        return tuple(items) if isinstance(template, tuple) else list(items) if isinstance(template, list) \
            else dict(items)
