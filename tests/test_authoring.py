"""Steps written the way people write Python: async functions, generators, their own decorators."""

from __future__ import annotations

import asyncio
import functools
import re

import pytest

from orchestrator import pipeline, step
from orchestrator.errors import PipelineDefinitionError, UserError


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


@_logged
@step
def _logged_above(xs: list) -> int:
    return len(xs)


def test_a_decorator_without_wraps_written_above_step_is_reported_too(store):
    @pipeline
    def flow():
        return _logged_above([1, 2])

    with pytest.raises(UserError, match=r"step '_logged_above' \(test_authoring.py:\d+\) is wrapped by "
                                        r"`_logged` \(test_authoring.py:\d+\), written above @step: .* "
                                        r"Put @step above @_logged."):
        flow.build()


@pytest.mark.parametrize("decorator", [step, pipeline])
def test_a_name_passed_by_position_says_to_pass_it_by_keyword(decorator):
    label = "@step" if decorator is step else "@pipeline"
    with pytest.raises(UserError) as info:
        decorator("loader")  # type: ignore[call-overload]
    assert re.fullmatch(rf"{label}\('loader'\) \(test_authoring.py:\d+\): a name is given by keyword, "
                        rf"{label}\(name='loader'\).", str(info.value))


_ran_during_build: list[float] = []


@step
def _load3() -> list:
    return [1, 2, 3]


@step
def _fit(xs: list, alpha: float) -> float:
    _ran_during_build.append(alpha)
    return alpha


@step
def _best(scores: list) -> float:
    return max(scores)


def test_a_step_called_from_a_thread_the_body_starts_is_refused_not_run_while_building(store):
    from concurrent.futures import ThreadPoolExecutor

    @pipeline
    def flow():
        xs = _load3()
        with ThreadPoolExecutor(2) as pool:
            scores = [f.result() for f in [pool.submit(_fit, xs, a) for a in (0.1, 1.0)]]
        return _best(scores)

    _ran_during_build.clear()
    with pytest.raises(UserError) as info:
        flow.build()
    assert _ran_during_build == []  # the thread's call ran nothing of the step
    assert str(info.value) == (
        "step '_fit' is called with the output of step '_load3' outside the pipeline body that made it "
        "(in a thread the body started, or after it was built), so it would run at once, as a plain "
        "function. Call steps in the body itself, not through a thread pool: each call becomes a node, "
        "and independent nodes run in parallel with --executor process.")


def test_a_placeholder_kept_from_a_build_is_refused_by_a_plain_call_naming_where():
    kept = []

    @pipeline
    def flow():
        xs = _load3()
        kept.append(xs)
        return _fit(xs, 1.0)

    flow.build()
    with pytest.raises(UserError, match=r"step '_fit' is called at test_authoring.py:\d+ with the output of "
                                        r"step '_load3' outside the pipeline body that made it"):
        _fit(kept[0], 2.0)
    with pytest.raises(UserError, match=r"step 'alias_fit' is called at test_authoring.py:\d+ with the output"):
        _fit.alias("alias_fit")(xs=[kept[0]], alpha=2.0)
    with pytest.raises(UserError) as info:
        len(kept[0])
    assert "while the pipeline is being built" not in str(info.value)
    assert re.match(r"the output of step '_load3' is used as a value at test_authoring.py:\d+, outside the "
                    r"pipeline body that made it .* run.steps\['_load3'\].output\(\) holds the value.",
                    str(info.value))
    assert _fit([1], 2.0) == 2.0  # real values: a plain function call, as before


def test_an_alias_that_is_no_name_says_which_step_and_where(store):
    @pipeline
    def flow():
        return [_fit.alias(f"fit_{alpha}")([1], alpha) for alpha in (0.1, 1.0)]

    with pytest.raises(UserError) as info:
        flow.build()
    assert re.fullmatch(r"step alias 'fit_0.1' of step '_fit' \(test_authoring.py:\d+\) is not a valid name. "
                        r"Use letters, digits and underscores \(f\"fit_\{i\}\" with a loop's index, not a "
                        r"value such as 0.1\).", str(info.value))


@pytest.mark.parametrize("kind", ["step", "pipeline", "class"])
def test_pipeline_on_a_step_a_pipeline_or_a_class_is_refused_where_it_is_applied(kind):
    def body(n: int = 3):
        return _load3()

    target, shown = {"step": (_load3, "_load3"), "pipeline": (pipeline(body), "body"),
                     "class": (_Scaler, "_Scaler")}[kind]
    with pytest.raises(UserError) as info:
        pipeline(target)
    assert re.fullmatch(rf"@pipeline cannot decorate {kind} '{shown}' \(test_authoring.py:\d+\): a pipeline is a "
                        r"function whose body calls steps. Write @pipeline on such a function alone.",
                        str(info.value))


class _Trainer:
    def __init__(self, rate: float) -> None:
        self.rate = rate

    @step
    def fit(self, xs: list) -> float:
        return sum(xs) * self.rate


@step
def _batches() -> list:
    return [[1], [2, 3]]


def test_a_step_of_a_class_body_read_from_an_instance_maps_and_takes_an_alias(store):
    trainer = _Trainer(2.0)

    @pipeline
    def flow():
        over_list = trainer.fit.map([[1], [4]])
        over_output = trainer.fit.map(_batches())
        named = trainer.fit.alias("fit_named")([5])
        named_map = trainer.fit.alias("each").map([[6], [7]])
        return over_list, over_output, named, named_map

    run = flow.run(store=str(store))
    assert run.output() == ([2.0, 8.0], [2.0, 10.0], 10.0, [12.0, 14.0])
    assert {"fit_named", "each", "each_2"} <= set(run.steps)
    # Outside a pipeline they are the plain function, with the instance first.
    assert (trainer.fit([1]), trainer.fit.map([[1], [2]]), trainer.fit.alias("x")([3])) == (2.0, [2.0, 4.0], 6.0)
    assert isinstance(trainer.fit, functools.partial)  # still calls, hashes and unwraps as a partial


def test_an_async_or_generator_pipeline_body_is_refused_where_it_is_decorated():
    async def flow():
        return _batches()

    def lazy():
        yield _batches()

    for body, kind in ((flow, "an async function"), (lazy, "a generator function \\(it uses yield\\)")):
        with pytest.raises(UserError, match=rf"@pipeline '{body.__name__}' \(test_authoring.py:\d+\) is {kind}: a "
                                            r"body runs once, as a plain function, while the pipeline is built. "
                                            r"Write a plain `def`, call async steps without `await`"):
            pipeline(body)


# Habits of other orchestrators' users, each answered with this one's way of doing it.

@step
def raw(n: int) -> list:
    return list(range(n))


@step
def doubled(raw: list) -> list:
    return [x * 2 for x in raw]


@step
def _apply(fn, xs: list) -> list:
    return [fn(x) for x in xs]


@step
def _increment(x: int) -> int:
    return x + 1


@pytest.mark.parametrize("method", ["submit", "with_options", "configure"])
def test_a_prefect_task_method_on_a_step_names_the_way_to_do_it_here(method):
    @pipeline
    def flow(n: int = 3):
        return doubled(getattr(raw, method)(n))

    with pytest.raises(PipelineDefinitionError) as info:
        flow.build()
    fix = {"submit": r"in a pipeline body, call the step itself \(`raw\(...\)`\): each call is a node, and nodes "
                     r"that do not need each other run at the same time with --executor process \(or dask\).",
           "configure": r"give retries, timeout and the like to @step\(...\) where the step is defined, and a "
                        r"call's node name with .alias\(\"name\"\).",
           "with_options": r"give retries, timeout and the like to @step\(...\) where the step is defined, and a "
                           r"call's node name with .alias\(\"name\"\)."}[method]
    assert re.fullmatch(rf"step 'raw' has no .{method}\(\) \(test_authoring.py:\d+\): {fix}", str(info.value))
    # Outside a body it is a plain AttributeError, with the same words, for hasattr() and friends.
    with pytest.raises(AttributeError, match=rf"step 'raw' has no .{method}\(\)"):
        getattr(raw, method)
    assert not hasattr(raw, "no_such_thing")


@pytest.mark.parametrize("method", ["run", "plan"])
def test_running_a_step_on_its_own_says_how(method):
    # In a notebook `raw.run()` tries a pipeline's method on a step: a bare AttributeError said only
    # that a Step has no 'run'.
    with pytest.raises(AttributeError) as info:
        getattr(raw, method)()
    assert re.fullmatch(rf"step 'raw' has no .{method}\(\) \(test_authoring.py:\d+\): a step runs as a node of a "
                        r"pipeline: call it in a @pipeline body and run that \(`p.run\(\)`, cached and recorded\), "
                        r"or call `raw\(...\)` to run the plain function.", str(info.value))
    assert not hasattr(raw.alias("raw_small"), method)


@pytest.mark.parametrize("form", ["from an instance", "aliased", "aliased from an instance"])
def test_submit_on_a_step_read_from_an_instance_or_aliased_gets_the_same_line(form):
    trainer = _Trainer(2.0)
    read = {"from an instance": lambda: trainer.fit, "aliased": lambda: raw.alias("raw_small"),
            "aliased from an instance": lambda: trainer.fit.alias("fit_small")}[form]
    name = "raw" if form == "aliased" else "fit"

    @pipeline
    def flow():
        return read().submit([1])

    with pytest.raises(PipelineDefinitionError) as info:
        flow.build()
    assert re.fullmatch(rf"step '{name}' has no .submit\(\) \(test_authoring.py:\d+\): in a pipeline body, call the "
                        rf"step itself \(`{name}\(...\)`\): each call is a node, .*", str(info.value))
    with pytest.raises(AttributeError, match=rf"step '{name}' has no .with_options\(\)"):
        read().with_options(retries=3)
    assert not hasattr(read(), "no_such_thing")


@step
def _load_with_context(context, path: str) -> str:
    return path


@step
def _load_with_data(context: dict, path: str) -> str:
    return path


@pytest.mark.parametrize("call, missing, went", [
    (lambda path: _load_with_context(path=path), "context", ""),
    (lambda path: _load_with_context(path), "path", r" \(the first argument went to 'context'\)"),
])
def test_a_dagster_context_parameter_says_steps_get_none_and_what_replaces_it(call, missing, went):
    @pipeline
    def flow(path: str = "a.csv"):
        return call(path)

    with pytest.raises(PipelineDefinitionError) as info:
        flow.build()
    assert re.fullmatch(rf"step '_load_with_context' \(test_authoring.py:\d+\) is called without input '{missing}'. "
                        rf"Pass a step output or a value. Steps get no context object{went}: remove 'context' and "
                        r"take config as parameters; what the step prints or logs is kept \(`orch logs "
                        r"RUN:_load_with_context`\), and the run's id, status and outputs are on the Run after it "
                        r"\(run.id, run.steps\).", str(info.value))


def test_a_context_parameter_annotated_as_data_gets_the_plain_line():
    @pipeline
    def flow(path: str = "a.csv"):
        return _load_with_data(path=path)

    with pytest.raises(PipelineDefinitionError) as info:
        flow.build()
    assert re.fullmatch(r"step '_load_with_data' \(test_authoring.py:\d+\) is called without input 'context'. "
                        r"Pass a step output or a value.", str(info.value))


def test_wait_for_says_that_steps_are_ordered_by_what_they_take():
    @pipeline
    def flow(n: int = 3):
        data = raw(n)
        return doubled(data, wait_for=[data])

    with pytest.raises(PipelineDefinitionError) as info:
        flow.build()
    assert re.fullmatch(r"step 'doubled' \(test_authoring.py:\d+\) has no parameter 'wait_for'. A step runs after the "
                        r"steps whose outputs it takes: pass what it needs as an argument \(a step that writes a file "
                        r"returns its path, `-> Path`, for the next one to take\).", str(info.value))


@pytest.mark.parametrize("body", ["not called", "output dropped"])
def test_a_missing_input_named_after_a_step_says_parameters_are_not_wired_by_name(body):
    @pipeline
    def flow(n: int = 3):
        if body == "output dropped":
            raw(n)  # wiring:dropped
        return doubled()  # wiring:call

    with pytest.raises(PipelineDefinitionError) as info:
        flow.build()
    fix = (r"keep the output of step 'raw' \(test_authoring.py:\d+\) and pass it, `x = raw\(...\)` then "
           r"`doubled\(raw=x\)`." if body == "output dropped" else
           r"call step 'raw' in the body and pass its output, `doubled\(raw=raw\(...\)\)`.")
    assert re.fullmatch(r"step 'doubled' \(test_authoring.py:\d+\) is called without input 'raw'. Pass a step output "
                        rf"or a value. Parameters are not wired to the steps they are named after: {fix}",
                        str(info.value))


def test_a_step_passed_for_its_output_is_refused_when_built_not_when_it_runs(store):
    @pipeline
    def by_name(n: int = 3):
        return doubled(raw)

    @pipeline
    def for_data(n: int = 3):
        return _apply(_increment, raw)

    with pytest.raises(PipelineDefinitionError) as info:
        by_name.build()
    assert re.fullmatch(r"step 'doubled' \(test_authoring.py:\d+\) is given step 'raw' itself as 'raw', not its "
                        r"output: call it in the body and pass what it returns \(`doubled\(raw=raw\(...\)\)`\); "
                        r"parameters are not wired to the steps they are named after.", str(info.value))
    with pytest.raises(PipelineDefinitionError) as info:
        for_data.build()
    assert re.fullmatch(r"step '_apply' \(test_authoring.py:\d+\) is given step 'raw' itself as 'xs', not its "
                        r"output: call it in the body and pass what it returns \(`_apply\(xs=raw\(...\)\)`\).",
                        str(info.value))  # a function for `fn` is fine: only the list is named

    @pipeline
    def higher_order(n: int = 3):
        return _apply(_increment, raw(n))

    assert higher_order.run(store=str(store)).output() == [1, 2, 3]


@step(outputs=("train", "test"))
def _split_named(n: int) -> dict:
    return {"train": list(range(n)), "test": [n]}


@step
def _kind_of(parts) -> str:
    return type(parts).__name__


def test_outputs_of_a_step_are_read_by_name_as_well_as_unpacked(store):
    same = []

    @pipeline
    def named(n: int = 3):
        parts = _split_named(n)
        train, test = parts
        same.append(train is parts.train is parts["train"] is parts[0])  # one placeholder, however it is read
        return doubled(parts.train), doubled(parts["test"]), _kind_of(parts), parts

    run = named.run(store=str(store))
    assert same == [True]
    assert run.output() == ([0, 2, 4], [6], "tuple", ([0, 1, 2], [3]))
    assert type(run.output()[3]) is tuple

    @pipeline
    def misspelled(n: int = 3):
        return doubled(_split_named(n).tset)

    with pytest.raises(PipelineDefinitionError) as info:
        misspelled.build()
    assert re.fullmatch(r"step '_split_named' has no output 'tset' \(test_authoring.py:\d+\); its outputs are train, "
                        r"test. Did you mean 'test'\?", str(info.value))

    @step(outputs=("frame", "index"))
    def indexed(n: int):
        return list(range(n)), list(range(n))

    @pipeline
    def by_index(n: int = 3):
        parts = indexed(n)
        assert parts.count(parts[0]) == 1  # tuple's own method, as no output is named count
        return doubled(parts.index)  # an output named index wins over tuple.index

    assert by_index.run(store=str(store)).output() == [0, 2, 4]

    kept = []

    @pipeline
    def keeps(n: int = 3):
        parts = _split_named(n)
        kept.append(parts)
        return _kind_of(parts)

    keeps.build()
    with pytest.raises(PipelineDefinitionError, match="outside the pipeline body that made it"):
        _kind_of(kept[0])  # kept from a body: refused as a list of its placeholders is, not run on them


class _Flow:
    """A Metaflow user's flow: one step sets self.items, the next reads it."""

    def __init__(self, n: int) -> None:
        self.n = n

    @step
    def start(self) -> None:
        self.items = list(range(self.n))

    @step
    def total(self) -> int:
        return sum(self.items)


def test_state_one_step_sets_on_self_is_named_when_another_fails_to_find_it(store):
    @pipeline
    def flow(n: int = 3):
        f = _Flow(n)
        f.start()
        return f.total()

    with pytest.warns(UserWarning, match="step 'start' sets self.items, which step 'total' reads"):
        run = flow.run(store=str(store))  # warned of when built, then named in the error
    assert run.status == "failed"
    assert run.steps["total"].error == (
        "AttributeError: '_Flow' object has no attribute 'items' (step 'start' sets self.items, but what a step sets "
        "on self does not reach another step: each runs on its own copy of the object. Return items from 'start' "
        "and pass it to 'total' as an argument.)")


class _Training:
    """A flow class, as Metaflow's and ZenML's users write one: steps and the pipeline are methods."""

    def __init__(self, n: int) -> None:
        self.n = n

    @step
    def load(self) -> list:
        return list(range(self.n))

    @step
    def total(self, xs: list, scale: int) -> int:
        return sum(xs) * scale

    @pipeline
    def flow(self, scale: int = 1):
        return self.total(self.load(), scale)


def test_a_pipeline_written_as_a_method_runs_on_the_instance_it_is_read_from(store):
    run = _Training(4).flow.run(store=str(store), scale=2)
    assert run.status == "succeeded", run.error
    assert run.output() == 12
    assert _Training(4).flow.run(store=str(store), scale=2).steps["load"].status == "cached"
    assert _Training(5).flow.run(store=str(store)).output() == 10  # another instance, another result
    assert list(_Training(5).flow.parameters) == ["scale"]  # `self` is no parameter of the run
    assert _Training.flow.name == "flow" and "self" in _Training.flow.parameters  # read from the class: as written


def test_a_file_whose_only_pipeline_is_a_method_names_the_line_to_add(tmp_path):
    from orchestrator.errors import LoadError
    from orchestrator.loader import load_pipeline

    (tmp_path / "flows.py").write_text(
        "from orchestrator import pipeline, step\n\n"
        "class Training:\n"
        "    @step\n"
        "    def load(self) -> list:\n"
        "        return [1]\n\n"
        "    @pipeline\n"
        "    def flow(self):\n"
        "        return self.load()\n")
    with pytest.raises(LoadError) as info:
        load_pipeline(str(tmp_path / "flows.py"))
    assert str(info.value) == (
        f"{tmp_path / 'flows.py'} defines no pipeline at its top level; Training.flow is a pipeline of a class, which "
        "needs an instance: add `flow = Training(...).flow` at the top level of "
        f"{tmp_path / 'flows.py'}, then run {tmp_path / 'flows.py'}:flow.")
    fixed = tmp_path / "fixed_flows.py"
    fixed.write_text((tmp_path / "flows.py").read_text() + "\nflow = Training().flow\n")
    assert load_pipeline(str(fixed)).build().nodes.keys() == {"load"}


class _QuietFlow:
    """As _Flow, with `items` set in __init__: the reader does not fail, it reads the empty list."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.items: list = []

    @step
    def start(self) -> None:
        self.items = list(range(self.n))

    @step
    def total(self) -> int:
        return sum(self.items)


def test_state_one_step_sets_on_self_for_another_is_warned_of_when_built(store):
    @pipeline
    def flow(n: int = 3):
        f = _QuietFlow(n)
        f.start()
        return f.total()

    said = ("step 'start' sets self.items, which step 'total' reads: each step runs on its own copy of the object, "
            "so 'total' never sees what 'start' set. Return items from 'start' and pass it to 'total' as an argument.")
    assert flow.plan(store=str(store)).warnings == [said]
    with pytest.warns(UserWarning) as caught:
        assert flow.run(store=str(store)).output() == 0  # what the warning is about: start's items are not seen
    assert said in [str(w.message) for w in caught]
    assert _Training(3).flow.plan(store=str(store)).warnings == []  # steps that share nothing through self
