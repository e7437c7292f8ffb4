"""A step that reports the BLAS thread settings it runs under (see tests/test_executors.py)."""

import os

from orchestrator import pipeline, step

SETTINGS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@step
def threads() -> dict:
    return {name: os.environ.get(name) for name in SETTINGS}


@pipeline
def blas_threads():
    return threads()
