"""One artifact per stored format (Arrow table, JSON, pickle), all large enough to be object files."""

import numpy as np
import pandas as pd
from recorder import record

from orchestrator import pipeline, step


@step
def table(n: int) -> pd.DataFrame:
    record("table")
    return pd.DataFrame({"a": np.arange(n), "b": np.arange(n) * 0.5, "c": [f"r{i}" for i in range(n)]})


@step
def doc(n: int) -> dict:
    record("doc")
    return {"items": list(range(n)), "name": "doc"}


@step
def obj(n: int) -> set:
    record("obj")
    return set(range(n))


@step
def summary(t: pd.DataFrame, d: dict, o: set, k: int) -> int:
    record("summary")
    return len(t) + len(d["items"]) + len(o) + k


@pipeline
def typed(n: int = 3000, k: int = 0):
    return summary(table(n), doc(n), obj(n), k)
