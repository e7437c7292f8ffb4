"""Steps that change their inputs in place: a sibling that reads the same output must not see it."""

import numpy as np
import pandas as pd

from orchestrator import pipeline, step


@step
def make(n: int) -> tuple[pd.DataFrame, np.ndarray, list, dict]:
    return pd.DataFrame({"a": range(n)}), np.arange(n), list(range(n)), {"n": n}


@step
def spoil(frame: pd.DataFrame, array: np.ndarray, items: list, info: dict) -> int:
    frame["a"] = frame["a"] * 100
    array *= 100
    items.append(1000)
    info["n"] = -1
    return 0


@step
def read(frame: pd.DataFrame, array: np.ndarray, items: list, info: dict, after: int) -> dict:
    return {"frame": int(frame["a"].sum()), "array": int(array.sum()), "items": sum(items), "n": info["n"]}


@pipeline
def mutating(n: int = 4):
    frame, array, items, info = make(n)
    done = spoil(frame, array, items, info)
    return read(frame, array, items, info, after=done)


@step
def spoil_params(array: np.ndarray, frame: pd.DataFrame, items: list) -> int:
    array *= 100
    frame["a"] = 0
    items.append(1000)
    return 0


@step
def read_params(array: np.ndarray, frame: pd.DataFrame, items: list, after: int) -> list:
    return [int(array.sum()), int(frame["a"].sum()), sum(items)]


@pipeline
def body_values():
    array, frame, items = np.arange(3), pd.DataFrame({"a": [1, 2]}), [5]
    return read_params(array, frame, items, after=spoil_params(array, frame, items))


BUFFER = np.zeros(3)


@step
def buffer() -> np.ndarray:
    return BUFFER  # a module-level array the step's module keeps


@step
def refill(values: np.ndarray) -> int:
    BUFFER[:] += 1  # changes the array `buffer` returned, after its digest was taken
    return 0


@step
def total(values: np.ndarray, after: int) -> float:
    return float(values.sum())


@pipeline
def kept_buffer():
    """A step's output and a body value that a later step changes where the driver still holds them."""
    values = buffer()
    done = refill(values)
    return total(values, after=done), total(BUFFER, after=done)
