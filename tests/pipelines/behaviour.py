"""Steps that pass instances of the user's own classes around (see tests/test_value_code.py)."""

from behaviour_lib import Offset, Scaler, Shift, double
from recorder import record

from orchestrator import pipeline, step


@step
def build(k: int) -> Scaler:
    record("build")
    return Scaler(k)


@step
def use(scaler, v: int) -> int:
    record("use")
    return scaler.apply(v)


@step
def shift(v: int, offset) -> int:
    record("shift")
    return offset.apply(v)


@step
def make_shift() -> Shift:
    record("make_shift")
    return Shift(k=1.0)


@step
def transform(t, xs: list) -> list:
    record("transform")
    return t.fit_transform([[x] for x in xs]).ravel().tolist()


@step
def apply_fn(xs: list, fn) -> list:
    record(f"apply_fn:{fn.__name__}")
    return fn(xs)


@pipeline
def behaviour(k: int = 2, v: int = 10):
    return (use(build(k), v), shift(v, Offset(5)), transform(make_shift(), [1, 2]),
            apply_fn([1, 2], double), apply_fn.alias("apply_lambda")([1, 2], lambda xs: [x + 1 for x in xs]))
