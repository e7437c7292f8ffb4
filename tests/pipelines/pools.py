"""Steps that start their own processes: a multiprocessing.Pool over a library function."""

import multiprocessing

from orchestrator import pipeline, step


@step
def pooled(n: int) -> list:
    with multiprocessing.get_context("fork").Pool(2) as pool:
        return pool.map(abs, range(-n, 0))


@step(timeout=60)
def pooled_timed(n: int) -> list:
    with multiprocessing.get_context("fork").Pool(2) as pool:
        return pool.map(abs, range(-n, 0))


@pipeline
def pools(n: int = 3):
    return pooled(n), pooled_timed(n)
