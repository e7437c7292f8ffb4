"""Which values come back from JSON exactly: equal, and of equal types.

The json materializer stores only such values, and the table materializer
keeps labels and names in JSON metadata only when they pass this check;
everything else is left to a format that restores it (pickle at worst).
"""

from __future__ import annotations

import math

# Python refuses to turn ints of more than 4300 digits into text by default.
_MAX_JSON_INT_BITS = 14_000


def is_json_exact(value: object) -> bool:
    """Return True if ``json.loads(json.dumps(value))`` gives back an equal value of equal types."""
    kind = type(value)
    if value is None or kind is bool or kind is str:
        return True
    if kind is int:
        return value.bit_length() < _MAX_JSON_INT_BITS  # type: ignore[attr-defined]
    if kind is float:
        return math.isfinite(value)  # type: ignore[arg-type]
    if kind is list:
        return all(is_json_exact(item) for item in value)  # type: ignore[attr-defined]
    if kind is dict:
        return all(
            type(key) is str and is_json_exact(item)
            for key, item in value.items()  # type: ignore[attr-defined]
        )
    return False


def strict_json(value: object) -> object:
    """``value`` with every NaN and ±inf float (in dicts, lists and tuples) replaced by None.

    ``json.dumps`` writes them as ``NaN``/``Infinity``, which no strict JSON reader takes (``jq``, a
    browser, an HTTP client), and a server refusing them answers 500. A metric that could not be
    measured reads best as ``null``.
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: strict_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(item) for item in value]
    return value
