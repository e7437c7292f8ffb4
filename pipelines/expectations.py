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


class DataValidationError(Exception):
    """The data broke one or more expectations; the message lists which, on which columns."""


@dataclass(frozen=True)
class Expectation:
    """One declared check: ``kind`` is columns | range | categories | nulls | unique | rows."""

    kind: str
    column: str | None = None
    dtype: str | None = None  # "number" | "category" for kind="columns"
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


def _check(frame: pd.DataFrame, e: Expectation) -> dict[str, Any]:
    out: dict[str, Any] = {"check": e.kind, "column": e.column}
    if e.kind == "rows":
        ok = (e.low is None or len(frame) >= e.low) and (e.high is None or len(frame) <= e.high)
        return {**out, "passed": ok, "expected": f"{e.low}..{e.high} rows", "observed": len(frame)}
    if e.column not in frame.columns:
        return {**out, "passed": False, "expected": "column present", "observed": "missing"}
    col = frame[e.column]
    if e.kind == "columns":
        is_number = pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)
        ok = is_number if e.dtype == "number" else not is_number or col.dropna().empty
        return {**out, "passed": ok, "expected": e.dtype, "observed": str(col.dtype)}
    if e.kind == "range":
        values = pd.to_numeric(col, errors="coerce").dropna()
        bad = int(((values < (e.low if e.low is not None else -float("inf")))
                   | (values > (e.high if e.high is not None else float("inf")))).sum())
        observed = f"{values.min():g}..{values.max():g}, {bad} rows outside" if len(values) else "no values"
        return {**out, "passed": bad == 0, "expected": f"{e.low}..{e.high}", "observed": observed}
    if e.kind == "categories":
        unknown = sorted({str(v) for v in col.dropna().unique()} - set(e.allowed))
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
                     + (f" (it has {_listed(has)})" if has is not None else "") + "; " + _columns_fix(has))
    raise DataValidationError(f"{len(failed)} of {len(report['checks'])} expectations failed: " + "; ".join(parts)
                              + ". The full report is the output of step 'validate' (see `orch show RUN_ID`).")


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
    return "for your own data, declare its columns in the pipeline's EXPECTATIONS (and features, label)"


def _listed(names: list[str], limit: int = 10) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" … and {len(names) - limit} more" if len(names) > limit else "")
