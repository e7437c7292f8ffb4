"""Where a name a module imported comes from, to name a constant by the module that defines it.

A constant (``MIN_AGE = 18`` in ``config.py``) read by a helper of
``features.py`` through ``from .config import MIN_AGE`` is a value with no
module of its own: a reason called it ``features.MIN_AGE``, and a user who
edited ``config.py`` looked for it in ``features.py``. The ``from ... import``
statements of the reading module say where it came from; this module reads
them (once per module, from its source) and follows them through the user's
modules to the one whose attribute it is.

Explanations only: a key never depends on what this finds, and a source that
cannot be read, or no longer says what the running module holds, leaves the
name where it was read.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import sys
import types

from orchestrator.user_code import module_kind

__all__ = ["defined_in"]

_MISSING = object()
_HOPS = 8  # re-exports followed at most (a package's __init__.py, then its module, ...)
# id(module) -> (the module, kept so the id stays its own; name -> (module it imports from, name there))
_IMPORTS: dict[int, tuple[types.ModuleType, dict[str, tuple[str, str]]]] = {}


def defined_in(module_name: str, name: str) -> tuple[str, str]:
    """The module and name that ``name`` in module ``module_name`` was imported from, if any.

    Only the user's modules are followed (a constant from an installed
    package stays named where the user's code read it). The value must be
    the very object both modules hold, or the import line is not what made it
    (a name rebound since).
    """
    for _ in range(_HOPS):
        module = sys.modules.get(module_name)
        if module is None:
            break
        source = _imports(module).get(name)
        if source is None:
            break
        origin = sys.modules.get(source[0])
        if origin is None or module_kind(origin) != "user":
            break
        if getattr(origin, source[1], _MISSING) is not getattr(module, name, _MISSING):
            break
        module_name, name = source
    return module_name, name


def _imports(module: types.ModuleType) -> dict[str, tuple[str, str]]:
    cached = _IMPORTS.get(id(module))
    if cached is not None and cached[0] is module:
        return cached[1]
    found: dict[str, tuple[str, str]] = {}
    try:
        tree = ast.parse(inspect.getsource(module))
    except (OSError, TypeError, SyntaxError, ValueError):
        tree = None
    package = getattr(module, "__package__", None) or module.__name__.rpartition(".")[0]
    for statement in _top_level(tree.body if tree is not None else []):
        if isinstance(statement, ast.ImportFrom):
            try:
                source = importlib.util.resolve_name("." * statement.level + (statement.module or ""), package) \
                    if statement.level else statement.module or ""
            except (ImportError, ValueError):
                continue
            for alias in statement.names:
                if alias.name != "*":
                    found[alias.asname or alias.name] = (source, alias.name)
    _IMPORTS[id(module)] = (module, found)
    return found


def _top_level(body: list[ast.stmt]) -> list[ast.stmt]:
    """A module's statements, with those under a top-level ``if`` or ``try`` (an optional import)."""
    out: list[ast.stmt] = []
    for statement in body:
        out.append(statement)
        if isinstance(statement, ast.If):
            out.extend(_top_level(statement.body + statement.orelse))
        elif isinstance(statement, ast.Try):
            out.extend(_top_level(statement.body + statement.orelse + statement.finalbody))
            for handler in statement.handlers:
                out.extend(_top_level(handler.body))
    return out
