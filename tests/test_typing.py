"""What a type checker sees of a user's pipeline file: ``@step`` and ``@pipeline`` keep the signature.

The package ships ``py.typed``, so mypy reads its annotations: a step must
look like the function it wraps (its parameters and return type), or every
step in a user's file is ``Any`` and ``mypy --strict`` calls ``@step(...)``
an untyped decorator.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from orchestrator import Pipeline, Step, pipeline, step

REPO = Path(__file__).resolve().parent.parent

USER_FILE = '''
import asyncio

from orchestrator import Metrics, pipeline, step


@step
def load(n: int) -> list[int]:
    return list(range(n))


@step(retries=2, outputs=("train", "test"))
def split(xs: list[int]) -> tuple[list[int], list[int]]:
    return xs[::2], xs[1::2]


@step
def total(xs: list[int], scale: float = 1.0) -> float:
    return sum(xs) * scale


@step
def report(t: float) -> Metrics:
    return Metrics(total=t)


@step
async def fetch(n: int) -> list[int]:
    await asyncio.sleep(0)
    return list(range(n))


@step(retries=1)
async def fetch_again(n: int) -> list[int]:
    return list(range(n))


@pipeline
def training(n: int = 5) -> Metrics:
    total(fetch(n))  # in a body an async step's output is the awaited value, not a coroutine
    total(fetch_again(n))
    train, test = split(load(n))
    both = total.map([train, test])
    return report(total(train, scale=2.0))


reveal_type(load)
reveal_type(training)
reveal_type(total.alias("t2")(load(2)))
reveal_type(total.map([[1], [2]]))
ok: float = total([1, 2], scale=0.5)
wrong_type: str = total([1, 2])
total("text")
total([1], scales=2.0)
total.mapp([[1]])  # a step has an answer for Prefect's .submit() at run time, and no attribute of any name
run = training.run(n=3, store="cache")
reveal_type(run)
reveal_type(fetch_again)
'''


@pytest.mark.slow
def test_mypy_sees_a_step_as_the_function_it_wraps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    api = pytest.importorskip("mypy.api")
    (tmp_path / "user_pipeline.py").write_text(textwrap.dedent(USER_FILE))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MYPYPATH", str(REPO))  # this tree's orchestrator, not an installed one
    out, err, _ = api.run(["--strict", "--no-incremental", "--cache-dir", str(tmp_path / ".mypy"),
                           "--no-error-summary", "user_pipeline.py"])
    lines = [line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("user_pipeline.py")]
    assert 'note: Revealed type is "orchestrator.step.Step[[n: int], list[int]]"' in lines, out
    assert 'note: Revealed type is "orchestrator.pipeline.Pipeline[[n: int =], orchestrator.effects.Metrics]"' \
        in lines, out
    assert 'note: Revealed type is "float"' in lines, out        # an alias call
    assert 'note: Revealed type is "list[float]"' in lines, out  # a map
    assert 'note: Revealed type is "orchestrator.results.Run"' in lines, out
    assert 'note: Revealed type is "orchestrator.step.Step[[n: int], Any]"' in lines, out  # an async step
    errors = [line for line in lines if line.startswith("error:")]
    # Exactly the user's four mistakes: no "untyped decorator", nothing from the pipeline body.
    assert len(errors) == 4, out
    assert 'expression has type "float", variable has type "str"' in errors[0]
    assert 'incompatible type "str"; expected "list[int]"' in errors[1]
    assert 'Unexpected keyword argument "scales"' in errors[2]
    assert 'has no attribute "mapp"' in errors[3]


def test_step_and_pipeline_types_can_be_subscripted_at_run_time() -> None:
    # An annotation evaluated at run time (a dataclass field, pydantic, typing.get_type_hints).
    assert Step[[int], float] is not None
    assert Pipeline[[int], None] is not None


def test_typed_decorators_change_nothing_at_run_time() -> None:
    @step(retries=1)
    def double(x: int) -> int:
        return 2 * x

    @pipeline
    def body(n: int = 2) -> int:
        return double(n)

    assert isinstance(double, Step) and isinstance(body, Pipeline)
    assert double(3) == 6 and body(n=4) == 8
    assert double.map([1, 2]) == [2, 4] and double.alias("twice")(5) == 10
    assert repr(double.alias("twice")) == f"<step 'double' as 'twice' ({double.site})>"
