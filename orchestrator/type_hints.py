"""The resolved annotations of a function, each one on its own.

``typing.get_type_hints`` resolves all of a function's annotations or none.
Under ``from __future__ import annotations`` a parameter annotated with a name
imported only for type checkers (``if TYPE_CHECKING: import pandas as pd``)
cannot be resolved, and with it every other parameter lost its type: ``-p
alpha=0.5`` was refused as not an int (its default's type), and a
``list[Path]`` argument given as text was not taken for file inputs.
"""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any


def resolved_hints(fn: Any) -> dict[str, Any]:
    """``{name: annotation}`` of ``fn``, each resolved where it can be, else left as the text it is."""
    try:
        return typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - resolved one by one below
        pass
    scope = getattr(inspect.unwrap(fn), "__globals__", None)
    hints: dict[str, Any] = {}
    for name, annotation in (getattr(fn, "__annotations__", None) or {}).items():
        try:
            hints.update(typing.get_type_hints(types.SimpleNamespace(__annotations__={name: annotation}),
                                               globalns=scope))
        except Exception:  # noqa: BLE001 - a name only a type checker (or the function's own scope) knows
            hints[name] = annotation
    return hints
