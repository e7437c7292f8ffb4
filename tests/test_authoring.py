"""Steps written the way people write Python: async functions, generators, their own decorators."""

from __future__ import annotations

import asyncio
import functools
import re

import pytest

from orchestrator import pipeline, step
from orchestrator.errors import UserError


def test_an_async_step_runs_to_its_result_and_is_cached(store):
    @step
    async def load(n: int) -> list:
        await asyncio.sleep(0)
        print("loaded")
        return list(range(n))

    @step
    def total(xs: list) -> int:
        return sum(xs)

    @pipeline
    def flow(n: int = 4):
        return total(load(n))

    run = flow.run(store=str(store))
    assert run.status == "succeeded", run.steps["load"].error
    assert run.output() == 6
    again = flow.run(store=str(store))
    assert [s.status for s in again.steps.values()] == ["cached", "cached"]


def test_an_async_step_runs_when_the_caller_already_runs_an_event_loop(store):
    # A notebook runs its cells inside an event loop, where asyncio.run is refused.
    @step
    async def load(n: int) -> list:
        await asyncio.sleep(0)
        return list(range(n))

    @pipeline
    def flow(n: int = 3):
        return load(n)

    async def notebook_cell():
        return flow.run(store=str(store))

    run = asyncio.run(notebook_cell())
    assert run.status == "succeeded", run.steps["load"].error
    assert run.output() == [0, 1, 2]


def test_an_async_step_that_raises_fails_with_its_own_error(store):
    @step
    async def broken() -> int:
        raise ValueError("no data")

    @pipeline
    def flow():
        return broken()

    run = flow.run(store=str(store))
    assert run.status == "failed"
    assert "ValueError: no data" in run.steps["broken"].error


@pytest.mark.parametrize("kind", ["generator", "async generator"])
def test_a_generator_step_is_refused_where_it_is_decorated(kind):
    def items(n: int):
        yield from range(n)

    async def async_items(n: int):
        for i in range(n):
            yield i

    fn = items if kind == "generator" else async_items
    with pytest.raises(UserError, match=rf"^@step '{fn.__name__}' \(test_authoring.py:\d+\) is an? {kind} "
                                        r"function \(it uses yield\): .* Collect the items inside the step"):
        step(fn)


def test_a_step_that_wraps_a_generator_and_collects_it_is_accepted(store):
    def items(n: int):
        yield from range(n)

    @step
    def collected(n: int) -> list:
        return list(items(n))

    @pipeline
    def flow():
        return collected(3)

    assert flow.run(store=str(store)).output() == [0, 1, 2]


def _logged(fn):
    def inner(*args, **kwargs):  # no functools.wraps: the function's own name is `inner`
        return fn(*args, **kwargs)

    return inner


def _scaled_by(k: int):
    def scale(xs: list) -> list:
        return [x * k for x in xs]

    return scale


def test_steps_are_named_as_written_under_a_decorator_without_wraps_or_as_assigned(store):
    @step
    @_logged
    def load(n: int) -> list:
        return list(range(n))

    @step(retries=1)
    @_logged
    def clean(xs: list) -> list:
        return [x for x in xs if x]

    double = step(_scaled_by(2))
    halve = step(lambda xs: [x / 2 for x in xs])

    @pipeline
    def flow():
        return halve(double(clean(load(3))))

    assert (load.name, clean.name, double.name, halve.name) == ("load", "clean", "double", "halve")
    assert load.site.startswith("test_authoring.py:")
    run = flow.run(store=str(store))
    assert list(run.steps) == ["load", "clean", "double", "halve"]
    assert run.output() == [1.0, 2.0]


def test_a_given_name_and_a_functions_own_name_are_kept(store):
    @step(name="fetch")
    @_logged
    def load(n: int) -> list:
        return list(range(n))

    steps = [step(lambda x: x)]  # no name written for it: it stays what Python calls it
    assert (load.name, steps[0].name) == ("fetch", "<lambda>")


def _scale(xs: list, factor: int, offset: int = 0) -> list:
    return [x * factor + offset for x in xs]


class _Scaler:
    def __init__(self, k: int) -> None:
        self.k = k

    def apply(self, xs: list) -> list:
        return [x * self.k for x in xs]


def _bound_steps(factor: int, k: int):
    scale = step(functools.partial(_scale, [1, 2], factor=factor))
    apply = step(_Scaler(k).apply)

    @pipeline
    def bound():
        return scale(), apply([1])

    return bound


def test_a_changed_partial_argument_or_bound_object_is_named_in_words(store):
    assert _bound_steps(factor=2, k=3).run(store=str(store)).status == "succeeded"
    reasons = {e.node: e.reason for e in _bound_steps(factor=5, k=4).plan(store=str(store)).entries}
    assert reasons["apply"] == "the object its method is bound to changed"
    assert reasons["_scale"].startswith("the arguments functools.partial binds changed")
    assert "<self>" not in reasons["_scale"]


def _timed(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs)

    return wrapper


@_timed
@step
def _timed_above(xs: list) -> int:
    return len(xs)


@step
@_timed
def _timed_below(xs: list) -> int:
    return len(xs)


def test_a_decorator_written_above_step_is_reported_where_it_is_written(store):
    @pipeline
    def flow():
        return _timed_above([1, 2]), _timed_above([3])

    with pytest.raises(UserError) as info:
        flow.build()
    assert str(info.value).count("is wrapped by") == 1  # once, however often the step is called
    assert re.search(r"step '_timed_above' \(test_authoring.py:\d+\) is wrapped by `_timed` "
                     r"\(test_authoring.py:\d+\), written above @step: `_timed` runs while the pipeline is "
                     r"built, not when the step runs. Put @step above @_timed.", str(info.value))


def test_a_decorator_written_below_step_runs_with_the_step(store):
    @pipeline
    def flow():
        return _timed_below([1, 2])

    assert flow.run(store=str(store)).output() == 2
