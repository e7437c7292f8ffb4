"""The text of a syntax tree, the same under every supported Python.

Code fingerprints hash a normalized AST as text. ``ast.dump`` changes its
output between Python releases for the same source: 3.12 gives every
function and class a ``type_params`` field, 3.13 leaves empty lists out, and
early 3.12 releases (3.12.1) put an empty string constant after a replacement
field inside an f-string's format spec (``f"{x:<{width}}"``). Hashed as it is, the same
step had another key on each Python, so two machines (or one after a Python
upgrade) shared no cached result.

``dump`` writes the tree as Python 3.11's ``ast.dump(node,
annotate_fields=True, include_attributes=False)`` does, byte for byte, so
keys made under 3.11 stay as they were, and leaves out what newer releases
add while it holds nothing. Syntax that only a newer Python has (``type X =
...``, a generic ``def f[T]``) is written with its new fields: no older
Python could have parsed it.

This module must not hash anything or read files; it only turns a tree into text.
"""

from __future__ import annotations

import ast
from typing import Any

# Fields added after Python 3.11, left out while empty so that a tree reads as 3.11 wrote it.
_NEWER_FIELDS = frozenset({"type_params"})


def dump(node: ast.AST) -> str:
    """The tree as Python 3.11's ``ast.dump`` writes it, whatever Python parsed it."""
    return _format(node)


def _format(value: Any) -> str:
    if isinstance(value, ast.AST):
        kind = type(value)
        fields = []
        for name in value._fields:
            try:
                item = getattr(value, name)
            except AttributeError:
                continue
            if item is None and getattr(kind, name, ...) is None:
                continue  # an optional field not set: 3.11 leaves it out
            if name in _NEWER_FIELDS and item == []:
                continue
            if name == "values" and kind is ast.JoinedStr:
                item = [part for part in item if not _empty_text(part)]
            fields.append(f"{name}={_format(item)}")
        return f"{kind.__name__}({', '.join(fields)})"
    if isinstance(value, list):
        return f"[{', '.join(_format(item) for item in value)}]"
    return repr(value)


def _empty_text(part: ast.AST) -> bool:
    """An empty string constant among an f-string's parts: only early 3.12 releases write one."""
    return isinstance(part, ast.Constant) and part.value == ""
