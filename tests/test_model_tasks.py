"""The lifecycle on targets other than the demo's binary label: several text classes, a continuous value."""

from __future__ import annotations

import numpy as np
import pandas as pd

from orchestrator.monitor import compare
from orchestrator.registry import ModelCandidate, describe_schema, evaluate, model_digest


def _species(rows: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1.0, rows)
    frame = pd.DataFrame({"x": x, "color": rng.choice(["red", "blue"], rows)})
    frame["species"] = np.where(x > 0.5, "alpha", np.where(x < -0.5, "beta", "gamma"))
    return frame


def _multiclass() -> ModelCandidate:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    train = _species(600, 0)
    features = train[["x", "color"]]
    model = Pipeline([("f", ColumnTransformer([("c", OneHotEncoder(handle_unknown="ignore"), ["color"])],
                                              remainder="passthrough")),
                      ("m", LogisticRegression(max_iter=1000))]).fit(features, train["species"])
    held_out = _species(200, 1)
    metrics = evaluate("classification", model, held_out[["x", "color"]], held_out["species"])
    return ModelCandidate(name="species", model=model, task="classification", features=describe_schema(features),
                          label="species", metrics=metrics, metric="roc_auc", margin=0.0,
                          model_digest=model_digest(model), eval_data=held_out, reference=features)


def test_a_multiclass_model_has_a_roc_auc_so_the_default_gate_metric_works():
    """Three text classes had no roc_auc: the lifecycle's default metric failed with KeyError: 'roc_auc'."""
    candidate = _multiclass()
    assert set(candidate.metrics) == {"accuracy", "f1", "roc_auc", "balanced_accuracy"}
    assert 0.9 < candidate.metrics["roc_auc"] <= 1.0
    # Rows holding two of the three classes have no one-vs-rest ROC-AUC, and a multiclass F1 (binary F1
    # raised 'Target is multiclass but average=binary' on the third class predicted), rather than an error.
    two = candidate.eval_data[candidate.eval_data["species"] != "gamma"]
    scores = evaluate("classification", candidate.model, two[["x", "color"]], two["species"])
    assert "roc_auc" not in scores and 0 < scores["f1"] < 1


def test_a_multiclass_models_predictions_are_compared_as_categories():
    """Text classes made every check `insufficient_data`: 'the model cannot score its training reference
    (ValueError: could not convert string to float: 'alpha')', and the labelled batch got no performance."""
    candidate = _multiclass()
    clean = compare(candidate, _species(300, 2))
    assert clean.status == "ok", clean.reasons
    assert clean.prediction is not None and clean.prediction.kind == "category"
    assert clean.prediction.bin_labels == ["alpha", "beta", "gamma"]
    assert clean.performance is not None and clean.performance["metric"] == "roc_auc"
    shifted = compare(candidate, _species(300, 3, shift=1.5).drop(columns="species"))
    assert shifted.alert and any(r.startswith("predictions drifted") for r in shifted.reasons), shifted.reasons


def test_a_rare_class_absent_from_a_batch_scores_f1_zero_without_a_warning():
    """1% positives: a batch with none of them printed sklearn's UndefinedMetricWarning under the verdict."""
    import warnings

    from sklearn.linear_model import LogisticRegression

    frame = pd.DataFrame({"x": np.arange(200.0)})
    model = LogisticRegression().fit(frame, (frame["x"] > 197).astype(int))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = evaluate("classification", model, frame.head(50), np.zeros(50, dtype=int))
    assert scores["f1"] == 0.0 and scores["accuracy"] == 1.0


def test_a_frame_with_numbered_columns_is_refused_when_its_schema_is_described():
    """A model fitted on a frame made from a numpy array (columns 0..499) was registered, and then neither
    served nor monitored: 'the frame has no columns 0, 1, 2; the model expects 0, 1, 2'."""
    import pytest

    from orchestrator.errors import UserError

    with pytest.raises(UserError) as refused:
        describe_schema(pd.DataFrame(np.zeros((3, 500))))
    assert str(refused.value) == (
        "describe_schema: column names must be text, since requests, batches and the request log name columns "
        "with text; 500 of 500 are not (0, 1, 2, 3, 4 …, int). Name the columns before fitting the model, e.g. "
        "frame.columns = [f'f{c}' for c in frame.columns].")


def _upper(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(species=frame["species"].str.upper())


def test_labels_the_model_was_not_trained_on_are_named_not_scored():
    """Labels written another way than in training (ALPHA for alpha) scored an accuracy of 0, and a binary
    model's ROC-AUC took the larger unknown label as positive (0.09 for 0.91): a false alert either way."""
    candidate = _multiclass()
    candidate = ModelCandidate(**{**candidate.__dict__, "metric": "accuracy"})
    batch = _upper(_species(300, 2))
    result = compare(candidate, batch)
    assert not result.alert and result.status == "ok", result.reasons
    assert result.performance is not None and result.performance["current"] is None
    note = result.performance["note"]
    assert "the labels in column 'species' include 'GAMMA', 'BETA', 'ALPHA', which" in note and "its classes: alpha, beta, gamma" in note
    # Labels as in training are still scored.
    assert compare(candidate, _species(300, 2)).performance["current"] > 0.8


def test_the_gate_does_not_score_production_on_labels_it_was_not_trained_on():
    """A production model trained on ALPHA/BETA/GAMMA scored 0 on the candidate's alpha/beta/gamma rows, so any
    candidate was promoted as 'beating it on the same evaluation data'; its recorded metric is used instead."""
    from sklearn.linear_model import LogisticRegression

    from orchestrator.registry import judge

    candidate = ModelCandidate(**{**_multiclass().__dict__, "metric": "accuracy"})
    train = _upper(_species(600, 0))

    old_model = LogisticRegression(max_iter=1000).fit(train[["x"]], train["species"])
    production = ModelCandidate(**{**candidate.__dict__, "model": old_model, "features": describe_schema(train[["x"]]),
                                   "metrics": {"accuracy": 0.99}})
    gate = judge(candidate, production, 1, recorded=production.metrics)
    assert gate.production == 0.99 and not gate.promoted, gate.reason
    assert "as recorded (it cannot score the new evaluation data)" in gate.reason


def test_a_binary_roc_auc_is_of_the_class_the_probability_is_of():
    """evaluate() left the positive class to sklearn, the larger label: rows labelled ok/suspicious for a model
    of fraud/ok scored ROC-AUC with 'suspicious' as positive against the probability of 'ok' (0.1 for 0.9)."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"x": rng.normal(size=600)})
    y = np.where(X["x"] + rng.normal(scale=0.5, size=600) > 0, "ok", "fraud")
    model = LogisticRegression().fit(X, y)
    known = evaluate("classification", model, X, y)["roc_auc"]
    assert known > 0.9
    renamed = np.where(y == "fraud", "suspicious", "ok")  # "suspicious" sorts after "ok"
    assert evaluate("classification", model, X, renamed)["roc_auc"] == known
    assert "roc_auc" not in evaluate("classification", model, X, np.where(y == "ok", "OK", "FRAUD"))
