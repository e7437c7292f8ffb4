"""The ML lifecycle, start to finish: ingest → validate → split → features → train → evaluate → register.

    orch run pipelines/lifecycle.py                          # everything, on the seeded demo data
    orch run pipelines/lifecycle.py -p 'C=[0.5, 2.0]'        # another candidate grid: only training re-runs
    orch run pipelines/lifecycle.py -p model=boosting        # gradient boosting candidates (max_depth grid)
    orch run pipelines/lifecycle.py -p data=my.csv           # your own file (same columns; or edit LABEL,
                                                             #   KEY, NUMERIC, CATEGORICAL, EXPECTATIONS, TASK)
    orch run pipelines/lifecycle.py -p monitor_batch=data/lifecycle/batch_drifted.parquet
    orch models show churn@production                        # what the gate decided, and why

The data source step writes a seeded file once (``datasource.py``); the file
is identified by its content, so new data re-runs exactly what depends on it. The last step
returns a ``ModelCandidate``: the run's driver registers it in the store's
model registry and promotes it only if it beats production by ``margin`` on
``metric`` (see docs/lifecycle.md). The model is plain scikit-learn, so it
loads anywhere ``orchestrator`` is installed, without this folder.
"""

from __future__ import annotations

import json
import math
import numbers
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from datasource import TRAIN_FILE, ensure_dataset
from expectations import Expectation, check_features, check_frame, columns, raise_for_failures

from orchestrator import Metrics, pipeline, step
from orchestrator.errors import ParameterError
from orchestrator.monitor import DriftCheck
from orchestrator.registry import (
    ModelCandidate,
    check_gate_settings,
    check_model_name,
    describe_schema,
    evaluate,
    model_digest,
)

LABEL = "churned"
TASK = "classification"  # "regression" for a continuous LABEL (then -p metric=rmse, mae or r2)
KEY = "customer_id"
# Each class weighs as much as the others in training (scikit-learn's class_weight="balanced"): with
# few positives (2 % fraud, churn), an unweighted classifier predicts the majority class for every row
# (an accuracy of 0.98 and an F1 of 0) and the gate refuses it. The probabilities it serves are then those
# of balanced classes, higher than the real rate of the rare class; None gives unweighted, calibrated ones.
CLASS_WEIGHT: str | None = "balanced"
NUMERIC = ["age", "tenure_months", "monthly_charges", "total_charges", "support_calls"]
CATEGORICAL = ["contract", "payment_method", "region"]
EXPECTATIONS = [
    *columns(**{KEY: "number", LABEL: "number"}, **dict.fromkeys(NUMERIC, "number"),
             **dict.fromkeys(CATEGORICAL, "category")),
    Expectation("rows", low=200, high=5_000_000),
    Expectation("unique", KEY),
    Expectation("range", "age", low=18, high=110),
    Expectation("range", "tenure_months", low=0, high=600),
    Expectation("range", "monthly_charges", low=0, high=10_000),
    Expectation("range", LABEL, low=0, high=1),
    Expectation("categories", "contract", allowed=("month-to-month", "one-year", "two-year")),
    Expectation("categories", "payment_method", allowed=("card", "bank", "check", "wallet")),
    Expectation("nulls", "age", max_ratio=0.1),
    Expectation("nulls", "total_charges", max_ratio=0.1),
    Expectation("nulls", "region", max_ratio=0.2),
    Expectation("nulls", LABEL, max_ratio=0.0),
    Expectation("nulls", "contract", max_ratio=0.0),
]


@dataclass(frozen=True)
class Hyperparameter:
    """A hyperparameter of a model's estimator: the values scikit-learn takes for it, what it does, an example."""

    name: str
    does: str  # said when a value is refused: "how deep each tree grows"
    example: str  # what to pass instead, the default: "[3, 6]" for a grid, "0.1" for one value
    whole: bool = False  # a whole number of 1 or more (or null for no limit); else a number above 0
    grid: bool = True  # a list of candidate values (one candidate each), or one value for every candidate

    def takes(self, many: bool = False) -> str:
        """``a number above 0`` (``numbers above 0`` when ``many``): what the estimator takes, for a message."""
        if self.whole:
            return ("whole numbers" if many else "a whole number") + " of 1 or more, or null for no limit"
        return ("numbers" if many else "a number") + " above 0"

    def accepts(self, value: Any) -> bool:
        """Whether the estimator takes ``value`` (scikit-learn's own check, made only once a candidate trains)."""
        if self.whole and value is None:
            return True
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            return False
        return bool(isinstance(value, numbers.Integral) and value >= 1 if self.whole else value > 0)

    def shown(self, value: Any) -> str:
        """``value`` as -p takes it (JSON); a whole float, which scikit-learn refuses for a depth, says how to write it."""
        whole_float = self.whole and isinstance(value, float) and value.is_integer()
        return json.dumps(value) + (f" (write {int(value)})" if whole_float else "")


# Each model's hyperparameters (the first is its candidate grid). A value its estimator refuses failed every
# train_candidate with scikit-learn's InvalidParameterError, after ingest, validation and the split.
HYPERPARAMETERS = {
    "logistic": (Hyperparameter("C", "the inverse of the regularization strength", "[0.1, 1.0, 10.0]"),),
    "boosting": (Hyperparameter("max_depth", "how deep each tree grows", "[3, 6]", whole=True),
                 Hyperparameter("learning_rate", "how much each tree corrects the ones before it", "0.1", grid=False)),
}


def check_search(model: str, values: dict[str, Any]) -> None:
    """Stop before any step runs on a model this pipeline does not train, an empty candidate grid, or a
    hyperparameter value the model's estimator refuses (every problem of the model's hyperparameters at once).

    Any other ``model`` used to train logistic regressions silently (``-p model=boostng``), an
    empty grid failed in ``select_best`` with ``max() arg is an empty sequence``, and ``C=[0]`` or
    ``learning_rate=0`` failed every candidate with scikit-learn's ``InvalidParameterError``.
    """
    import difflib

    if model not in HYPERPARAMETERS:
        close = difflib.get_close_matches(str(model), list(HYPERPARAMETERS), n=1)
        raise ParameterError(f"model {model!r} is not one of {', '.join(HYPERPARAMETERS)}"
                             + (f". Did you mean '{close[0]}'?" if close else "; pass -p model=logistic or boosting."))
    grid = HYPERPARAMETERS[model][0]
    if len(values[grid.name]) == 0:  # not `not`: a grid given as a numpy array has no truth value
        raise ParameterError(f"the candidate grid {grid.name}=[] of model {model!r} is empty; give at least one value "
                             f"(e.g. -p '{grid.name}={grid.example}').")
    problems = [_refused(h, model, values[h.name]) for h in HYPERPARAMETERS[model]]
    if any(problems):
        raise ParameterError("; ".join(p for p in problems if p))


def _refused(hyperparameter: Hyperparameter, model: str, value: Any) -> str:
    """What is wrong with the value(s) of ``hyperparameter``, and what to pass instead; empty when all are taken."""
    h = hyperparameter
    if h.grid and not isinstance(value, (list, tuple)):
        value = value.tolist() if hasattr(value, "tolist") else list(value)  # a numpy array, from Python
    given = value if h.grid else [value]
    bad = [v for v in given if not h.accepts(v)]
    if not bad:
        return ""
    fix = f"({h.name} is {h.does}). Pass e.g. -p " + (f"'{h.name}={h.example}'." if h.grid else f"{h.name}={h.example}.")
    if not h.grid:
        return f"{h.name}={json.dumps(value)} of model {model!r} is not {h.takes()} {fix}"
    which = " and ".join(h.shown(v) for v in bad[:5]) + (" …" if len(bad) > 5 else "")
    return (f"{h.name}={json.dumps(value)} of model {model!r} holds {which}, which "
            f"{'is' if len(bad) == 1 else 'are'} not {h.takes(many=len(bad) > 1)} {fix}")


def check_test_size(test_size: float) -> None:
    """Refuse a test share outside (0, 1) before any step runs (it failed ``split`` after ingest and validation)."""
    if not 0 < test_size < 1:
        raise ParameterError(f"test_size {test_size:g} is not between 0 and 1: it is the share of rows held out "
                             "for testing. Pass e.g. -p test_size=0.25.")


def check_data(data: Path) -> None:
    """Refuse a missing data file, unless it is the demo's own (which ``source`` then writes).

    Generating wherever a file is missing turned a typo (``-p data=data/churn.cvs``) into a
    model trained, and possibly promoted, on synthetic data. A folder or a file ``ingest``
    cannot read (``.xlsx``) failed that step with ``IsADirectoryError`` or ``UnicodeDecodeError``.
    """
    if Path(data).is_dir():
        raise ParameterError(f"data file {data} is a folder. Pass a CSV or Parquet file in it to -p data.")
    if not Path(data).exists() and Path(data).resolve() != TRAIN_FILE.resolve():
        raise ParameterError(f"data file {data} does not exist. Pass an existing CSV or Parquet file, or leave "
                             f"out -p data to use the seeded demo data ({TRAIN_FILE}).")
    check_readable(data, "data file", "-p data")
    check_rows(data, "data file", "-p data")


def check_batch(batch: Path | None) -> None:
    """Refuse a ``monitor_batch`` that is not a file, before any step runs.

    Otherwise the whole pipeline trained, gated and registered first, and then the run failed
    (exit 1) on ``FileNotFoundError: [Errno 2] No such file or directory``, as if a step broke.
    """
    if batch is not None and not Path(batch).is_file():
        what = "is a folder" if Path(batch).is_dir() else "does not exist"
        raise ParameterError(f"monitor batch {batch} {what}. Pass an existing CSV or Parquet file to "
                             "-p monitor_batch, or leave it out to train without a drift check.")
    if batch is not None:
        check_readable(batch, "monitor batch", "-p monitor_batch")
        check_rows(batch, "monitor batch", "-p monitor_batch")
        check_batch_columns(batch)


def check_batch_columns(batch: Path) -> None:
    """Refuse a monitor batch that has none of the model's feature columns, before any step runs.

    A batch of another table (an edited copy's own file, the wrong export) trained, gated and
    registered the model first, and then its drift check compared no column at all.
    """
    features = [*NUMERIC, *CATEGORICAL]
    try:
        if Path(batch).suffix.lower() in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            has = list(pq.read_schema(batch).names)
        else:
            has = [str(c) for c in pd.read_csv(batch, nrows=0).columns]
    except Exception:  # noqa: BLE001 - unreadable: ingest says why, naming the encoding or the format
        return
    if not set(has) & set(features):
        shown = ", ".join(has[:8]) + (" ..." if len(has) > 8 else "")
        raise ParameterError(f"monitor batch {batch} has none of the model's feature columns ({', '.join(features)}); "
                             f"its columns are {shown}. Pass a batch of the same table to -p monitor_batch.")


READABLE = (".csv", ".txt", ".parquet", ".pq")  # what ``ingest`` reads (CSV also compressed: .csv.gz)
COMPRESSED = (".gz", ".bz2", ".zip", ".xz", ".zst")


def check_readable(path: Path, what: str, flag: str) -> None:
    """Refuse a file ``ingest`` does not read by its extension (``ingest`` reads any other as CSV)."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] in COMPRESSED:
        suffixes.pop()
    if not suffixes or suffixes[-1] not in READABLE:
        raise ParameterError(f"{what} {path} is not a .csv or .parquet file; this pipeline reads CSV (comma-separated) "
                             f"and Parquet. Save it as one of them (e.g. DataFrame.to_parquet) and pass it to {flag}.")


def check_rows(path: Path, what: str, flag: str) -> None:
    """Refuse a file of no rows: empty (0 bytes), or a header only, as ``orch monitor --batch`` does.

    An empty CSV failed step ``ingest`` with pandas' ``EmptyDataError: No columns to parse from
    file``, and a header-only one each expectation of a number column (``columns expected number,
    got object``), as if the columns were wrong. Only the first row is read (Parquet: its footer).
    """
    path = Path(path)
    if not path.is_file():
        return  # the demo's own file, written by the source step
    if path.stat().st_size == 0:
        raise ParameterError(f"{what} {path} is empty (0 bytes). Pass a file with a header and rows to {flag}.")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            rows = pq.ParquetFile(path).metadata.num_rows
        else:
            rows = len(pd.read_csv(path, nrows=1))
    except pd.errors.EmptyDataError:
        rows = 0  # blank lines only
    except Exception:  # noqa: BLE001 - unreadable: ingest says why, naming the encoding or the format
        return
    if rows == 0:
        raise ParameterError(f"{what} {path} has no rows (a header at most). Pass a file with a header and rows "
                             f"to {flag}.")


@step
def source(data: Path, rows: int, seed: int, demo: bool = False) -> Path:
    """The data source: the file at ``data``; the demo's own file is written by the seeded generator when missing,
    and again when ``rows`` or ``seed`` differ from those it was written with.

    It returns the path, and a path output is identified by the file's content, so editing or
    replacing the file re-runs exactly what reads it (your own file is never overwritten).
    """
    # The demo's own file (``demo``) follows -p rows and -p seed, written again when made with others;
    # yours is kept as it is.
    return ensure_dataset(data, rows=rows, seed=seed, resize=demo)


@step
def ingest(path: Path) -> pd.DataFrame:
    """Read the raw table (CSV or Parquet, by extension)."""
    if path.suffix.lower() in (".parquet", ".pq"):
        return pd.read_parquet(path)
    try:
        return pd.read_csv(path)
    except UnicodeDecodeError:  # Excel's "Unicode text" (UTF-16) or a Latin-1 export: say what to save instead
        with open(path, "rb") as f:
            utf16 = f.read(2) in (b"\xff\xfe", b"\xfe\xff")
        encoding = "it is UTF-16" if utf16 else "it is in another encoding, e.g. Latin-1"
        raise ValueError(f"{path} is not UTF-8 text ({encoding}). Save it as 'CSV UTF-8' (Excel), with "
                         "DataFrame.to_csv(path, index=False), or as Parquet.") from None


@step
def validate(raw: pd.DataFrame) -> dict:
    """Check the declared expectations; the report is stored whether or not they pass."""
    return check_frame(raw, EXPECTATIONS)


@step
def require_valid(raw: pd.DataFrame, report: dict) -> pd.DataFrame:
    """Stop the run with the failed checks, one readable line, when the data broke an expectation.

    The declared LABEL, KEY, NUMERIC and CATEGORICAL are checked against the data too, whatever
    EXPECTATIONS declares: a misspelt column, text or dates among the numbers, the label or the key
    among the features, text in the label of a regression are said here, naming the column and the
    fix, rather than by scikit-learn.
    """
    raise_for_failures(report)
    check_features(raw, NUMERIC, CATEGORICAL, LABEL, KEY, task=TASK)
    return _plain_columns(raw[[*NUMERIC, *CATEGORICAL, LABEL]])


def _plain_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with numbers written as text made numbers, and ``pd.NA`` in a text category made NaN.

    A column of NUMERIC written as text (``'12'``, as a Parquet file of strings holds it) trained,
    but its schema said category: the server then refused a number for it, and the monitor compared
    it as categories. The label of a regression written so is made numbers too (its metrics take no
    text). A Parquet file written from pandas' ``string`` dtype reads back with ``pd.NA``
    for a blank: scikit-learn's imputer failed every candidate on it (``TypeError: boolean value of
    NA is ambiguous``); the server and the monitor give the model NaN for a missing category too.
    """
    import numpy as np

    changed = {}  # only the columns that change: a copy of the whole frame doubled the memory of a large one
    for name in [*NUMERIC, *([LABEL] if TASK == "regression" else [])]:
        if not pd.api.types.is_numeric_dtype(frame[name]) and not pd.api.types.is_bool_dtype(frame[name]):
            changed[name] = pd.to_numeric(frame[name])  # check_features found no text that is not a number
    for name in CATEGORICAL:
        col = frame[name]
        if pd.api.types.is_string_dtype(col) and getattr(col.dtype, "na_value", None) is pd.NA:
            changed[name] = col.astype(object).where(col.notna(), np.nan)
    return frame.assign(**changed) if changed else frame


@step
def split(frame: pd.DataFrame, test_size: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A seeded, stratified split."""
    from sklearn.model_selection import train_test_split

    if TASK == "classification":
        check_classes(frame[LABEL])
    a, b = train_test_split(frame, test_size=test_size, random_state=seed, stratify=frame[LABEL] if TASK == "classification" else None)
    return a, b


def check_classes(labels: pd.Series) -> None:
    """Refuse labels a stratified split cannot divide, saying which class and what to do.

    sklearn said ``The least populated classes in y have only 1 member ... groups``, or, for one
    class only, failed every candidate later with ``This solver needs samples of at least 2 classes``.
    """
    counts = labels.value_counts()
    if len(counts) < 2:
        raise ValueError(f"the label '{LABEL}' has one class only ({counts.index.tolist()[0]!r}) in these {len(labels)} rows: "
                         "a classifier needs rows of two or more classes. Give data with other labels too "
                         "(or set TASK = \"regression\" for a continuous label).")
    rare = counts[counts < 2]
    if len(rare) and pd.api.types.is_numeric_dtype(labels) and len(counts) > 20:
        # A continuous label with the template's TASK = "classification" left in place: hundreds of "classes".
        raise ValueError(f"the label '{LABEL}' has {len(counts)} distinct numbers in these {len(labels)} rows, "
                         f"{len(rare)} of them in one row only: it looks continuous. Set TASK = \"regression\" "
                         "in the pipeline and pass -p metric=rmse (or mae, r2).")
    if len(rare):
        shown = ", ".join(repr(c) for c in rare.index.tolist()[:5]) + (" …" if len(rare) > 5 else "")
        raise ValueError(f"the label '{LABEL}' has only 1 row of the class{'es' if len(rare) > 1 else ''} {shown} in "
                         f"these {len(labels)} rows: a stratified split needs at least 2 rows of each class (and the "
                         "training part is split again for validation). Add rows of it to the data, or drop it.")


def _features(model: str, frame: pd.DataFrame) -> Any:
    """Impute and scale the numbers; impute and encode the categories, as the estimator ``model`` takes them.

    ``logistic`` gets one-hot columns (sparse when there are many categories). ``boosting`` gets one
    ordinal code per category column instead: its trees need dense input, and a dense one-hot of a
    category with thousands of levels failed every candidate (``Sparse data was passed for X, but
    dense data is required``) or would not fit in memory. A column with no value at all is kept (as
    0): dropping it made scikit-learn warn on every prediction the server and the monitor made.

    A category written in numbers in ``frame`` (a store or postcode number), or in True/False, is
    encoded as it is, a missing value being a category of its own: filled with the text "missing" it
    mixed numbers with text, which the encoder refused (``Encoders require their input argument must
    be uniformly strings or numbers. Got ['float', 'str']``, or ``['bool', 'str']``).
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    def encoder() -> Any:
        return (OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-2)
                if model == "boosting" else OneHotEncoder(handle_unknown="ignore"))

    codes = [c for c in CATEGORICAL if pd.api.types.is_numeric_dtype(frame[c]) or _flags(frame[c])]
    return ColumnTransformer([
        ("number", make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler()),
         NUMERIC),
        ("category", make_pipeline(SimpleImputer(strategy="constant", fill_value="missing"), encoder()),
         [c for c in CATEGORICAL if c not in codes]),
        ("code", encoder(), codes),
    ])


def _flags(col: pd.Series) -> bool:
    """Whether ``col`` holds True/False only, blanks aside (read from a CSV with blanks, it is of dtype object)."""
    values = col.dropna()
    return pd.api.types.is_bool_dtype(col) or (len(values) > 0 and all(pd.api.types.is_bool(v) for v in values.unique()))


def _estimator(params: dict, seed: int) -> Any:
    """The candidate's estimator; for ``TASK = "regression"``, the regressor of the same family.

    A classifier weighs its classes by ``CLASS_WEIGHT`` (balanced: a rare class counts as much as a
    common one, as scikit-learn users set it for imbalanced labels).

    ``logistic`` is then a ridge regression with ``alpha = 1/C`` (``C`` is the inverse of the
    regularization strength in both), and ``boosting`` the gradient-boosting regressor.
    """
    if params["model"] == "boosting":
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        boosting = HistGradientBoostingRegressor if TASK == "regression" else HistGradientBoostingClassifier
        weights = {} if TASK == "regression" else {"class_weight": CLASS_WEIGHT}
        return boosting(max_depth=params["max_depth"], learning_rate=params["learning_rate"], max_iter=100,
                        random_state=seed, **weights)
    if TASK == "regression":
        from sklearn.linear_model import Ridge

        return Ridge(alpha=1 / params["C"])
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=params["C"], max_iter=2000, class_weight=CLASS_WEIGHT)


@step
def train_candidate(params: dict, fit: pd.DataFrame, valid: pd.DataFrame, seed: int, metric: str) -> dict:
    """Fit one candidate (features + estimator) and score it on the validation rows."""
    from sklearn.pipeline import Pipeline

    model = Pipeline([("features", _features(params["model"], fit)), ("model", _estimator(params, seed))])
    model.fit(fit[NUMERIC + CATEGORICAL], fit[LABEL])
    scores = evaluate(TASK, model, valid[NUMERIC + CATEGORICAL], valid[LABEL])
    if metric not in scores:  # was KeyError: 'roc_auc' when a rare class had no row among the validation rows
        raise ValueError(f"{metric} cannot be measured on the {len(valid)} validation rows, which hold "
                         f"{valid[LABEL].nunique()} of the label's classes: give more rows, or -p metric=accuracy "
                         "or f1.")
    return {"params": params, "model": model, "validation": scores, "score": scores[metric]}


@step
def select_best(candidates: list, metric: str) -> dict:
    """The candidate with the best validation score (the first one on a tie)."""
    lower = metric in ("rmse", "mae")
    best = min(candidates, key=lambda c: c["score"]) if lower else max(candidates, key=lambda c: c["score"])
    board = [{"params": c["params"], metric: c["score"]} for c in candidates]
    return {**best, "leaderboard": board}


@step
def assess(best: dict, test: pd.DataFrame) -> Metrics:
    """Test-set metrics of the chosen model, recorded on the run."""
    return Metrics(evaluate(TASK, best["model"], test[NUMERIC + CATEGORICAL], test[LABEL]))


@step(untracked="data_params")  # it records the data file's name with the model; it does not read the file
def package(best: dict, train: pd.DataFrame, test: pd.DataFrame, metrics: dict, name: str, metric: str,
            margin: float, data_params: dict) -> ModelCandidate:
    """Offer the model to the registry; the driver registers, gates and maybe promotes it.

    The drift reference is drawn from the held-out test rows, not the training rows: a model that
    fits its training rows closely (boosting, a category of many levels) predicts differently on
    them than on any new rows, so its predictions on unchanged data 'drifted' from the training ones.
    """
    features = train[NUMERIC + CATEGORICAL]
    held_out = test[NUMERIC + CATEGORICAL]
    return ModelCandidate(
        name=name, model=best["model"], task=TASK, features=describe_schema(features, categorical=CATEGORICAL),
        label=LABEL, metrics=dict(metrics), metric=metric, margin=margin,
        model_digest=model_digest(best["model"]), params={**best["params"], **data_params},
        eval_data=test.reset_index(drop=True), reference=held_out.sample(min(len(held_out), 3000), random_state=0)
        .reset_index(drop=True), key=KEY,
    )


@step
def monitor(candidate: ModelCandidate, batch: pd.DataFrame, source: str) -> DriftCheck:
    """Compare a new batch with the training reference; the driver records the result."""
    from orchestrator.monitor import compare, refuse_foreign_batch

    refuse_foreign_batch(candidate, batch, source)
    return DriftCheck(candidate.name, candidate.model_digest, source, compare(candidate, batch))


DEMO_ROWS = 4000  # rows of the generated demo data


@pipeline
def lifecycle(data: Path = TRAIN_FILE, rows: int = DEMO_ROWS, seed: int = 0, model_name: str = "churn",
              model: str = "logistic", C: list = [0.1, 1.0, 10.0], max_depth: list = [3, 6],  # noqa: B006
              learning_rate: float = 0.1, test_size: float = 0.25, metric: str = "roc_auc",
              margin: float = 0.002, monitor_batch: Path | None = None):
    check_gate_settings(TASK, metric, margin)  # a wrong -p metric/margin stops here
    check_model_name(model_name)  # so does a model name the registry refuses (after training, before)
    # so does an unknown -p model, an empty grid, or a value its estimator refuses (C=[0], learning_rate=0)
    check_search(model, {"C": C, "max_depth": max_depth, "learning_rate": learning_rate})
    check_test_size(test_size)  # or a test share that is no share
    check_data(data)  # and a data file that is not there
    check_batch(monitor_batch)  # or a batch to monitor that is not there
    demo = Path(data).resolve() == TRAIN_FILE.resolve()
    if not demo and rows != DEMO_ROWS:
        warnings.warn(f"rows={rows} has no effect: it sizes the generated demo data, and {data} is your own file, "
                      "used as it is. Drop rows, or leave out data to run on the demo data.", stacklevel=1)
    raw = ingest(source(data, rows=rows, seed=seed, demo=demo))
    report = validate(raw)
    clean = require_valid(raw, report)
    train_set, test_set = split(clean, test_size=test_size, seed=seed)
    fit_set, valid_set = split.alias("split_validation")(train_set, test_size=0.25, seed=seed)
    if model == "boosting":
        grid = [{"model": "boosting", "max_depth": d, "learning_rate": learning_rate} for d in max_depth]
    else:
        grid = [{"model": "logistic", "C": c} for c in C]
    candidates = train_candidate.map(grid, fit=fit_set, valid=valid_set, seed=seed, metric=metric)
    best = select_best(candidates, metric=metric)
    metrics = assess(best, test_set)
    candidate = package(best, train_set, test_set, metrics, name=model_name, metric=metric, margin=margin,
                        data_params={"data": str(data), "seed": seed, "test_size": test_size})
    if monitor_batch is not None:
        batch = ingest.alias("ingest_batch")(monitor_batch)
        monitor(candidate, batch, source=f"batch {monitor_batch}")
    return metrics
