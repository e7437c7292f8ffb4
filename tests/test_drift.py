"""Drift statistics on bad windows: always a value or an explicit insufficient_data, never an exception."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from orchestrator.drift import DRIFT, INSUFFICIENT, OK, Thresholds, chi_square, compare_column, compare_frames

T = Thresholds()
rng = np.random.default_rng(0)
REF_NUM = pd.Series(rng.normal(0, 1, 2000))
REF_CAT = pd.Series(rng.choice(["a", "b", "c"], 2000))


@pytest.mark.parametrize(("current", "status"), [
    (pd.Series([], dtype=float), INSUFFICIENT),                      # empty window
    (pd.Series([np.nan] * 100), DRIFT),                              # all NaN: the missing ratio moved
    (pd.Series([1.5]), INSUFFICIENT),                                # n = 1
    (pd.Series(rng.normal(0, 1, 500)), OK),                          # same distribution
    (pd.Series(rng.normal(1.5, 1, 500)), DRIFT),                     # shifted
    (pd.Series([np.inf] * 10 + list(rng.normal(0, 1, 490))), OK),    # a little inf: counted as missing
    (pd.Series([np.inf, -np.inf] * 100), DRIFT),                     # only inf
    (pd.Series([3.0] * 200), DRIFT),                                 # a constant window
])
def test_numeric_windows(current, status):
    result = compare_column("x", "number", REF_NUM, current, T)
    assert result.status == status, result.detail
    assert result.status != INSUFFICIENT or result.detail


def test_constant_reference_and_window():
    same = compare_column("x", "number", pd.Series([2.0] * 100), pd.Series([2.0] * 100), T)
    other = compare_column("x", "number", pd.Series([2.0] * 100), pd.Series([5.0] * 100), T)
    assert same.status == OK and same.psi == pytest.approx(0.0)
    assert other.status == DRIFT


@pytest.mark.parametrize(("current", "status"), [
    (pd.Series(rng.choice(["a", "b", "c"], 500)), OK),
    (pd.Series(["a"] * 500), DRIFT),                                 # single category
    (pd.Series(rng.choice(["a", "b", "c", "zzz"], 500)), DRIFT),     # an unseen category
    (pd.Series([None] * 50, dtype=object), DRIFT),
    (pd.Series([], dtype=object), INSUFFICIENT),
])
def test_categorical_windows(current, status):
    result = compare_column("c", "category", REF_CAT, current, T)
    assert result.status == status, result.detail


def test_unseen_category_is_named():
    result = compare_column("c", "category", REF_CAT, pd.Series(rng.choice(["a", "b", "c", "zzz"], 500)), T)
    assert "zzz" in result.detail


def test_single_category_on_both_sides_is_not_drift():
    assert chi_square(pd.Series(["a"] * 50), pd.Series(["a"] * 70)) == (0.0, 1.0)


def test_whole_frame_verdicts():
    ref = pd.DataFrame({"x": REF_NUM, "c": REF_CAT})
    kinds = {"x": "number", "c": "category"}
    empty = compare_frames(ref, ref.iloc[:0], kinds)
    assert empty.status == INSUFFICIENT and not empty.alert and empty.reasons
    tiny = compare_frames(ref, ref.iloc[:3], kinds)
    assert tiny.status == INSUFFICIENT and not tiny.alert
    missing = compare_frames(ref, ref[["x"]].iloc[:500], kinds)
    assert missing.features[1].status == INSUFFICIENT and "missing" in missing.features[1].detail
    shifted = compare_frames(ref, pd.DataFrame({"x": REF_NUM + 2, "c": REF_CAT}), kinds)
    assert shifted.alert and shifted.drifted == ["x"]
    worse = compare_frames(ref, ref.sample(1200, random_state=1), kinds,
                           performance={"metric": "roc_auc", "reference": 0.9, "current": 0.8, "rows": 1200})
    assert worse.alert and "roc_auc fell" in worse.reasons[0]
    noisy = compare_frames(ref, ref.sample(200, random_state=1), kinds,
                           performance={"metric": "roc_auc", "reference": 0.9, "current": 0.8, "rows": 200})
    assert not noisy.alert and "too noisy" in noisy.performance["note"]


def test_false_alarm_rate_over_seeds():
    ref = pd.DataFrame({"x": REF_NUM, "c": REF_CAT})
    kinds = {"x": "number", "c": "category"}
    alerts = 0
    for seed in range(40):
        r = np.random.default_rng(seed + 100)
        fresh = pd.DataFrame({"x": r.normal(0, 1, 500), "c": r.choice(["a", "b", "c"], 500)})
        alerts += compare_frames(ref, fresh, kinds).alert
    assert alerts <= 2  # under 5% of fresh samples raise an alert
