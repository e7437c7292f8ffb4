"""Which fields of a parameter changed, read from the text lineage recorded for each side.

A config object given to a step (a dataclass, a pydantic model, an attrs
class, a namedtuple, a dict of hyperparameters) prints longer than a reason
can repeat, so ``parameter `model_cfg` changed`` said nothing of the one field
the user edited. Each run records the value as it prints (``dag._shown``:
JSON for plain lists and dicts, else its repr, cut at 200 characters); this
module compares two such recordings field by field, ``n_estimators: 30 → 40``,
going into nested configs (``opt.lr: 0.1 → 0.2``).

Only the explanation reads this: keys never do, and nothing here may fail on
a recording it cannot read (a repr of another shape, one cut in its middle):
it then names no field, and the reason says what it said before.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

__all__ = ["changed_fields", "field_changes", "said_fields"]

_WIDTH = 40  # a field's old and new value are shown when each prints in this many characters
_MOST = 3  # fields named in one reason; the rest are counted
_CUT = 200  # dag._shown cuts a value's text to this many characters, "..." included
_CALL = re.compile(r"([A-Za-z_][\w.]*)\((.*)\)", re.DOTALL)
_CUT_CALL = re.compile(r"([A-Za-z_][\w.]*)\((.*)", re.DOTALL)  # its end is past the cut
_KEYWORD = re.compile(r"\s*([A-Za-z_]\w*)=(?!=)(.*)", re.DOTALL)
_OPEN, _CLOSE = "([{", ")]}"


class _Repr(str):
    """A field's text taken from a repr (``'forest'``), shown as it is rather than quoted again."""


_NOT_SET = _Repr("(not set)")  # a field one side does not print

# A value read as its fields: (type name or "dict", fields in order, cut) where the fields map a
# name to the field's value, as JSON-able data or as text.
Fields = tuple[str, dict[str, Any], bool]


def field_changes(old: Any, new: Any) -> str | None:
    """``n_estimators: 30 → 40, seed: 0 → 1``: the fields that differ between two recorded values.

    None when either is not a value of fields (a number, a list, a repr of
    another shape), when they are of different types, or when no complete
    field differs (the change is past the 200 characters recorded).
    """
    return said_fields(changed_fields(old, new))


def changed_fields(old: Any, new: Any) -> list[str]:
    """Each field that differs between two values, ``n_estimators: 30 → 40`` (or ``opt changed`` when long).

    All of them, in the order of ``old``'s fields then ``new``'s; empty where ``field_changes`` is None.
    """
    return _changes(_fields(old), _fields(new), "")


def said_fields(changes: list[str]) -> str | None:
    """The first few of ``changes`` joined for a reason, the rest counted (``and 2 more fields``)."""
    if not changes:
        return None
    named = changes[:_MOST]
    more = len(changes) - len(named)
    return ", ".join(named) + (f" and {more} more field{'s' * (more != 1)}" if more else "")


def _changes(old: Fields | None, new: Fields | None, prefix: str) -> list[str]:
    if old is None or new is None or old[0] != new[0]:
        return []
    (_, before, old_cut), (_, after, new_cut) = old, new
    names = list(before) + [name for name in after if name not in before]
    if old_cut or new_cut:
        # A field missing on a side whose text was cut may be past the cut: compare those both show.
        names = [name for name in names if name in before and name in after]
    out = []
    for name in names:
        was, now = before.get(name, _NOT_SET), after.get(name, _NOT_SET)
        if _text(was) == _text(now):
            continue
        label = f"{prefix}{name}"
        inner = _changes(_fields(was, nested=True), _fields(now, nested=True), f"{label}.")
        if inner:
            out.extend(inner)
        elif len(_text(was)) <= _WIDTH and len(_text(now)) <= _WIDTH:
            out.append(f"{label}: {_text(was)} → {_text(now)}")
        else:
            out.append(f"{label} changed")
    return out


def _text(value: Any) -> str:
    """A field's value as the reason shows it: text from a repr as it is, data as JSON."""
    if isinstance(value, _Repr):
        return str(value)
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def _fields(value: Any, nested: bool = False) -> Fields | None:
    """The fields of a recorded value: a JSON dict's keys, or the arguments of a repr ``Name(a=1, b=2)``.

    ``nested``: a field's value, whose text is read as a repr only if it came from one (a string
    in a JSON dict is text the user gave, not a repr).
    """
    if isinstance(value, dict):
        return "dict", {str(k): v for k, v in value.items()}, False
    if not isinstance(value, str) or (nested and not isinstance(value, _Repr)):
        return None
    cut = len(value) >= _CUT and value.endswith("...")
    text = value[:-3] if cut else value.strip()
    if text.startswith("{"):
        return _dict_repr(text, cut)
    match = _CUT_CALL.match(text) if cut else _CALL.fullmatch(text)
    if match is None:
        return None
    items = _split(match.group(2), cut)
    if items is None:
        return None
    fields: dict[str, Any] = {}
    for item in items:
        keyword = _KEYWORD.fullmatch(item)
        if keyword is None:
            return None  # `PosixPath('a.csv')`, `Point(1, 2)`: a value, not fields by name
        fields[keyword.group(1)] = _Repr(keyword.group(2).strip())
    return match.group(1), fields, cut


def _dict_repr(text: str, cut: bool) -> Fields | None:
    """``{'lr': 0.1, 'layers': [64, 32]}`` (a dict inside a repr) by its keys."""
    body = text[1:] if cut else text[1:-1] if text.endswith("}") else None
    items = None if body is None else _split(body, cut)
    if items is None:
        return None
    fields: dict[str, Any] = {}
    for item in items:
        parts = _split_once(item)
        if parts is None:
            return None
        key, field = parts
        try:
            name = ast.literal_eval(key)
        except (ValueError, SyntaxError):
            name = key
        fields[str(name)] = _Repr(field.strip())
    return "dict", fields, cut


def _split_once(item: str) -> tuple[str, str] | None:
    """A dict item's key and value, split at its first top-level ``: ``."""
    pieces = _split(item, False, ":")
    if pieces is None or len(pieces) < 2:
        return None
    key = pieces[0]
    return key.strip(), item[len(key) + 1:]


def _split(body: str, cut: bool, separator: str = ",") -> list[str] | None:
    """``body`` split at its top-level separators (outside quotes and brackets), or None if unbalanced.

    A body cut short loses its last, unfinished item.
    """
    items: list[str] = []
    depth, quote, start, index = 0, "", 0, 0
    while index < len(body):
        char = body[index]
        if quote:
            if char == "\\":
                index += 1
            elif char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char in _OPEN:
            depth += 1
        elif char in _CLOSE:
            depth -= 1
            if depth < 0:
                return None
        elif char == separator and depth == 0:
            items.append(body[start:index])
            start = index + 1
        index += 1
    if not cut:
        if quote or depth:
            return None
        items.append(body[start:])
    return [item for item in items if item.strip()]
