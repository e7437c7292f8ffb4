"""For killing a run at random moments: small values (inline), frames and arrays of a few MB
(objects), a map of four items, a step that fails its first attempt, and a cache=False step."""

import os
from pathlib import Path

import numpy as np
import pandas as pd

from orchestrator import pipeline, step


@step
def config(seed: int) -> dict:
    return {"seed": seed, "rows": 60_000}


@step
def frame(cfg: dict) -> pd.DataFrame:
    rng = np.random.default_rng(cfg["seed"])
    return pd.DataFrame(rng.standard_normal((cfg["rows"], 8)), columns=[f"c{i}" for i in range(8)])


@step
def array(cfg: dict) -> np.ndarray:
    return np.random.default_rng(cfg["seed"] + 1).standard_normal(600_000)


@step
def means(df: pd.DataFrame) -> dict:
    return {k: float(v) for k, v in df.mean().items()}


@step
def items(n: int) -> list:
    return list(range(n))


@step
def part(i: int, a: np.ndarray) -> np.ndarray:
    return a[i::4] * (i + 1)


@step
def part_sum(x: np.ndarray) -> float:
    return float(x.sum())


@step(retries=1, retry_delay=0.01)
def flaky(parts: list) -> float:
    mark = Path(os.environ["ORCH_TEST_LOG"] + ".flaky")  # the test removes it before each run
    if not mark.exists():
        mark.write_text("failed once")
        raise ConnectionError("the first attempt fails")
    return float(sum(parts))


@step(cache=False)
def rounded(x: float) -> float:
    return round(x, 6)


@step
def summary(m: dict, t: float, r: float) -> str:
    return f"{len(m)} {t:.6f} {r}"


@pipeline
def kill_mix(seed: int = 0, n: int = 4):
    cfg = config(seed)
    parts = part_sum.map(part.map(items(n), a=array(cfg)))
    total = flaky(parts)
    return summary(means(frame(cfg)), total, rounded(total))
