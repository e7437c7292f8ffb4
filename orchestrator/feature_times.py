"""Date and time features: their schema, the values a model takes, and the numbers the monitor compares.

A user's own pipeline may take a ``datetime64`` column as it is (a transformer of its own derives the
hour or the month). The training schema describes it as ``"kind": "datetime"`` with its dtype, the
range it was trained on and its time zone (``describe_time``); a request, a CSV batch or the request log
gives it as text, which ``as_times`` parses to that dtype, and the monitor compares it as a time, in
seconds since 1970 (``time_numbers``), with the numeric tests. Described as a category, every
training timestamp was listed, every new date was "not seen in training", and the monitor compared
timestamps as categories.

Parsing follows pandas (``pd.Timestamp``: ``2024-04-10 15:57``, ``2024-04-10T15:57:00Z``). A time
without an offset is a wall time of the column's zone; one with an offset is converted to it. A
column trained without a zone takes no offset: which local time it means is not known.

Plain functions over values and pandas Series: this module must not load models, read the store
or import pandas at module level (the server imports it).
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

KIND = "datetime"


def is_time(feature: dict[str, Any]) -> bool:
    """Whether a schema feature is a date and time (a version registered before this kind says category)."""
    return feature.get("kind") == KIND


def describe_time(name: str, col: pd.Series) -> dict[str, Any]:
    """The schema of a date and time column: its dtype, first and last times (ISO 8601), and its zone."""
    present = col.dropna()
    tz = getattr(col.dt, "tz", None)
    return {"name": name, "kind": KIND, "dtype": str(col.dtype),
            "min": present.min().isoformat() if len(present) else None,
            "max": present.max().isoformat() if len(present) else None,
            "tz": None if tz is None else str(tz)}


def time_example(feature: dict[str, Any]) -> str:
    """A time this feature takes, for messages: its first training time, or a fixed one."""
    return str(feature.get("min") or "2024-01-31T09:30:00")


def time_problem(value: Any, feature: dict[str, Any]) -> str | None:
    """Why ``value`` (from JSON) is no time of this feature, or None when it is one (``None`` is missing)."""
    if value is None:
        return None
    if not isinstance(value, str):
        return f"got {type(value).__name__}"
    try:
        _parse(value, feature.get("tz"))
    except _Zone as exc:
        return f"got {value[:40]!r}, {exc}"
    except ValueError:
        return f"got {value[:40]!r}"
    return None


def as_times(values: pd.Series, feature: dict[str, Any]) -> pd.Series:
    """``values`` as the feature's dtype: text parsed, times converted to its zone; NaT where none parses.

    A column already of that dtype is returned as it is.
    """
    import pandas as pd

    dtype = pd.api.types.pandas_dtype(feature["dtype"])
    if values.dtype == dtype:
        return values
    tz = feature.get("tz")
    if pd.api.types.is_datetime64_any_dtype(values):
        times = values
        aware = getattr(values.dt, "tz", None) is not None
        if tz is not None:
            times = times.dt.tz_convert(tz) if aware else times.dt.tz_localize(tz, ambiguous="NaT",
                                                                               nonexistent="NaT")
        elif aware:
            times = pd.Series(pd.NaT, index=values.index)  # a naive column takes no offset, as in a request
        return times.astype(dtype)
    parsed = {}
    for value in pd.unique(values.dropna()):  # each distinct text once: a batch repeats its dates
        try:
            parsed[value] = _parse(value, tz)
        except ValueError:
            parsed[value] = pd.NaT
    return pd.Series([parsed.get(v, pd.NaT) if not _missing(v) else pd.NaT for v in values],
                     index=values.index, dtype=dtype)


def time_numbers(values: pd.Series, feature: dict[str, Any]) -> pd.Series:
    """Seconds since 1970 (UTC) of each time, for the numeric drift tests; a value that is no time is kept as text.

    The text left is what ``drift`` counts as missing and names in its detail (``'31/31/2024'``);
    a missing value stays missing.
    """
    import pandas as pd

    times = as_times(values, feature)
    if getattr(times.dt, "tz", None) is not None:
        times = times.dt.tz_convert("UTC").dt.tz_localize(None)
    seconds = (times - pd.Timestamp("1970-01-01")) / pd.Timedelta(seconds=1)
    unparsed = times.isna().to_numpy() & values.notna().to_numpy()
    if not unparsed.any():
        return seconds.astype(float)
    out = seconds.astype(object)
    out[unparsed] = values[unparsed].astype(str)
    return out


class _Zone(ValueError):
    """A time read, but not one time of the column's zone: its message says why."""


def _parse(value: Any, tz: str | None) -> Any:
    """One value as a ``pd.Timestamp`` of zone ``tz``; ValueError when it is no time."""
    import pandas as pd

    if not isinstance(value, (str, datetime.datetime)):
        raise ValueError(f"neither text nor a time: {value!r}")
    try:
        stamp = pd.Timestamp(value.strip() if isinstance(value, str) else value)
    except (TypeError, OverflowError) as exc:
        raise ValueError(str(exc)) from None
    if stamp is pd.NaT:
        raise ValueError("blank")
    if tz is None:
        if stamp.tzinfo is not None:
            raise _Zone("with a time zone offset, which this column was trained without")
        return stamp
    if stamp.tzinfo is not None:
        return stamp.tz_convert(tz)
    try:
        return stamp.tz_localize(tz)
    except ValueError:
        raise _Zone(f"which a clock change in {tz} skips or repeats; give its offset") from None


def _missing(value: Any) -> bool:
    import pandas as pd

    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False
