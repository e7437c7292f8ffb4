"""Steps that pass instances of the user's own classes around (see tests/test_value_code.py)."""

from behaviour_lib import Offset, Scaler
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


@pipeline
def behaviour(k: int = 2, v: int = 10):
    return use(build(k), v), shift(v, Offset(5))
