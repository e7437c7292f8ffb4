"""One item of a map that holds far more memory than the others, for a while."""

import time

import numpy as np

from orchestrator import pipeline, step


@step
def fold(k: int, hog_mb: int) -> int:
    if k == 1:
        held = np.ones(hog_mb * 2**20 // 8)  # written, so resident
        time.sleep(5)
        return int(held[0])
    return k


@step
def mean(xs: list) -> float:
    return sum(xs) / len(xs)


@pipeline
def cv(k: int = 3, hog_mb: int = 800):
    return mean(fold.map(list(range(k)), hog_mb=hog_mb))
