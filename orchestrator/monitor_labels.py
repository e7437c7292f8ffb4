"""Labels that arrive later: the served requests of a version joined to a file of ``(key, label)``.

A served model answers now; whether the customer churned is known weeks later, as a file of ids
and outcomes. ``orch serve`` logs each request's value of the version's key column
(``ModelCandidate(key=...)``), so ``join_labels`` can give each logged request its label, and
``orch monitor NAME --labels FILE`` measures the live performance on the joined rows with the
same machinery a labelled ``--batch`` uses (``monitor.compare``).

Keys are compared as text, a whole float as its integer (``7.0`` is ``7``): a CSV column with a
blank reads as floats, and a key posted as a number and kept in Parquet as text are the same id.
When a key has several labels, the last one in the file counts (a corrected outcome appended).

This module must not import pandas at import time, and must not decide anything about drift.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orchestrator.errors import UserError

if TYPE_CHECKING:
    import pandas as pd

    from orchestrator.context import Context
    from orchestrator.registry import LoadedModel


@dataclass(frozen=True)
class LabelJoin:
    """How the served requests of a window met the labels file."""

    file: str
    key: str
    matched: int  # requests given a label
    unmatched: int  # requests without one (no key logged, or no label for it yet)
    labels_without_request: int  # labelled keys no request of the window had

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "key": self.key, "matched": self.matched, "unmatched": self.unmatched,
                "labels_without_request": self.labels_without_request}

    def describe(self) -> str:
        """``labels labels.csv: 280 matched, 20 unmatched, 5 labels without a request``."""
        return (f"labels {self.file}: {self.matched} matched, {self.unmatched} unmatched, "
                f"{self.labels_without_request} label{'s' if self.labels_without_request != 1 else ''} "
                "without a request")


def key_text(value: Any) -> str | None:
    """A key value as the text it is joined by, or None for a missing one."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # a numpy scalar from a frame
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def join_labels(context: Context, loaded: LoadedModel, path: str, *, since: float | None,
                last: int) -> tuple[pd.DataFrame, LabelJoin]:
    """The served requests of ``loaded`` (the ``last`` newest, since ``since``) that have a label in
    ``path``, as a frame of their features and the label column, and how the join went.

    Raises:
        UserError: the version has no key, the file cannot be read or lacks the key or the label
            column, or no request of the window has a label in it.
    """
    import pandas as pd

    from orchestrator.monitor import read_table
    from orchestrator.request_log import logged_entries

    candidate, name, version = loaded.candidate, loaded.name, loaded.version
    key = getattr(candidate, "key", None)
    if not key:
        raise UserError(f"{name} v{version} has no key column, so its served requests cannot be joined to "
                        f"labels: register it with ModelCandidate(key='<id column>') and serve that version, "
                        "or pass --batch FILE holding the features and the label.")
    labels = read_table(path, "labels file")
    columns = [str(c) for c in labels.columns]
    for role, column in (("key", key), ("label", candidate.label)):
        if column not in labels.columns:
            close = difflib.get_close_matches(column, columns, n=1, cutoff=0.6) or \
                [c for c in columns if c.casefold() == column.casefold()]
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            shown = ", ".join(columns[:8]) + (" ..." if len(columns) > 8 else "")
            raise UserError(f"labels file {path} has no {role} column '{column}'{hint}; its columns are {shown}. "
                            f"Name the columns '{key}' and '{candidate.label}', as at training.")
    known = labels[labels[candidate.label].notna()]
    by_key: dict[str, Any] = {}
    for k, y in zip(known[key], known[candidate.label]):
        text = key_text(k)
        if text is not None:
            by_key[text] = y.item() if hasattr(y, "item") else y
    entries = logged_entries(context, name, version=version, since=since, limit=last)
    rows: list[dict[str, Any]] = []
    outcomes: list[Any] = []
    seen: set[str] = set()
    keyed = 0
    for entry in entries:
        text = key_text(entry.get("key"))
        keyed += text is not None
        if text is not None and text in by_key:
            seen.add(text)
            rows.append(entry["features"])
            outcomes.append(by_key[text])
    join = LabelJoin(str(path), key, len(rows), len(entries) - len(rows), len(set(by_key) - seen))
    if not rows:
        if not entries:
            raise UserError(f"no served request of {name} v{version} matched a label in {path}: "
                            + _nothing_served(context, name, version, since, path))
        if not keyed:
            why = (f"none of its {len(entries)} logged requests carries a '{key}' (logged before keys were, "
                   f"or posted without the '{key}' column)")
        else:
            why = f"none of the {keyed} keys of its {len(entries)} logged requests is among the {len(by_key)} " \
                  "labelled keys of the file"
        raise UserError(f"no served request of {name} v{version} matched a label in {path}: {why}. Check that "
                        f"the file's '{key}' values are the ones posted to `orch serve`, and widen --since or --last.")
    frame = pd.DataFrame(rows)
    frame[candidate.label] = _as_trained(pd.Series(outcomes, index=frame.index))
    return frame, join


def _nothing_served(context: Context, name: str, version: int, since: float | None, path: str) -> str:
    """Why the window of ``name`` v``version`` is empty, and the command that reads requests: checking
    the file's keys is no fix when the version served nothing (production moved on after a promotion)."""
    from orchestrator.monitor import served_by_other_versions, when_text
    from orchestrator.request_log import logged_entries

    if since is not None and logged_entries(context, name, version=version, limit=1):
        return (f"no requests of it are logged since {when_text(since)}: give an earlier --since, "
                "or drop it to read the latest requests.")
    others = served_by_other_versions(context, name, version)
    where = "; ".join(f"v{v} served {n} (`orch monitor {name}@{v} --labels {path}`)" for v, n in others)
    return (f"no requests served by it are logged: serve it with `orch serve {name}@{version}`"
            + (f", or join the labels to the requests another version answered: {where}." if where else "."))


def _as_trained(labels: pd.Series) -> pd.Series:
    """Labels read as floats because the file had blanks (``1.0``) back as the integers trained on."""
    import pandas as pd

    numbers = pd.to_numeric(labels, errors="coerce")
    if numbers.notna().all() and (numbers % 1 == 0).all() and labels.map(lambda v: isinstance(v, float)).any():
        return numbers.astype("int64")
    return labels
