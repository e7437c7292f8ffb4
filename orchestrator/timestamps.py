"""The one way ``--json`` documents write a moment: ISO 8601 with its UTC offset.

``2026-11-27T20:42:29.627+01:00`` is the local time a user reads beside the
tables, and names the instant too: without the offset, the same run read
from a machine (or a CI job) in another time zone showed another hour, and a
wrapper comparing runs of two hosts compared local clocks. Any ISO 8601
parser reads it (``datetime.fromisoformat``, ``pandas.to_datetime``, ``jq``'s
``fromdateiso8601`` after trimming the fraction).
"""

from __future__ import annotations

from datetime import datetime


def iso_time(ts: float | None) -> str | None:
    """``ts`` (seconds since the epoch) as local ISO 8601 time, milliseconds and UTC offset; None stays None."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="milliseconds")
