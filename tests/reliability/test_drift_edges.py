"""Issue 5, item 14: drift on bad windows is a value or an explicit ``insufficient_data``.

An empty window, all-NaN, a constant column, a single category, unseen
categories, ±inf and n=1, in the current window and in the reference, go
through the public functions: ``drift.compare_frames`` and, with a model,
``monitor.compare`` then ``monitor.record_check`` (whose JSON report must be
strict JSON). Each must give, for the column it damages, the verdict that
says so (``drift`` or ``insufficient_data`` with a reason, or a value that
names the problem), never an exception and never a silent "no drift".
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from orchestrator.drift import DRIFT, INSUFFICIENT, OK, DriftResult, compare_frames

KINDS = {"x": "number", "c": "category"}
_rng = np.random.default_rng(0)
REFERENCE = pd.DataFrame({"x": _rng.normal(0, 1, 600), "c": _rng.choice(["a", "b", "c"], 600)})
FLAGGED = {DRIFT, INSUFFICIENT}


def _fresh(n: int, **columns: Any) -> pd.DataFrame:
    r = np.random.default_rng(n)
    frame = pd.DataFrame({"x": r.normal(0, 1, n), "c": r.choice(["a", "b", "c"], n)})
    for name, values in columns.items():
        frame[name] = values
    return frame


# name, current window, reference, {column: statuses that say what is wrong}, text the detail must hold
WINDOWS: list[tuple[str, pd.DataFrame, pd.DataFrame, dict[str, set[str]], str]] = [
    ("empty window", REFERENCE.iloc[:0], REFERENCE, {"x": {INSUFFICIENT}, "c": {INSUFFICIENT}}, ""),
    ("empty window without columns", pd.DataFrame(), REFERENCE, {"x": {INSUFFICIENT}, "c": {INSUFFICIENT}}, ""),
    ("all NaN", _fresh(200, x=np.nan, c=None), REFERENCE, {"x": {DRIFT}, "c": {DRIFT}}, "missing"),
    ("constant column", _fresh(200, x=1.0), REFERENCE, {"x": {DRIFT}}, ""),
    ("constant at the reference median", _fresh(200, x=float(REFERENCE["x"].median())), REFERENCE,
     {"x": {DRIFT}}, ""),
    ("single category", _fresh(200, c="a"), REFERENCE, {"c": {DRIFT}}, ""),
    ("only unseen categories", _fresh(200, c="zzz"), REFERENCE, {"c": {DRIFT}}, "zzz"),
    ("a few unseen categories", _fresh(200, c=["zzz"] * 5 + ["a", "b", "c"] * 65), REFERENCE,
     {"c": {OK, DRIFT}}, "zzz"),
    ("only +inf", _fresh(200, x=np.inf), REFERENCE, {"x": {DRIFT}}, "missing"),
    ("+inf and -inf", _fresh(200, x=[np.inf, -np.inf] * 100), REFERENCE, {"x": {DRIFT}}, "missing"),
    ("a fifth inf", _fresh(200, x=[np.inf] * 40 + list(_rng.normal(0, 1, 160))), REFERENCE, {"x": {DRIFT}},
     "missing"),
    ("n=1", REFERENCE.iloc[:1], REFERENCE, {"x": {INSUFFICIENT}, "c": {INSUFFICIENT}}, ""),
    ("n=1, NaN", _fresh(1, x=np.nan, c=None), REFERENCE, {"x": FLAGGED, "c": FLAGGED}, ""),
    ("empty reference", _fresh(200), REFERENCE.iloc[:0], {"x": {INSUFFICIENT}, "c": {INSUFFICIENT}}, ""),
    ("all-NaN reference", _fresh(200), _fresh(600, x=np.nan, c=None), {"x": FLAGGED, "c": FLAGGED}, ""),
    ("constant reference", _fresh(200), _fresh(600, x=2.0, c="a"), {"x": {DRIFT}, "c": {DRIFT}}, ""),
    ("constant on both sides", _fresh(200, x=2.0, c="a"), _fresh(600, x=2.0, c="a"), {"x": {OK}, "c": {OK}}, ""),
    ("inf reference", _fresh(200), _fresh(600, x=np.inf), {"x": FLAGGED}, ""),
    ("n=1 reference", _fresh(200), REFERENCE.iloc[:1], {"x": {INSUFFICIENT}, "c": {INSUFFICIENT}}, ""),
]


def _problems(result: DriftResult, expected: dict[str, set[str]], text: str) -> list[str]:
    """Why ``result`` is an escape: a damaged column not flagged, a verdict without a value or a reason."""
    found = []
    columns = {f.name: f for f in result.features}
    for name, statuses in expected.items():
        column = columns[name]
        if column.status not in statuses:
            found.append(f"{name}: {column.status} (expected {'/'.join(sorted(statuses))}) {column.detail!r}")
        if column.status == OK and not (column.psi is not None and np.isfinite(column.psi)
                                        and column.p_value is not None and np.isfinite(column.p_value)):
            found.append(f"{name}: ok without a value (psi {column.psi}, p {column.p_value})")
        if column.status in FLAGGED and not column.detail:
            found.append(f"{name}: {column.status} without a reason")
    if text and not any(text in columns[name].detail for name in expected):
        found.append(f"no detail says {text!r}: {[columns[n].detail for n in expected]}")
    if result.status == INSUFFICIENT and not result.reasons:
        found.append("insufficient_data without a reason")
    if result.status == OK and any(columns[n].status != OK for n in expected):
        found.append(f"the check says ok although {[columns[n].status for n in expected]}")
    return found


@pytest.fixture(scope="module")
def candidate():
    """A tiny fitted classifier on x and c, with REFERENCE as its drift reference."""
    from sklearn.compose import make_column_transformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    from orchestrator.registry import ModelCandidate, describe_schema, model_digest

    y = (REFERENCE["x"] + (REFERENCE["c"] == "a") > 0.5).astype(int)
    model = make_pipeline(
        make_column_transformer((SimpleImputer(), ["x"]),
                                (make_pipeline(SimpleImputer(strategy="most_frequent"),
                                               OneHotEncoder(handle_unknown="ignore")), ["c"])),
        LogisticRegression()).fit(REFERENCE, y)
    return ModelCandidate("edges", model, "classification", describe_schema(REFERENCE), "y", {"roc_auc": 0.9},
                          "roc_auc", 0.0, model_digest(model), reference=REFERENCE)


def _strict(constant: str) -> Any:
    raise ValueError(f"{constant} in a JSON report")


def test_drift_on_bad_windows_is_a_value_or_insufficient_data(candidate, tmp_path, figure):
    from orchestrator.context import Context
    from orchestrator.monitor import compare, record_check

    ctx = Context.open(tmp_path / "store")
    bad = rejected = 0
    escapes: list[tuple[str, str, Any]] = []
    for name, window, reference, expected, text in WINDOWS:
        paths = [("compare_frames", lambda w=window, r=reference: compare_frames(r, w, KINDS))]
        if reference is REFERENCE:  # the model's reference is fixed: only the window varies through monitor
            paths.append(("monitor.compare", lambda w=window: compare(candidate, w)))
        for path, check in paths:
            bad += 1
            try:
                result = check()
                found = _problems(result, expected, text)
                if path == "monitor.compare":
                    report, html = record_check(ctx, "edges", None, result, name)
                    json.loads(report.read_text(), parse_constant=_strict)
                    assert html.stat().st_size > 0
            except Exception as exc:  # noqa: BLE001 - any exception is an escape, named in the failure
                found = [f"{type(exc).__name__}: {exc}"]
            rejected += not found
            if found:
                escapes.append((name, path, found))
    checks = ctx.lineage.conn.execute("SELECT COUNT(*) FROM drift_checks").fetchone()[0]
    ctx.lineage.close()
    figure(bad_inputs=bad, rejected=rejected, escapes=len(escapes))
    assert not escapes, escapes
    assert checks == sum(r is REFERENCE for _, _, r, _, _ in WINDOWS)
