"""A model and its frames: the training schema, evaluation metrics, and predictions checked against it.

The helpers a step uses to build a ``ModelCandidate`` (``describe_schema``,
``model_digest``, ``evaluate``) and those the server, ``load_model`` and the
monitor use to predict (``predict``, ``prediction_scores``, ``prediction_values``). Imports pandas
and scikit-learn only inside the functions that need them.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from orchestrator.errors import UserError
from orchestrator.hashing import hash_value
from orchestrator.model_checks import CLASSIFICATION_METRICS, LOWER_IS_BETTER, REGRESSION_METRICS, _shown

if TYPE_CHECKING:
    from collections.abc import Iterable

    import pandas as pd

    from orchestrator.registry import ModelCandidate


def describe_schema(frame: pd.DataFrame, categorical: Iterable[str] = ()) -> list[dict[str, Any]]:
    """The serving schema of a feature frame: each column's name, kind, dtype and categories.

    A ``datetime64`` column (also with a time zone) is a time (``"kind": "datetime"``, with the range
    it was trained on and its zone: ``feature_times.describe_time``), taken by a model whose own pipeline
    derives numbers from it. A column is a category when it holds text or True/False, or when ``categorical`` names it: the
    columns the model encodes as categories, whatever their dtype. A category written in numbers (a
    postcode, a store number) keeps its numeric dtype, and its categories are its codes' texts
    (``feature_codes.code_text``: ``75001.0`` is ``"75001"``). Described as a number, it was served
    and monitored as one: an unseen code got no warning, ``"75001"`` was refused, and the monitor
    compared codes by their size.

    Raises:
        UserError: a column name is not text, or ``categorical`` names a column the frame lacks.
            Requests (JSON), batches (CSV, Parquet) and the
            request log name columns with text, so a model fitted on columns ``0, 1, 2`` (a frame
            made from a numpy array) could never be served or monitored: every frame "had no
            columns 0, 1, 2" although it showed exactly those.
    """
    import pandas as pd

    named = [n for n in frame.columns if not isinstance(n, str)]
    if named:
        shown = ", ".join(repr(n) for n in named[:5]) + (" …" if len(named) > 5 else "")
        raise UserError(f"describe_schema: column names must be text, since requests, batches and the request log "
                        f"name columns with text; {len(named)} of {len(frame.columns)} are not ({shown}, "
                        f"{type(named[0]).__name__}). Name the columns before fitting the model, e.g. "
                        "frame.columns = [f'f{c}' for c in frame.columns].")
    categorical = list(categorical)
    absent = [n for n in categorical if n not in frame.columns]
    if absent:
        raise UserError(f"describe_schema: categorical names {_listed([str(n) for n in absent])}, which the frame "
                        f"has not (it has {_listed(list(frame.columns))}). Pass the names of its category columns.")
    from orchestrator.feature_times import describe_time

    out: list[dict[str, Any]] = []
    for name in frame.columns:
        col = frame[name]
        if pd.api.types.is_datetime64_any_dtype(col):
            # A time, even among ``categorical``: as a category, every training timestamp was listed,
            # every new date was 'not seen in training', and the monitor compared them as categories.
            out.append(describe_time(name, col))
        elif name in categorical and pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            out.append(_code_feature(name, col))
        elif pd.api.types.is_bool_dtype(col) or not pd.api.types.is_numeric_dtype(col):
            values = col.dropna().unique()
            cats = sorted({str(v) for v in values})
            # True/False with blanks (a CSV's yes/no column) is of dtype object: said to be "boolean",
            # the server takes JSON true/false for it, as the model was trained on, where it refused
            # them and took the text "True", which the model had never seen.
            flags = col.dtype == object and len(values) and all(pd.api.types.is_bool(v) for v in values)
            out.append({"name": str(name), "kind": "category", "dtype": "boolean" if flags else str(col.dtype),
                        "categories": cats})
        else:
            out.append({"name": str(name), "kind": "number", "dtype": str(col.dtype)})
    return out


def _code_feature(name: str, col: pd.Series) -> dict[str, Any]:
    """The schema of a category written in numbers: its dtype, and its codes' texts in the order of the numbers."""
    from orchestrator.feature_codes import code_text

    codes = sorted(col.dropna().unique())
    return {"name": name, "kind": "category", "dtype": str(col.dtype),
            "categories": list(dict.fromkeys(code_text(c) for c in codes))}


def model_digest(model: Any) -> str:
    """A model's identity: its content digest, equal for equal fitted models.

    The value hash, not the pickle's bytes: a model loaded back from the store
    pickles differently from the one just fitted, but hashes the same.
    """
    return hash_value(model)


def higher_is_better(metric: str) -> bool:
    return metric not in LOWER_IS_BETTER


def evaluate(task: str, model: Any, X: pd.DataFrame, y: Any) -> dict[str, float]:
    """Classification: accuracy, F1, ROC-AUC, balanced accuracy; regression: RMSE, MAE, R²; rounded to 4 places.

    Balanced accuracy (the mean recall of the classes) is what accuracy hides on imbalanced
    labels: a model that never predicts the 2 % minority scores an accuracy of 0.98 and a balanced
    accuracy of 0.5.

    ROC-AUC of a binary classifier is that of its second class; of a classifier with three or
    more classes, the unweighted mean of each class against the rest (one-vs-rest, macro),
    measured when the rows hold every class the model knows. A model without
    ``predict_proba`` has no ROC-AUC.
    """
    return scored_metrics(score(task, model, X, y))


def score(task: str, model: Any, X: pd.DataFrame, y: Any) -> _Scored:
    """``model``'s predictions on labelled rows, made once, for ``scored_metrics`` and ``worse_by_chance``."""
    return _Scored.of(task, model, X, y)


def scored_metrics(scored: _Scored) -> dict[str, float]:
    """``evaluate``'s metrics of rows scored once by ``score``."""
    names = CLASSIFICATION_METRICS if scored.task == "classification" else REGRESSION_METRICS
    out = {name: scored.metric(name) for name in names}
    return {k: round(float(v), 4) for k, v in out.items() if v is not None}


def unknown_labels(task: str, model: Any, y: Any) -> list[Any]:
    """The labels among ``y`` that a classifier was not trained on (none of its ``classes_``), in first-seen order.

    Scored anyway, such labels give a wrong figure rather than none: a binary ROC-AUC takes the
    larger label as positive, so labels ``ok``/``suspicious`` for a model of ``fraud``/``ok``
    scored 0.09 instead of 0.91, and labels written in another case (``SETOSA``) an accuracy of 0.
    Empty for a regressor, or a model without ``classes_``. Missing labels are not counted.
    """
    import pandas as pd

    classes = getattr(model, "classes_", None)
    if task != "classification" or classes is None:
        return []
    known = {_plain(c) for c in classes}
    return [_plain(v) for v in pd.unique(pd.Series(y).dropna()) if _plain(v) not in known]


class _Scored:
    """A model's predictions on labelled rows, computed once, and any metric of any subset of them."""

    def __init__(self, task: str, y: Any, predicted: Any, proba: Any, positive: Any,
                 classes: list[Any] | None = None) -> None:
        self.task, self.y, self.predicted, self.proba, self.positive = task, y, predicted, proba, positive
        # The model's classes when it has three or more: ``proba`` is then one column per class.
        self.classes = classes
        self._hits: Any = None  # which labels are the positive class, found when a ROC-AUC first needs it
        self._ties: Any = None  # each row's rank among the distinct probabilities, for a resample's ROC-AUC
        self._correct: Any = None  # which predictions equal their label, for a resample's accuracy

    @classmethod
    def of(cls, task: str, model: Any, X: pd.DataFrame, y: Any) -> _Scored:
        import numpy as np

        y = np.asarray(y)
        predicted = np.asarray(model.predict(X))
        proba, positive, many = None, None, None
        if task == "classification":
            # The positive class is the one whose probability `predict` reports (the second of two
            # classes_), so labels "no"/"yes" score F1 on "yes" instead of failing on pos_label=1.
            classes = list(getattr(model, "classes_", []))
            positive = classes[1] if len(classes) == 2 else 1
            if len(classes) > 2:
                many = classes
                # Three or more classes: keep every column, for a one-vs-rest ROC-AUC. Without it a
                # multiclass model had no roc_auc, and the shipped pipeline's default metric failed
                # its training step with KeyError: 'roc_auc'.
                if hasattr(model, "predict_proba"):
                    proba = np.asarray(model.predict_proba(X))
            elif hasattr(model, "predict_proba") and len(set(y.tolist())) == 2:
                proba = np.asarray(model.predict_proba(X))[:, 1]
        return cls(task, y, predicted, proba, positive, many)

    def metric(self, name: str, rows: Any = None) -> float | None:
        """``name`` over ``rows`` (indices; all rows when None); None when it cannot be measured there."""
        import numpy as np
        from sklearn import metrics as m

        if rows is not None and name in ("accuracy", "roc_auc") and self.classes is None:
            return self._resampled(name, rows)
        y, predicted = (self.y, self.predicted) if rows is None else (self.y[rows], self.predicted[rows])
        if name == "accuracy":
            return float(m.accuracy_score(y, predicted))
        if name == "balanced_accuracy":
            import warnings

            with warnings.catch_warnings():
                # Rows of one class (a small batch) are that class's recall, as defined, not a warning
                # printed under `orch monitor`'s verdict ('y_pred contains classes not in y_true').
                warnings.simplefilter("ignore")
                return float(m.balanced_accuracy_score(y, predicted))
        if name == "f1":
            # Binary or not is the model's own count of classes: rows of a three-class model that hold
            # two of them still need the multiclass F1 (binary F1 refuses a third predicted class).
            two = self.classes is None and len(set(y.tolist()) | set(predicted.tolist())) <= 2
            # No positive among the labels nor the predictions (rare classes, small batches) is an F1 of
            # 0, as sklearn's default says too, but without the UndefinedMetricWarning it printed under
            # `orch monitor`'s verdict.
            return float(m.f1_score(y, predicted, average="binary", pos_label=self.positive, zero_division=0) if two
                         else m.f1_score(y, predicted, average="macro", zero_division=0))
        if name == "roc_auc":
            proba = self.proba if rows is None or self.proba is None else self.proba[rows]
            if self.classes is not None:
                # One-vs-rest needs each class among the rows (and no label the model never saw).
                if proba is None or set(y.tolist()) != set(self.classes):
                    return None
                return float(m.roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=self.classes))
            if proba is None:
                return None
            # Of the positive class, as `proba` is: left to sklearn, the larger label of ``y`` was
            # taken as positive, so labels other than the model's (ok/suspicious for fraud/ok)
            # scored the wrong class (0.09 for 0.91). ``proba`` is kept only when the labels are two
            # values, so rows without both positives and negatives are rows of one label (no ROC-AUC):
            # the positives are found once, since comparing (or making a set of) 200,000 labels again
            # for each bootstrap resample made the check of a large batch take seconds.
            if self._hits is None:
                self._hits = np.asarray(self.y == self.positive, dtype=bool)
            hits = self._hits if rows is None else self._hits[rows]
            if hits.all() or not hits.any():
                return None
            return float(m.roc_auc_score(hits, proba))
        if name == "rmse":
            return math.sqrt(m.mean_squared_error(y, predicted))
        if name == "mae":
            return float(m.mean_absolute_error(y, predicted))
        if name == "r2":
            return float(m.r2_score(y, predicted))
        return None

    def _resampled(self, name: str, rows: Any) -> float | None:
        """Accuracy or a binary ROC-AUC over a bootstrap resample, in time linear in the rows.

        A resample is the scored rows, each counted as often as it was drawn: its ROC-AUC is the
        Mann-Whitney statistic of those counts over the probabilities sorted once (ties count
        half), which is what ``roc_auc_score`` gives for the resampled rows. scikit-learn sorted
        and checked the rows again in each of the 400 resamples: ``orch monitor`` of a 1000-row
        batch took 22 s for a model that kept 375,000 held-out rows.
        """
        import numpy as np

        if name == "accuracy":
            if self._correct is None:
                self._correct = np.asarray(self.y == self.predicted, dtype=bool)
            return float(self._correct[rows].mean())
        if self.proba is None:
            return None
        if self._hits is None:
            self._hits = np.asarray(self.y == self.positive, dtype=bool)
        if self._ties is None:
            self._ties = np.unique(self.proba, return_inverse=True)[1].ravel()
        drawn = np.bincount(rows, minlength=len(self.y)).astype(float)
        groups = int(self._ties.max()) + 1
        pos = np.bincount(self._ties, weights=drawn * self._hits, minlength=groups)
        neg = np.bincount(self._ties, weights=drawn * ~self._hits, minlength=groups)
        n_pos, n_neg = pos.sum(), neg.sum()
        if not n_pos or not n_neg:
            return None  # a resample of one label has no ROC-AUC
        below = np.cumsum(neg) - neg
        return float((pos * (below + 0.5 * neg)).sum() / (n_pos * n_neg))


BOOTSTRAP_ROUNDS = 200


def worse_by_chance(task: str, model: Any, metric: str, reference: tuple[pd.DataFrame, Any],
                    current: tuple[pd.DataFrame, Any] | _Scored, rounds: int = BOOTSTRAP_ROUNDS) -> float | None:
    """How likely ``metric`` is no worse on ``current`` than on ``reference``: a one-sided bootstrap p-value.

    Both sets of labelled rows are resampled ``rounds`` times (a fixed seed:
    the same data gives the same p-value); the p-value is the share of rounds
    in which the current rows did at least as well, so a small one says the
    model really got worse rather than drew a bad sample. Both sets are
    scored once (``current`` may be rows ``score`` scored already: the monitor measures their metric
    first, and scoring a large batch again took as long). None when the metric cannot be measured
    on either set.
    """
    import numpy as np

    before = _Scored.of(task, model, *reference)
    now = current if isinstance(current, _Scored) else _Scored.of(task, model, *current)
    if before.metric(metric) is None or now.metric(metric) is None:
        return None
    sign = 1.0 if higher_is_better(metric) else -1.0
    rng = np.random.default_rng(0)
    as_good = counted = 0
    for _ in range(rounds):
        a = before.metric(metric, rng.integers(0, len(before.y), len(before.y)))
        b = now.metric(metric, rng.integers(0, len(now.y), len(now.y)))
        if a is None or b is None:
            continue  # a resample with one class only has no ROC-AUC
        counted += 1
        as_good += sign * (b - a) >= 0
    return (as_good + 1) / (counted + 1) if counted else None


def check_columns(candidate: ModelCandidate, frame: pd.DataFrame) -> None:
    """Check that ``frame`` has every feature column of the training schema (extra columns are ignored).

    Raises:
        UserError: naming the missing columns (the first ten) and the expected ones.
    """
    import pandas as pd

    names = candidate.feature_names
    if not isinstance(frame, pd.DataFrame):
        raise UserError(f"model '{candidate.name}' predicts from a pandas DataFrame with the columns "
                        f"{_listed(names)}; got {type(frame).__name__}.")
    have = set(frame.columns)
    missing = [n for n in names if n not in have]
    if missing:
        raise UserError(f"model '{candidate.name}': the frame has no column{'s' if len(missing) > 1 else ''} "
                        f"{_listed(missing)}; the model expects {_listed(names)} (its training schema).")


def _listed(names: list[str], limit: int = 10) -> str:
    """``a, b, c`` or, past ``limit`` names, the first ones and ``… and N more``."""
    shown = ", ".join(_shown(n, 40) for n in names[:limit])
    return shown + (f" … and {len(names) - limit} more" if len(names) > limit else "")


def model_input(candidate: ModelCandidate, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame``'s feature columns as the model was trained on them: a missing category is NaN.

    A user's own frame may mark a blank category with ``pd.NA`` (pandas' ``string`` dtype, a
    Parquet file written from it) or ``None``; scikit-learn's imputer looks for NaN and failed
    on ``pd.NA`` ("boolean value of NA is ambiguous") or scored ``None`` as an unknown category.
    The shipped pipeline (``require_valid``), ``orch serve`` (``records_frame``) and ``orch
    monitor`` make those NaN, so ``load_model(...).predict`` does too, and the three score a row
    alike. A category written in numbers given as text (``"75001"``) is given as the number it was
    trained as (``feature_codes.as_codes``), and a time written as text (a CSV's ``2024-04-10 15:57``) the
    time of the training dtype (``feature_times.as_times``). Only a column that changes is copied; numbers are left as they are.
    """
    import numpy as np
    import pandas as pd

    from orchestrator.feature_codes import as_codes, is_code
    from orchestrator.feature_times import as_times, is_time

    X = frame[candidate.feature_names]
    changed = {}
    for feature in candidate.features:
        if feature["kind"] == "number":
            continue
        col = X[feature["name"]]
        if is_time(feature):
            times = as_times(col, feature)
            if times is not col:
                changed[feature["name"]] = times
            continue
        if is_code(feature):
            codes = as_codes(col)
            if codes is not col:
                changed[feature["name"]] = codes
            continue
        if isinstance(col.dtype, pd.CategoricalDtype) or not (col.dtype == object or pd.api.types.is_string_dtype(col)):
            continue
        missing = col.isna()
        if missing.any() and any(not isinstance(v, float) for v in col[missing]):
            changed[feature["name"]] = col.astype(object).where(~missing, np.nan)
    return X.assign(**changed) if changed else X


def predict(candidate: ModelCandidate, frame: pd.DataFrame) -> dict[str, list[Any]]:
    """Predictions for ``frame``: ``prediction`` and, for a binary classifier, ``probability``.

    Raises:
        UserError: ``frame`` lacks a feature column of the training schema.
    """
    check_columns(candidate, frame)
    X = model_input(candidate, frame)
    out: dict[str, list[Any]] = {"prediction": [_plain(v) for v in candidate.model.predict(X)]}
    if candidate.task == "classification" and hasattr(candidate.model, "predict_proba"):
        proba = candidate.model.predict_proba(X)
        if proba.shape[1] == 2:
            out["probability"] = [round(float(p), 6) for p in proba[:, 1]]
    return out


def prediction_scores(candidate: ModelCandidate, frame: pd.DataFrame) -> list[float]:
    """One number per row to watch for prediction drift: the positive-class probability, else the prediction."""
    preds = predict(candidate, frame)
    return [float(v) for v in preds.get("probability", preds["prediction"])]


def prediction_values(candidate: ModelCandidate, frame: pd.DataFrame) -> tuple[str, list[Any]]:
    """What to watch for prediction drift, and its kind: ``("number", scores)`` or ``("category", classes)``.

    A binary classifier's positive-class probability and a regressor's prediction are numbers;
    the predicted class of any other classifier (three or more classes, or no
    ``predict_proba``) is a category, compared like a categorical feature: its labels may be
    text (``"setosa"``), which are no number, and class ids 0, 1, 2 have no order worth a KS test.
    """
    preds = predict(candidate, frame)
    if "probability" in preds or candidate.task != "classification":
        return "number", [float(v) for v in preds.get("probability", preds["prediction"])]
    return "category", [str(v) for v in preds["prediction"]]


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
