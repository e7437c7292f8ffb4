"""Quickstart: a small, real training pipeline on a dataset that ships with scikit-learn.

    orch run pipelines/quickstart.py                 # first run: every step runs
    orch run pipelines/quickstart.py                 # second run: every step is cached
    orch run pipelines/quickstart.py -p C=0.5        # only train and evaluate re-run
    orch plan pipelines/quickstart.py -p C=0.5       # ...and says why, before running
    orch run pipelines/quickstart.py -p data=my.csv  # your own CSV (with a `target` column)
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from helpers import clean_columns, clip_outliers

from orchestrator import Metrics, pipeline, step


@step
def load(data: Path | None) -> pd.DataFrame:
    """Read a CSV with a `target` column, or the breast-cancer dataset bundled with scikit-learn."""
    if data is not None:
        return pd.read_csv(data)
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer(as_frame=True).frame


@step
def prepare(raw: pd.DataFrame) -> pd.DataFrame:
    frame = clean_columns(raw).dropna()
    features = [c for c in frame.columns if c != "target"]
    return clip_outliers(frame, features)


@step
def split(frame: pd.DataFrame, test_size: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(frame, test_size=test_size, random_state=seed, stratify=frame["target"])
    return train, test


@step
def train(frame: pd.DataFrame, C: float, seed: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000, random_state=seed))
    return model.fit(frame.drop(columns="target"), frame["target"])


@step
def evaluate(model, test: pd.DataFrame) -> Metrics:
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    X, y = test.drop(columns="target"), test["target"]
    scores = model.predict_proba(X)[:, 1]
    predicted = model.predict(X)
    return Metrics(
        accuracy=round(float(accuracy_score(y, predicted)), 4),
        f1=round(float(f1_score(y, predicted)), 4),
        roc_auc=round(float(roc_auc_score(y, scores)), 4),
    )


@pipeline
def quickstart(data: Path | None = None, C: float = 1.0, test_size: float = 0.25, seed: int = 7):
    raw = load(data)
    frame = prepare(raw)
    train_set, test_set = split(frame, test_size=test_size, seed=seed)
    model = train(train_set, C=C, seed=seed)
    return evaluate(model, test_set)
