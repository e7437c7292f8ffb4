"""The shape of a pipeline's return value as ``runs.result`` keeps it: JSON that tuples and keys survive.

Plain JSON (the ``outputs`` column) turns a tuple into a list and an int key
into text, so a run rebuilt from it would hand back another shape than the
live run did. Here a tuple is ``{"tuple": [...]}``, a list ``{"list": [...]}``,
a dict ``{"dict": [[key, value], ...]}`` (a tuple key ``{"tuple": [...]}``,
another object ``{"text": str(key)}``) and one step output
``{"step", "output", "digest"}``. Knows nothing of runs or steps: the caller
says what a leaf is, so the database checks (``orch doctor``) use it too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Leaf = tuple[str, str, str]  # (node, output name, digest)


def encode(template: Any, leaf_of: Callable[[Any], Leaf | None]) -> Any:
    """``template`` as JSON; ``leaf_of`` gives (node, output, digest) for a step output, else None."""
    leaf = leaf_of(template)
    if leaf is not None:
        node, name, digest = leaf
        return {"step": node, "output": name, "digest": digest}
    if isinstance(template, tuple):
        return {"tuple": [encode(v, leaf_of) for v in template]}
    if isinstance(template, list):
        return {"list": [encode(v, leaf_of) for v in template]}
    if isinstance(template, dict):
        return {"dict": [[_encode_key(k), encode(v, leaf_of)] for k, v in template.items()]}
    return None  # a pipeline's result holds only step outputs and containers of them (or is None)


def record(template: Any, leaf_of: Callable[[Any], Leaf | None]) -> dict[str, Any]:
    """The column's value: ``{"value": encode(...)}`` (an object, whatever the pipeline returned)."""
    return {"value": encode(template, leaf_of)}


def decode_record(column: Any, make_leaf: Callable[[str, str, str], Any]) -> Any:
    """The value ``record`` wrote (the column's JSON, decoded); see ``decode``.

    Raises:
        ValueError: not what ``record`` writes.
    """
    if not isinstance(column, dict) or set(column) != {"value"}:
        raise ValueError('not an object {"value": ...}')
    return decode(column["value"], make_leaf)


def decode(doc: Any, make_leaf: Callable[[str, str, str], Any]) -> Any:
    """The value ``encode`` wrote, each step output made by ``make_leaf(node, output, digest)``.

    Raises:
        ValueError: ``doc`` is not what ``encode`` writes (a damaged or hand-edited value).
    """
    try:
        return _decode(doc, make_leaf)
    except (TypeError, KeyError, RecursionError) as exc:
        raise ValueError(f"{type(exc).__name__}: {exc}") from None


def _decode(value: Any, make_leaf: Callable[[str, str, str], Any]) -> Any:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError(f"{type(value).__name__} where an object belongs")
    if set(value) == {"step", "output", "digest"}:
        if not all(isinstance(v, str) for v in value.values()):
            raise ValueError("a step output that is not three strings")
        return make_leaf(value["step"], value["output"], value["digest"])
    if len(value) == 1:
        kind, items = next(iter(value.items()))
        if kind in ("tuple", "list", "dict") and isinstance(items, list):
            if kind == "tuple":
                return tuple(_decode(v, make_leaf) for v in items)
            if kind == "list":
                return [_decode(v, make_leaf) for v in items]
            if not all(isinstance(pair, list) and len(pair) == 2 for pair in items):
                raise ValueError("a dict entry that is not a [key, value] pair")
            return {_decode_key(k): _decode(v, make_leaf) for k, v in items}
    raise ValueError(f"unexpected object with keys {sorted(value)[:3]}")


def _encode_key(key: Any) -> Any:
    if key is None or isinstance(key, (str, int, float, bool)):
        return key
    if isinstance(key, tuple):
        return {"tuple": [_encode_key(k) for k in key]}
    return {"text": str(key)}  # an Enum or another object: kept as its text


def _decode_key(key: Any) -> Any:
    if isinstance(key, dict) and set(key) == {"tuple"} and isinstance(key["tuple"], list):
        return tuple(_decode_key(k) for k in key["tuple"])
    if isinstance(key, dict) and set(key) == {"text"}:
        return str(key["text"])
    if key is None or isinstance(key, (str, int, float, bool)):
        return key
    raise ValueError(f"a dict key that is {type(key).__name__}")
