"""Declared data expectations and the report they produce; used by the lifecycle pipeline's validate step.

Each expectation is a small frozen value (columns and dtypes, value range,
allowed categories, null ratio, unique key, row count); ``check_frame`` runs
them all and returns a JSON-able report listing every check with what was
expected and what was observed. ``DataValidationError`` turns the failed
checks into one readable message. Plain functions: no steps, no store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from orchestrator import current_run_id
from orchestrator.feature_codes import code_text


class DataValidationError(Exception):
    """The data broke one or more expectations; the message lists which, on which columns."""


@dataclass(frozen=True)
class Expectation:
    """One declared check: ``kind`` is columns | range | categories | nulls | unique | rows."""

    kind: str
    column: str | None = None
    dtype: str | None = None  # "number" | "category" (text, True/False or whole-number codes) for kind="columns"
    low: float | None = None
    high: float | None = None
    allowed: tuple[str, ...] = ()
    max_ratio: float | None = None


def columns(**dtypes: str) -> list[Expectation]:
    return [Expectation("columns", name, dtype=kind) for name, kind in dtypes.items()]


def check_frame(frame: pd.DataFrame, expectations: list[Expectation]) -> dict[str, Any]:
    """Run every expectation; ``{"passed", "rows", "failed", "checks": [...]}``."""
    checks = [_check(frame, e) for e in expectations]
    failed = [c for c in checks if not c["passed"]]
    return {"passed": not failed, "rows": len(frame), "columns": [str(c) for c in frame.columns],
            "failed": len(failed), "checks": checks}


def _written_in_numbers(col: pd.Series) -> bool:
    """Whether a column holds numbers (not flags), or text that is all plain whole numbers."""
    if pd.api.types.is_bool_dtype(col):
        return False
    if pd.api.types.is_numeric_dtype(col):
        return True
    present = col.dropna()
    return len(present) > 0 and all(isinstance(v, str) and v.strip().isdigit() for v in present.unique())


def _check(frame: pd.DataFrame, e: Expectation) -> dict[str, Any]:
    out: dict[str, Any] = {"check": e.kind, "column": e.column}
    if e.kind == "rows":
        ok = (e.low is None or len(frame) >= e.low) and (e.high is None or len(frame) <= e.high)
        return {**out, "passed": ok, "expected": f"{e.low}..{e.high} rows", "observed": len(frame)}
    if e.column not in frame.columns:
        return {**out, "passed": False, "expected": "column present", "observed": "missing"}
    col = frame[e.column]
    if e.kind == "columns":
        return {**out, **_dtype_check(col, e.dtype)}
    if e.kind == "range":
        values = pd.to_numeric(col, errors="coerce").dropna()
        bad = int(((values < (e.low if e.low is not None else -float("inf")))
                   | (values > (e.high if e.high is not None else float("inf")))).sum())
        observed = f"{values.min():g}..{values.max():g}, {bad} rows outside" if len(values) else "no values"
        return {**out, "passed": bad == 0, "expected": f"{e.low}..{e.high}", "observed": observed}
    if e.kind == "categories":
        # Codes written in numbers compare as codes: a blank cell reads 75001 as 75001.0, which is '75001'.
        as_text = code_text if _written_in_numbers(col) else str
        unknown = sorted({as_text(v) for v in col.dropna().unique()} - {as_text(a) for a in e.allowed})
        return {**out, "passed": not unknown, "expected": list(e.allowed),
                "observed": f"unexpected: {', '.join(unknown[:5])}" if unknown else "ok"}
    if e.kind == "nulls":
        ratio = float(col.isna().mean()) if len(col) else 0.0
        return {**out, "passed": ratio <= (e.max_ratio or 0.0), "expected": f"null ratio <= {e.max_ratio}",
                "observed": round(ratio, 4)}
    if e.kind == "unique":
        dupes = int(col.duplicated().sum())
        return {**out, "passed": dupes == 0, "expected": "no duplicate keys", "observed": f"{dupes} duplicates"}
    raise ValueError(f"unknown expectation kind {e.kind!r}; use columns, range, categories, nulls, unique or rows")


def _dtype_check(col: pd.Series, dtype: str | None) -> dict[str, Any]:
    """Whether ``col`` is of the declared kind: "number", or "category" (text, True/False, or whole-number codes).

    A category written in numbers (a postcode, a store number: floats once a blank cell is read) is
    a category, as the pipeline's CATEGORICAL takes it: it failed "category" with ``expected
    category, got float64`` and no word of why. Numbers with fractions are a measure, not codes:
    declared "category", they are refused, saying what to declare instead.
    """
    import numpy as np

    is_number = pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)
    checked = {"passed": is_number, "expected": dtype, "observed": str(col.dtype)}
    if dtype == "number" or not is_number:
        return {**checked, "passed": is_number if dtype == "number" else True}
    values = col.dropna().to_numpy(dtype=float)
    fractions = values[~np.isfinite(values) | (values != np.floor(values))]
    if not len(fractions):
        return {**checked, "passed": True}
    return {**checked, "passed": False,
            "observed": f"{col.dtype} with fractions (e.g. {fractions[0]:g}): a category written in numbers holds "
                        "whole codes; declare a measure 'number' and list it in NUMERIC"}


def raise_for_failures(report: dict[str, Any]) -> None:
    """Raise ``DataValidationError`` listing each failed check, if any failed."""
    if report["passed"]:
        return
    failed = [c for c in report["checks"] if not c["passed"]]
    # A file with other columns (your own data in the demo pipeline) fails every check of every
    # column it lacks: say which columns are missing once, and which it has, instead.
    absent = list(dict.fromkeys(c["column"] for c in failed if c["observed"] == "missing" and c["column"]))
    others = [c for c in failed if c["column"] not in absent]
    parts = [f"{c['column'] or 'table'}: {c['check']} expected {c['expected']}, got {c['observed']}" for c in others]
    if absent:
        has = report.get("columns")
        parts.insert(0, f"the data lacks the column{'s' if len(absent) > 1 else ''} {_listed(absent)}"
                     + _meant(absent, has or []) + (f" (it has {_listed(has)})" if has is not None else "")
                     + "; " + _columns_fix(has))
    # The run's own id, so that the command can be typed as it is (it said `orch show RUN_ID`).
    run = current_run_id() or "RUN_ID"
    raise DataValidationError(f"{len(failed)} of {len(report['checks'])} expectations failed: " + "; ".join(parts)
                              + f". The full report is the output of step 'validate': `orch show {run}`, or "
                              f"orchestrator.load(\"{run}:validate\") from Python.")


def _columns_fix(has: list[str] | None) -> str:
    """The fix for absent columns: another separator than the comma, or declaring your own columns.

    A semicolon-separated CSV (Excel's export in many locales) reads as one column named
    ``id;x1;x2;...``; declaring columns is then the wrong advice.
    """
    if has is not None and len(has) == 1:
        for sep, said in ((";", "semicolons"), ("\t", "tabs"), ("|", "'|'")):
            if sep in has[0]:
                return (f"the file looks separated by {said}, and CSV is read comma-separated: write it with "
                        "DataFrame.to_csv(path, index=False), or save it as Parquet")
    return ("for your own data, declare its columns in the pipeline's EXPECTATIONS, and set LABEL, KEY, NUMERIC "
            "and CATEGORICAL at its top")


def check_features(frame: pd.DataFrame, numeric: list[str], categorical: list[str], label: str,
                   key: str | None = None, task: str = "classification") -> None:
    """Raise ``DataValidationError`` when the declared features and label cannot train a model on ``frame``.

    Each of these failed later, in scikit-learn, with words that name neither the column nor the fix
    (``KeyError: "['age'] not in index"``, ``Cannot use median strategy with non-numeric data``, a
    ``DTypePromotionError`` for a date, ``could not convert string to float`` for text in the label of
    a ``task="regression"``), or trained without a word a model that is no use: the label
    or the key among the features, a date as a category (every date it is sent later is one it never
    saw), a category with a different value in each row. All problems are named at once.
    """
    has = [str(c) for c in frame.columns]
    problems: list[str] = []
    if not numeric and not categorical:
        problems.append(f"no feature is declared: list the columns a model learns {label!r} from in NUMERIC and "
                        f"CATEGORICAL (the data has {_listed(has)})")
    absent = [c for c in dict.fromkeys([*numeric, *categorical, label]) if c not in frame.columns]
    for name in absent:
        role = "LABEL" if name == label else "NUMERIC" if name in numeric else "CATEGORICAL"
        problems.append(f"the data has no column {name!r} ({role}){_meant([name], has)}")
    if absent:
        problems[-1] += f"; it has {_listed(has)}"
    problems += [f"{c!r} is in both NUMERIC and CATEGORICAL" for c in dict.fromkeys(numeric) if c in categorical]
    for name, role, why in ((label, "the label", "it would be given the answer"),
                            (key, "the key", "an id teaches a model nothing about new rows")):
        lists = [what for what, names in (("NUMERIC", numeric), ("CATEGORICAL", categorical)) if name in names]
        if name is not None and lists:
            problems.append(f"{role} {name!r} is in {lists[0]} ({why})")
    for name in dict.fromkeys([*numeric, *categorical]):
        if name not in absent and name not in (label, key):
            problems += _feature_problem(frame[name], name, name in numeric)
    if label not in absent and frame[label].isna().any():
        problems.append(f"{int(frame[label].isna().sum())} of {len(frame)} rows have no {label!r}: drop them "
                        f"(frame.dropna(subset=[{label!r}]))")
    if label not in absent and task == "regression":
        problems += _regression_label_problem(frame[label], label)
    if problems:
        raise DataValidationError("; ".join(problems) + ". Declare the columns in LABEL, KEY, NUMERIC and "
                                  "CATEGORICAL at the top of the pipeline.")


_DATE = r"^\s*\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}"  # 2024-03-08, 08/03/2024, 8.3.24 (a time may follow)


def _dates(name: str) -> str:
    return (f"{name!r} holds dates, which a model cannot take (each new date is one it never saw): derive numbers "
            "from it in the data (days since a start, month, weekday)")


def _feature_problem(col: pd.Series, name: str, numeric: bool) -> list[str]:
    """What keeps one declared feature column from training a useful model (none: an empty list).

    Dates are dates whether typed (Parquet) or written as text (CSV): as numbers they fail, and as
    categories each one sent later is one the model never saw.
    """
    if pd.api.types.is_datetime64_any_dtype(col):
        return [_dates(name)]
    if pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
        return []
    values = col.dropna()
    written_dates = len(values) > 0 and values.head(50).astype(str).str.match(_DATE).all()
    if numeric:
        text = values[pd.to_numeric(values, errors="coerce").isna()]  # numbers written as text are made numbers
        if written_dates:
            return [_dates(name)]
        return [f"{name!r} in NUMERIC holds text (e.g. {str(text.iloc[0])[:30]!r}): move it to CATEGORICAL or "
                "make it numbers"] if len(text) else []
    if written_dates and values.nunique() > 100:  # a few dates (the months of a year) are categories
        return [_dates(name)]
    if len(values) >= 100 and values.is_unique:
        return [f"{name!r} in CATEGORICAL has another value in each of its {len(values)} rows, like an id or free "
                "text: leave it out"]
    return []


def _regression_label_problem(col: pd.Series, label: str) -> list[str]:
    """What keeps ``col`` from being the label of a regression: text or dates (none: an empty list).

    Numbers written as text (``'938.64'``, a Parquet file of strings) are numbers; text with a unit
    (``'938.64 EUR'``) or a decimal comma is not, and failed every candidate in scikit-learn.
    """
    if pd.api.types.is_bool_dtype(col):
        return []
    if pd.api.types.is_numeric_dtype(col):
        return _infinite_label(col, label)
    values = col.dropna()
    text = values[pd.to_numeric(values, errors="coerce").isna()]
    if pd.api.types.is_datetime64_any_dtype(col) or (len(text) and values.head(50).astype(str).str.match(_DATE).all()):
        return [f"the label {label!r} of a regression holds dates: predict a number derived from them (days since "
                "a start), or choose another label"]
    if not len(text):
        return _infinite_label(pd.to_numeric(values), label)
    return [f"the label {label!r} of a regression holds text in {len(text)} of its {len(values)} rows (e.g. "
            f"{str(text.iloc[0])[:30]!r}): make it numbers (without a unit or a thousands separator), or set TASK = "
            "\"classification\" for a label of classes"]


def _infinite_label(values: pd.Series, label: str) -> list[str]:
    """The rows of a regression label that are infinite ('inf', 1e400), which no model fits, named with the fix."""
    import numpy as np

    infinite = int(np.isinf(values.to_numpy(dtype=float, na_value=np.nan)).sum())
    if not infinite:
        return []
    return [f"the label {label!r} of a regression is infinite in {infinite} of its {int(values.notna().sum())} rows: "
            "drop those rows or give them a finite value"]


def _meant(absent: list[str], has: list[str]) -> str:
    """`` (did you mean 'Target'?)``: columns the data has that look like the absent ones.

    Case, spaces, ``_``/``-`` and accents are ignored, then close spellings are tried, so a column
    the list of the data's columns cuts off (``… and 3 more``) is still pointed at.
    """
    import difflib
    import unicodedata

    def fold(name: str) -> str:
        plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode() or name
        return plain.casefold().replace(" ", "_").replace("-", "_").strip("_")

    folded = {fold(h): h for h in has}
    pairs = []
    for name in absent:
        close = folded.get(fold(name)) or next(iter(difflib.get_close_matches(name, has, n=1, cutoff=0.75)), None)
        if close is not None and close != name:
            pairs.append(f"{close!r}" if len(absent) == 1 else f"{close!r} for {name!r}")
    return f" (did you mean {', '.join(pairs[:3])}?)" if pairs else ""


def _listed(names: list[str], limit: int = 10) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" … and {len(names) - limit} more" if len(names) > limit else "")
