"""What the gate checks before comparing a candidate with production: a test set big enough, a baseline beaten.

A gate metric means something only when it is measured on enough rows, and only when it says the
model learned more than a rule with no features: on data with 2 % positives, a classifier that never
predicts a positive scores an accuracy of 0.98, and every candidate an F1 of 0; on 8 test rows a
ROC-AUC of 1.0 is luck. ``gather`` measures, on the candidate's own held-out rows (``eval_data``),
how many labelled rows there are, how many of each class, and what a trivial baseline scores there:
scikit-learn's ``DummyClassifier(strategy="most_frequent")`` (the majority class) for a classifier,
``DummyRegressor(strategy="mean")`` for a regressor. ``size_problem`` and ``baseline_problem`` say
why a candidate must not be promoted, in one line with the figures and the fix; the registry records
the baseline and the counts with the version's metrics, and the monitor does not alert against a
figure measured on too few rows.

Pure functions of a candidate: no database. pandas and scikit-learn are imported inside them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.registry import ModelCandidate

# Below 50 rows, the 95 % interval of an accuracy near 0.5 is wider than ±0.14 (1.96·√(0.25/50)): any
# margin is noise, and so is a comparison with production.
MIN_TEST_ROWS = 50
# A class with fewer than 10 rows among the test rows decides F1 and ROC-AUC by a handful of rows
# (3 positives: a ROC-AUC of 1.0 is one lucky ordering in a few), the rule of thumb of ten events per class.
MIN_CLASS_ROWS = 10
# Metrics in which every row counts the same: a class of 3 rows among 300 moves accuracy by 1 % at most,
# so the rows overall (MIN_TEST_ROWS) and the baseline decide whether it means anything, and a legitimately
# rare class does not bar the model. F1 (the positive class's, or the mean of the classes'), ROC-AUC and
# balanced accuracy weigh each class alike, so there those 3 rows decide a third of the figure: the
# per-class floor holds for them, and for any metric not named here.
PER_ROW_METRICS = frozenset({"accuracy"})
BASELINES = {"classification": "the majority-class baseline", "regression": "the mean baseline"}
# Stored with a version's metrics: the test-set size, and the baseline's figure of each metric.
TEST_ROWS = "test_rows"
MINORITY_ROWS = "test_minority_rows"
BASELINE_PREFIX = "baseline_"


@dataclass(frozen=True)
class Evidence:
    """How many rows a candidate's metrics were measured on, and what a trivial baseline scores there.

    Attributes:
        rows: labelled held-out rows, or None when the candidate kept none and did not say.
        minority: for a classifier, (its rarest class, its rows) among them; else None.
        positive_share: for a classifier, the share of rows not of the majority class.
        majority: the majority class (classification), which the baseline always predicts.
        classes: how many classes the labelled rows hold (classification).
        baseline: the baseline's metrics on the same rows (empty when it cannot be measured).
    """

    rows: int | None = None
    minority: tuple[Any, int] | None = None
    positive_share: float | None = None
    majority: Any = None
    classes: int | None = None
    baseline: dict[str, float] = field(default_factory=dict)

    def as_metrics(self) -> dict[str, float]:
        """The figures stored beside the version's metrics (``test_rows``, ``baseline_f1`` …)."""
        out: dict[str, float] = {f"{BASELINE_PREFIX}{k}": v for k, v in self.baseline.items()}
        if self.rows is not None:
            out[TEST_ROWS] = self.rows
        if self.minority is not None:
            out[MINORITY_ROWS] = self.minority[1]
        return out


def gather(candidate: ModelCandidate, baseline: bool = True) -> Evidence:
    """The evidence of ``candidate``: measured on its ``eval_data`` when it has labelled rows.

    ``baseline=False`` counts the rows only (the monitor needs no baseline).

    A candidate without usable ``eval_data`` may say it in its metrics (``test_rows``,
    ``baseline_<metric>``, as the registry stores them); otherwise nothing is known and the gate
    compares as before.
    """
    import pandas as pd

    data = candidate.eval_data
    if not isinstance(data, pd.DataFrame) or candidate.label not in data.columns:
        return _stated(candidate.metrics)
    labels = data[candidate.label].dropna()
    if not len(labels):
        return _stated(candidate.metrics)
    if candidate.task != "classification":
        return Evidence(rows=len(labels), baseline=_baseline(candidate.task, labels) if baseline else {})
    counts = labels.value_counts()
    minority = (_plain(counts.index[-1]), int(counts.iloc[-1]))
    return Evidence(rows=len(labels), minority=minority, positive_share=1 - float(counts.iloc[0]) / len(labels),
                    majority=_plain(counts.index[0]), classes=len(counts),
                    baseline=_baseline(candidate.task, labels) if baseline else {})


def _stated(metrics: dict[str, Any]) -> Evidence:
    """What a candidate without held-out rows says of them in its metrics; a NaN says nothing."""
    def count(name: str) -> int | None:
        value = metrics.get(name)
        return int(value) if isinstance(value, (int, float)) and math.isfinite(value) else None

    baseline = {k[len(BASELINE_PREFIX):]: float(v) for k, v in metrics.items()
                if k.startswith(BASELINE_PREFIX) and isinstance(v, (int, float)) and math.isfinite(v)}
    minority = count(MINORITY_ROWS)
    return Evidence(rows=count(TEST_ROWS), minority=None if minority is None else ("?", minority), baseline=baseline)


def _baseline(task: str, labels: Any) -> dict[str, float]:
    """The trivial baseline's metrics on ``labels``, by the same ``evaluate`` as the candidate's.

    The dummy is fitted on the held-out labels themselves, so it knows their majority class (or
    mean): a bar at least as high as one fitted on the training labels, which the candidate does
    not carry. With both classes among the rows, its classes are the model's, so F1 and ROC-AUC
    are of the same positive class (a constant score has a ROC-AUC of 0.5).
    """
    import numpy as np
    import pandas as pd
    from sklearn.dummy import DummyClassifier, DummyRegressor

    from orchestrator.model_frames import evaluate

    X = pd.DataFrame({"_": np.zeros(len(labels))})
    try:
        dummy = (DummyClassifier(strategy="most_frequent") if task == "classification"
                 else DummyRegressor(strategy="mean")).fit(X, labels)
        return evaluate(task, dummy, X, labels)
    except Exception:  # noqa: BLE001 - labels a baseline cannot take: the gate compares without one
        return {}


def size_problem(candidate: ModelCandidate, evidence: Evidence) -> str | None:
    """Why the test set is too small for ``candidate``'s gate metric to mean anything, or None."""
    metric, value = candidate.metric, candidate.metrics.get(candidate.metric)
    shown = f"{metric} {value:.4f}" if isinstance(value, (int, float)) and math.isfinite(value) else metric
    fix = "give more data, or hold out a larger share for testing (in the lifecycle pipeline, -p test_size=0.4)"
    if evidence.rows is not None and evidence.rows < MIN_TEST_ROWS:
        return (f"{shown} is measured on {evidence.rows} test rows, too few to mean anything (the gate needs "
                f"{MIN_TEST_ROWS}): {fix}")
    if candidate.task == "classification" and evidence.minority is not None \
            and evidence.minority[1] < MIN_CLASS_ROWS and metric not in PER_ROW_METRICS:
        label, count = evidence.minority
        which = f"class {label!r}" if label != "?" else "its rarest class"
        return (f"{shown} is measured on {evidence.rows if evidence.rows is not None else 'test'} rows of which "
                f"{count} are of {which}, too few to mean anything (the gate needs {MIN_CLASS_ROWS} of each "
                f"class for {metric}, which weighs each class alike): {fix}")
    return None


def baseline_problem(candidate: ModelCandidate, evidence: Evidence) -> str | None:
    """Why ``candidate`` does not beat the trivial baseline on its gate metric, or None.

    Beating means strictly better: a tie (an F1 of 0 against 0, an accuracy of 0.98 against 0.98
    on 2 % positives) is a model that learned nothing the majority class does not say.
    """
    from orchestrator.model_frames import higher_is_better

    metric, value = candidate.metric, candidate.metrics.get(candidate.metric)
    base = evidence.baseline.get(metric)
    if base is None or not isinstance(value, (int, float)) or not math.isfinite(base):
        return None  # a baseline that could not be measured (a NaN) bars nothing
    if (value > base) if higher_is_better(metric) else (value < base):
        return None
    name = BASELINES.get(candidate.task, "the baseline")
    what = f" (always predicting {evidence.majority!r})" if evidence.majority is not None else ""
    rows = f" on the same {evidence.rows} test rows" if evidence.rows is not None else ""
    return f"{metric} {value:.4f} does not beat {name} {base:.4f}{what}{rows}{_rare_class_hint(candidate, evidence)}"


def _rare_class_hint(candidate: ModelCandidate, evidence: Evidence) -> str:
    """``; only 2.0% of the rows are of class 1: ...``, the fixes of a rare class the candidate does not use yet.

    Weighting the classes is left out when the model weighs them already (a ``class_weight`` set on
    it or on a step of its pipeline), and a metric is left out when it is the gate metric or one the
    candidate could not measure (ROC-AUC of a model without probabilities): a run gating on roc_auc with
    class_weight='balanced' was told to do both. Empty unless a class is rare (under 20 % of the rows).
    """
    if candidate.task != "classification" or evidence.positive_share is None or evidence.positive_share >= 0.2:
        return ""
    rare = (f"are of class {evidence.minority[0]!r}" if evidence.minority and evidence.classes == 2
            else f"are not of class {evidence.majority!r}")
    fixes = [] if _weighs_classes(candidate.model) else ["weight the classes (class_weight='balanced')"]
    fixes.append("add features that tell them apart")
    metrics = [m for m in ("roc_auc", "balanced_accuracy") if m != candidate.metric and m in candidate.metrics]
    if metrics:
        fixes.append("gate on " + " or ".join(metrics))
    listed = fixes[0] if len(fixes) == 1 else ", ".join(fixes[:-1]) + ", or " + fixes[-1]
    return f"; only {evidence.positive_share:.1%} of the rows {rare}: {listed}"


def _weighs_classes(model: Any) -> bool:
    """Whether ``model``, or an estimator inside it (a pipeline's step), has a ``class_weight`` set."""
    get_params = getattr(model, "get_params", None)
    if not callable(get_params):
        return False
    try:
        params = get_params(deep=True)
    except Exception:  # noqa: BLE001 - an estimator that cannot list its parameters: weighting stays advised
        return False
    return any((key == "class_weight" or str(key).endswith("__class_weight")) and value not in (None, {})
               for key, value in params.items())


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
