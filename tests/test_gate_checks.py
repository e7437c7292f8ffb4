"""The gate never promotes a useless model: one that does not beat a trivial baseline, or one measured on too few rows.

Small synthetic frames, fitted in a few milliseconds: imbalanced labels (2 % positives) on which an
unweighted classifier predicts the majority class for every row, a test set of 8 rows, a regressor
worse than the mean. Through the registry, the version keeps the baseline's figure and the test-set
size with its metrics; the monitor does not alert against a figure from 8 rows.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from orchestrator.gate_checks import MIN_CLASS_ROWS, MIN_TEST_ROWS
from orchestrator.monitor import compare
from orchestrator.registry import ModelCandidate, describe_schema, evaluate, judge, model_digest


def _imbalanced(rows: int, seed: int, positives: float = 0.02) -> pd.DataFrame:
    """A label that is 1 on ``positives`` of the rows, weakly told by ``x`` (so an unweighted fit never says 1)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    score = 0.5 * x + rng.normal(size=rows)
    return pd.DataFrame({"x": x, "y": (score > np.quantile(score, 1 - positives)).astype(int)})


def _candidate(model, frame: pd.DataFrame, metric: str, task: str = "classification",
               name: str = "m") -> ModelCandidate:
    metrics = evaluate(task, model, frame[["x"]], frame["y"])
    return ModelCandidate(name, model, task, describe_schema(frame[["x"]]), "y", metrics, metric, 0.0,
                          model_digest(model), eval_data=frame, reference=frame[["x"]])


@pytest.fixture(scope="module")
def imbalanced():
    from sklearn.linear_model import LogisticRegression

    train, test = _imbalanced(2000, 0), _imbalanced(1000, 1)
    plain = LogisticRegression().fit(train[["x"]], train["y"])
    balanced = LogisticRegression(class_weight="balanced").fit(train[["x"]], train["y"])
    return {"test": test, "plain": plain, "balanced": balanced}


@pytest.mark.parametrize("metric", ["f1", "accuracy"])
def test_a_model_that_never_predicts_the_rare_class_is_not_promoted_even_first(imbalanced, metric):
    """2 % positives: accuracy 0.98 and F1 0 for the unweighted model, exactly what always saying 0 scores.
    With no production version, the first such candidate was promoted without a word."""
    candidate = _candidate(imbalanced["plain"], imbalanced["test"], metric)
    assert candidate.metrics["f1"] == 0.0 and candidate.metrics["balanced_accuracy"] == 0.5
    gate = judge(candidate, None, None)
    assert not gate.promoted
    value = candidate.metrics[metric]
    assert gate.baseline == value and gate.test_rows == 1000
    assert gate.reason.startswith(f"{metric} {value:.4f} does not beat the majority-class baseline {value:.4f} "
                                  "(always predicting 0) on the same 1000 test rows")
    assert "only 2.0% of the rows are of class 1" in gate.reason and "class_weight='balanced'" in gate.reason


def _rare_class_models() -> dict[str, object]:
    """Estimators trained on 2 % positives: weighted by class (alone, in a pipeline, one without probabilities) or not."""
    from sklearn.linear_model import LogisticRegression, RidgeClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train = _imbalanced(2000, 0)
    return {name: model.fit(train[["x"]], train["y"]) for name, model in (
        ("plain", LogisticRegression()), ("balanced", LogisticRegression(class_weight="balanced")),
        ("pipeline", make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced"))),
        ("no probabilities", RidgeClassifier(class_weight="balanced")))}


ALL_ADVICE = "weight the classes (class_weight='balanced'), add features that tell them apart, or gate on roc_auc or " \
             "balanced_accuracy"


@pytest.mark.parametrize(("model", "metric", "advice"), [
    ("plain", "f1", ALL_ADVICE),
    ("plain", "roc_auc", "weight the classes (class_weight='balanced'), add features that tell them apart, or gate "
                         "on balanced_accuracy"),
    ("balanced", "roc_auc", "add features that tell them apart, or gate on balanced_accuracy"),
    ("pipeline", "balanced_accuracy", "add features that tell them apart, or gate on roc_auc"),
    ("no probabilities", "balanced_accuracy", "add features that tell them apart"),  # it has no roc_auc
])
def test_the_advice_on_a_rare_class_leaves_out_what_the_candidate_already_does(imbalanced, model, metric, advice):
    """A run gating on roc_auc with class_weight='balanced' was told to 'weight the classes
    (class_weight='balanced'), ... or gate on roc_auc or balanced_accuracy'; -p metric=balanced_accuracy
    was told to gate on balanced_accuracy."""
    candidate = _candidate(_rare_class_models()[model], imbalanced["test"], metric)
    useless = ModelCandidate(**{**candidate.__dict__, "metrics": {**candidate.metrics, metric: 0.0}})
    gate = judge(useless, None, None)
    assert not gate.promoted
    assert gate.reason.endswith(f"; only 2.0% of the rows are of class 1: {advice}"), gate.reason


def test_a_model_that_beats_the_baseline_is_promoted_and_the_verdict_says_by_what(imbalanced):
    candidate = _candidate(imbalanced["balanced"], imbalanced["test"], "f1")
    gate = judge(candidate, None, None)
    assert gate.promoted and candidate.metrics["f1"] > 0
    assert gate.reason.startswith("no production version yet (f1 ")
    assert "beats the majority-class baseline 0.0000 on 1000 test rows" in gate.reason


def test_the_baseline_refusal_stands_against_a_production_version_too(imbalanced):
    """A useless candidate is not promoted over an equally useless (or worse) production model either."""
    useless = _candidate(imbalanced["plain"], imbalanced["test"], "accuracy")
    gate = judge(useless, _candidate(imbalanced["balanced"], imbalanced["test"], "accuracy"), 1)
    assert not gate.promoted and gate.production_version == 1 and "majority-class baseline" in gate.reason


def test_a_regressor_no_better_than_the_mean_is_not_promoted():
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=200)})
    frame["y"] = rng.normal(size=200)  # nothing to learn from x
    shifted = LinearRegression().fit(frame[["x"]], frame["y"] + 1.0)  # and a bias on top
    gate = judge(_candidate(shifted, frame, "rmse", task="regression"), None, None)
    assert not gate.promoted and "does not beat the mean baseline" in gate.reason
    assert gate.baseline is not None and gate.candidate > gate.baseline


def test_eight_test_rows_are_too_few_to_promote_on():
    """30 rows left 8 test rows, a ROC-AUC of 1.0, and a promotion."""
    from sklearn.linear_model import LogisticRegression

    frame = pd.DataFrame({"x": [0.0, 1, 2, 3, 4, 5, 6, 7], "y": [0, 0, 0, 0, 1, 1, 1, 1]})
    candidate = _candidate(LogisticRegression().fit(frame[["x"]], frame["y"]), frame, "roc_auc")
    assert candidate.metrics["roc_auc"] == 1.0
    gate = judge(candidate, None, None)
    assert not gate.promoted and gate.test_rows == 8
    assert gate.reason == (f"roc_auc 1.0000 is measured on 8 test rows, too few to mean anything (the gate needs "
                           f"{MIN_TEST_ROWS}): give more data, or hold out a larger share for testing (in the "
                           "lifecycle pipeline, -p test_size=0.4)")


def test_a_rare_class_with_few_test_rows_is_too_few_to_promote_on():
    """Enough rows, but 5 positives among them: F1 and ROC-AUC turn on a handful of rows."""
    from sklearn.linear_model import LogisticRegression

    frame = _imbalanced(500, 3, positives=0.01)
    candidate = _candidate(LogisticRegression(class_weight="balanced").fit(frame[["x"]], frame["y"]), frame,
                           "roc_auc")
    gate = judge(candidate, None, None)
    assert not gate.promoted
    assert f"on 500 rows of which 5 are of class 1, too few to mean anything (the gate needs {MIN_CLASS_ROWS} " \
           "of each class for roc_auc, which weighs each class alike)" in gate.reason


def _three_classes(rows: int, seed: int, rare: int) -> pd.DataFrame:
    """Classes 0 and 1 told apart by ``x``, and class 2 (``rare`` rows) far out: a model gets them nearly all right."""
    rng = np.random.default_rng(seed)
    y = np.array([0, 1] * ((rows - rare) // 2) + [2] * rare)
    x = np.where(y == 2, 8.0, y * 3.0) + rng.normal(scale=0.8, size=len(y))
    return pd.DataFrame({"x": x, "y": y})


@pytest.mark.parametrize("metric, promoted", [("accuracy", True), ("f1", False), ("balanced_accuracy", False),
                                              ("roc_auc", False)])
def test_a_legitimately_rare_class_bars_only_metrics_that_weigh_each_class_alike(metric, promoted):
    """300 test rows, 4 of a third class: accuracy (every row alike) is measured well enough to gate on;
    macro F1, balanced accuracy and ROC-AUC give those 4 rows a third of the figure."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit(*(lambda f: (f[["x"]], f["y"]))(_three_classes(600, 0, rare=40)))
    test = _three_classes(300, 1, rare=4)
    candidate = _candidate(model, test, metric)
    assert candidate.metrics["accuracy"] > 0.9
    gate = judge(candidate, None, None)
    assert gate.promoted is promoted, gate.reason
    if not promoted:
        assert gate.reason == (f"{metric} {candidate.metrics[metric]:.4f} is measured on 300 rows of which 4 are "
                               f"of class 2, too few to mean anything (the gate needs {MIN_CLASS_ROWS} of each class "
                               f"for {metric}, which weighs each class alike): give more data, or hold out a larger "
                               "share for testing (in the lifecycle pipeline, -p test_size=0.4)")
    else:
        assert gate.reason.startswith("no production version yet (accuracy ")


TINY_PIPELINE = '''
import numpy as np
import pandas as pd

from orchestrator import pipeline, step
from orchestrator.registry import ModelCandidate, describe_schema, evaluate, model_digest


@step
def fit(weight: str) -> ModelCandidate:
    """A logistic regression on 2 % positives, weighted by class or not."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=3000)
    score = 0.5 * x + rng.normal(size=3000)
    frame = pd.DataFrame({"x": x, "y": (score > np.quantile(score, 0.98)).astype(int)})
    train, test = frame.iloc[:2000], frame.iloc[2000:].reset_index(drop=True)
    model = LogisticRegression(class_weight=weight or None).fit(train[["x"]], train["y"])
    return ModelCandidate("rare", model, "classification", describe_schema(train[["x"]]), "y",
                          evaluate("classification", model, test[["x"]], test["y"]), "f1", 0.0, model_digest(model),
                          eval_data=test, reference=test[["x"]])


@pipeline
def rare(weight: str = ""):
    return fit(weight)
'''


def test_the_version_keeps_the_baseline_and_the_test_size_and_models_show_prints_them(tmp_path, capsys):
    from orchestrator.cli import main
    from orchestrator.loader import load_pipeline

    (tmp_path / "rare.py").write_text(TINY_PIPELINE)
    rare, store = load_pipeline(str(tmp_path / "rare.py")), tmp_path / "store"
    useless = rare.run(store=str(store))
    assert useless.status == "succeeded"
    assert useless.metrics["gate"].startswith("registered, not promoted: f1 0.0000 does not beat the "
                                              "majority-class baseline 0.0000")
    useful = rare.run(store=str(store), weight="balanced")
    assert useful.metrics["gate"].startswith("promoted to production: no production version yet (f1 ")

    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        main(["--store", str(store), "models", "show", "rare@1", "--json"])
    assert not done.value.code
    shown = json.loads(capsys.readouterr().out)
    assert shown["metrics"]["baseline_f1"] == 0.0 and shown["metrics"]["test_rows"] == 1000
    assert shown["metrics"]["test_minority_rows"] == 20 and shown["metrics"]["f1"] == 0.0
    assert shown["gate"]["baseline"] == 0.0 and shown["gate"]["test_rows"] == 1000
    with pytest.raises(SystemExit):
        main(["--store", str(store), "models", "show", "rare"])
    text = capsys.readouterr().out
    assert "baseline_f1=0.0" in text and "test_rows=1000" in text and "production v2" in text


def test_the_monitor_does_not_alert_against_a_figure_from_eight_test_rows():
    """Resampling 8 perfectly scored rows never varies: every labelled batch 'fell from 1.0000' with p≈0."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    train = pd.DataFrame({"x": rng.normal(size=400)})
    train["y"] = (train["x"] + rng.normal(size=400) > 0).astype(int)
    model = LogisticRegression().fit(train[["x"]], train["y"])
    eight = pd.DataFrame({"x": [-2.0, -1.5, -1, -0.5, 0.5, 1, 1.5, 2], "y": [0, 0, 0, 0, 1, 1, 1, 1]})
    candidate = ModelCandidate("m", model, "classification", describe_schema(train[["x"]]), "y",
                               evaluate("classification", model, eight[["x"]], eight["y"]), "roc_auc", 0.0,
                               model_digest(model), eval_data=eight, reference=train[["x"]])
    assert candidate.metrics["roc_auc"] == 1.0
    batch = pd.DataFrame({"x": rng.normal(size=400)})
    batch["y"] = (batch["x"] + rng.normal(size=400) > 0).astype(int)
    result = compare(candidate, batch)
    assert not result.alert and result.status == "ok", result.reasons
    performance = result.performance
    assert performance is not None and performance["reference_unreliable"] and performance["current"] < 0.9
    assert performance["note"].startswith("not compared with the figure at training, which is unreliable: "
                                          "roc_auc 1.0000 is measured on 8 test rows")


def test_a_candidate_without_held_out_rows_is_judged_on_what_its_metrics_say():
    """A user's candidate may carry its counts and baseline in ``metrics`` instead of ``eval_data``; a NaN
    there (a figure that could not be measured) bars nothing, and does not fail the gate."""
    from sklearn.linear_model import LinearRegression

    frame = pd.DataFrame({"x": [0.0, 1, 2, 3], "y": [0.0, 1, 2, 3]})
    model = LinearRegression().fit(frame[["x"]], frame["y"])

    def offer(**stated):
        return ModelCandidate("r", model, "regression", describe_schema(frame[["x"]]), "y", {"r2": 0.4, **stated},
                              "r2", 0.0, model_digest(model))

    assert "does not beat the mean baseline 0.5000" in judge(offer(baseline_r2=0.5, test_rows=200), None, None).reason
    assert "measured on 20 test rows" in judge(offer(baseline_r2=0.1, test_rows=20), None, None).reason
    gate = judge(offer(baseline_r2=float("nan"), test_rows=float("nan")), None, None)
    assert gate.promoted and gate.baseline is None and gate.test_rows is None
