"""Building a ``@pipeline``: a beginner's misuse of a step's output fails at build time, with one line."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pandas as pd
import pytest

from orchestrator import pipeline, step
from orchestrator.errors import PipelineDefinitionError


@step
def load(n: int) -> pd.DataFrame:
    return pd.DataFrame({"a": range(n)})


@step
def total(value) -> int:
    return int(value["a"].sum())


def _line_of(marker: str) -> int:
    """Line of this file holding ``marker``: the line the error must name."""
    lines = inspect.getsource(inspect.getmodule(_line_of)).splitlines()  # type: ignore[arg-type]
    return next(i for i, line in enumerate(lines, 1) if line.endswith(marker))


MISUSES = {
    "eq_none": lambda df: total(df) if df == None else None,  # noqa: E711  # misuse:eq_none
    "ne": lambda df: total(df) if df != 0 else None,  # misuse:ne
    "str": lambda df: total(str(df)),  # misuse:str
    "int": lambda df: total(int(df)),  # misuse:int
    "neg": lambda df: total(-df),  # misuse:neg
    "pow": lambda df: total(df ** 2),  # misuse:pow
    "round": lambda df: total(round(df)),  # misuse:round
    "index": lambda df: total([1, 2][df]),  # misuse:index
    "setitem": lambda df: df.__setitem__("b", 1),  # misuse:setitem
    "in": lambda df: total(df) if "a" in df else None,  # misuse:in
    "math": lambda df: total(math.sqrt(df)),  # misuse:math
    "numpy": lambda df: total(np.log(df)),  # misuse:numpy
    "pandas": lambda df: total(pd.concat([df, df])),  # misuse:pandas
}


@pytest.mark.parametrize("misuse", sorted(MISUSES))
def test_using_an_output_as_a_value_names_the_body_line(misuse: str) -> None:
    use = MISUSES[misuse]

    @pipeline
    def body(n: int = 3):
        return use(load(n))

    line = _line_of(f"# misuse:{misuse}")
    with pytest.raises(PipelineDefinitionError) as info:
        body.build()
    assert str(info.value) == (
        f"the output of step 'load' is used as a value at test_pipeline.py:{line} while the pipeline is "
        "being built, but it does not exist until the step runs. Pass it to another step and use it there."
    )


def test_a_misuse_python_reports_itself_gets_the_same_advice() -> None:
    @pipeline
    def body(n: int = 3):
        df = load(n)
        df.flag = 1
        return total(df)

    with pytest.raises(PipelineDefinitionError, match=r"raised AttributeError: 'Output' object has no "
                       r"attribute 'flag' at test_pipeline.py:\d+. A step's output does not exist until"):
        body.build()


def test_outputs_still_compare_as_placeholders() -> None:
    @pipeline
    def body(n: int = 3):
        df = load(n)
        assert df == df and not (df != df) and len({df, df}) == 1
        return total(df)

    assert list(body.build().nodes) == ["load", "total"]


@pytest.mark.parametrize(
    ("returned", "shown"),
    [
        (lambda df: 42, "42"),
        (lambda df: {"t": total(df), "n": 3}, "['n'] is 3"),
        (lambda df: (total(df), ["x"]), "[1][0] is 'x'"),
    ],
)
def test_a_plain_value_in_the_result_is_named(returned, shown: str) -> None:
    @pipeline
    def body(n: int = 3):
        return returned(load(n))

    with pytest.raises(PipelineDefinitionError) as info:
        body.build()
    assert str(info.value) == (
        f"pipeline 'body' ({body.site}) returns a plain value, not a step output: {shown}. A pipeline "
        "returns step outputs (one, or a tuple/list/dict of them) or nothing: pass the value to a step, "
        "or leave it out."
    )


@pipeline
def features(n: int = 3):
    return total(load(n))


def test_calling_another_pipeline_in_a_body_adds_its_steps() -> None:
    @pipeline
    def outer(n: int = 3):
        return features(n), total(load(n + 1))

    assert list(outer.build().nodes) == ["load", "total", "load_2", "total_2"]


@pytest.mark.parametrize("method", ["run", "plan"])
def test_running_a_pipeline_inside_a_body_is_refused(method: str, tmp_path) -> None:
    @pipeline
    def outer(n: int = 3):
        getattr(features, method)(n=n, store=str(tmp_path / "store"))  # misuse:run-in-body
        return total(load(n))

    line = _line_of("# misuse:run-in-body")
    with pytest.raises(PipelineDefinitionError) as info:
        outer.build()
    assert str(info.value) == (
        f"features.{method}() is called at test_pipeline.py:{line} while a pipeline body is being built. "
        f"Call features(...) there instead to add its steps to that pipeline, or call .{method}() outside "
        "any pipeline."
    )
    assert not (tmp_path / "store").exists()
