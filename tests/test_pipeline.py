"""``@pipeline``: building (a misuse of a step output fails with one line) and the arguments of ``run``/``plan``."""

from __future__ import annotations

import datetime
import enum
import inspect
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import numpy as np
import pandas as pd
import pytest

from orchestrator import pipeline, step
from orchestrator.errors import ParameterError, PipelineDefinitionError, UserError


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


_BRANCH = (" The steps a pipeline runs are fixed when it is built: decide inside a step that takes this output "
           "(it may return early, or return None), or make the choice a pipeline parameter (`-p deploy=true`) "
           "that the body tests.")
_SHOW = (" To see the value, print it inside a step (orch logs RUN:load shows what it printed) or read it after "
         "the run (run.steps['load'].output()); a node named after a value (step.alias(f\"fit_{i}\")) takes a "
         "value of the body, not an output.")

# What users of other orchestrators write in a body (Metaflow's and ZenML's `if`, `len()`, f-strings;
# Prefect's `.result()`), and the way the message shows of doing it here.
HABITS = {
    "if": (lambda df: total(df) if df else None,  # habit:if
           "is tested for truth (an `if`, `while`, `and`, `or` or `not`)", _BRANCH),
    "gt": (lambda df: total(df) if df > 0.5 else None,  # habit:gt
           "is compared (`<`, `<=`, `>`, `>=`)", _BRANCH),
    "isinstance": (lambda df: total(df) if isinstance(df, pd.DataFrame) else None,  # habit:isinstance
                   "has its type tested (isinstance())", _BRANCH),
    "len": (lambda df: total(len(df)),  # habit:len
            "has its len() taken", " To call a step once per item, pass this output to that step's .map() "
            "(one node per item, made once it has run); a count belongs in a step that takes it."),
    "fstring": (lambda df: total(f"rows: {df}"),  # habit:fstring
                "is formatted (an f-string or format())", _SHOW),
    "str": (lambda df: total(str(df)),  # habit:str
            "is made text (str() or print())", _SHOW),
    # A key made of hash(), repr() or id() of a placeholder is the node's name or address, not the data's.
    "hash": (lambda df: total(hash(df)),  # habit:hash
             "is hashed (hash())", " A hash of the data is taken inside a step that takes this output; the "
             "orchestrator already keys each step by the content of its inputs."),
    "repr": (lambda df: total(repr(df)),  # habit:repr
             "is made text (repr())", _SHOW),
    "repr_fstring": (lambda df: total(f"{df!r}"),  # habit:repr_fstring
                     "is made text (repr())", _SHOW),
    "result": (lambda df: total(df.result()),  # habit:result
               "has `.result()` called", " A step's output in a pipeline body is no future to wait for: pass "
               "it to the next step as it is, and that step runs once step 'load' has."),
}


@pytest.mark.parametrize("habit", sorted(HABITS))
def test_a_habit_of_another_orchestrator_is_refused_with_the_way_to_do_it_here(habit: str) -> None:
    use, said, hint = HABITS[habit]

    @pipeline
    def body(n: int = 3):
        return use(load(n))

    with pytest.raises(PipelineDefinitionError) as info:
        body.build()
    assert str(info.value) == (
        f"the output of step 'load' {said} at test_pipeline.py:{_line_of(f'# habit:{habit}')} while the "
        "pipeline is being built, but it does not exist until the step runs. Pass it to another step and use "
        f"it there.{hint}"
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


def test_an_id_of_an_output_passed_to_a_step_is_refused() -> None:
    """`total(id(df))` keyed the step by the placeholder's address: another key every build, and no data."""
    @pipeline
    def body(n: int = 3):
        df = load(n)
        return total(id(df))  # habit:id

    with pytest.raises(PipelineDefinitionError) as info:
        body.build()
    assert str(info.value) == (
        f"step 'total' at test_pipeline.py:{_line_of('# habit:id')} is given id() of the output of step 'load' "
        "as 'value': a placeholder's id() is an address in this build, not the value's, which does not exist "
        "yet. Pass the output itself, and take what you need of it inside the step.")


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


@pytest.mark.parametrize(("returned", "where"), [(lambda df: total, ""), (lambda df: {"t": total}, " as ['t']")])
def test_a_step_returned_uncalled_says_to_call_it(returned, where: str) -> None:
    """`return total` (a forgotten call) was "a plain value ... <step 'total' (...)>", read as a fault of the step."""
    @pipeline
    def body(n: int = 3):
        load(n)
        return returned(None)

    with pytest.raises(PipelineDefinitionError) as info:
        body.build()
    assert str(info.value) == (f"pipeline 'body' ({body.site}) returns step 'total' itself{where}, not a call of "
                               "it: write total(...) to return its output.")


@pipeline
def features(n: int = 3):
    return total(load(n))


def test_calling_another_pipeline_in_a_body_adds_its_steps() -> None:
    @pipeline
    def outer(n: int = 3):
        return features(n), total(load(n + 1))

    assert list(outer.build().nodes) == ["load", "total", "load_2", "total_2"]


@pytest.mark.parametrize("method", ["run", "plan", "build"])
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


@step
def count(n: int) -> int:
    return n


@pipeline
def counting(n: int = 3, ratio: float = 0.5, strict: bool = False, label: str = "x"):
    return count(n)


@pipeline
def typed_training(path: Path = Path("data/raw.csv"), alpha: float = 1.0, folds: int = 5):
    return count(folds)


@pytest.mark.parametrize(("value", "meant"), [(0.5, r"alpha=0\.5\)\.$"), (3, r"folds=3\)\.$"),
                                              (b"x", r"path=b'x'\) \(parameters: path, alpha, folds\)\.$")])
def test_a_positional_run_argument_suggests_the_parameter_of_its_type(value, meant, tmp_path, monkeypatch) -> None:
    """`training.run(0.5)` meant alpha, not the first parameter (a path)."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=r"Pipeline parameters are keywords: typed_training\.run\(" + meant):
        typed_training.run(value)  # type: ignore[arg-type]


def test_a_positional_run_argument_is_no_store(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=r"^store must be a folder path or a URL, got 4 \(int\). "
                       r"Pipeline parameters are keywords: counting.run\(n=4\).$"):
        counting.run(4)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"n": "4"}, "parameter 'n' is annotated int, but got the text '4'. Pass an int: int('4')."),
        ({"ratio": "0.5"}, "parameter 'ratio' is annotated float, but got the text '0.5'. Pass a float: float('0.5')."),
        ({"strict": "false"}, "parameter 'strict' is annotated bool, but got the text 'false'. Pass True or False."),
    ],
)
def test_text_for_a_number_parameter_is_refused_before_anything_runs(params, message, tmp_path) -> None:
    with pytest.raises(ParameterError, match=re.escape(f"pipeline 'counting': {message}")):
        counting.run(store=str(tmp_path / "s"), **params)
    assert not (tmp_path / "s").exists()


class Shade(enum.Enum):
    LIGHT = "light"
    DARK = "dark"


@pipeline
def typed(day: datetime.date = datetime.date(2024, 1, 1), shade: Shade = Shade.LIGHT,
          limit: Optional[int] = None, mode: Literal["fast", "full"] = "fast",  # noqa: UP045 - as users write it
          depths: list[int] = [1], path: Path = Path("."), label: str | None = None):  # noqa: B006
    return count(1)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"day": "2024-05-06"}, "parameter 'day' is annotated date, but got the text '2024-05-06'. "
                                "Pass a date: date.fromisoformat('2024-05-06')."),
        ({"shade": "DARK"}, "parameter 'shade' is annotated Shade, but got the text 'DARK'. Pass Shade.DARK."),
        ({"shade": "dark"}, "parameter 'shade' is annotated Shade, but got the text 'dark'. Pass Shade.DARK."),
        ({"shade": "dim"}, "parameter 'shade' is annotated Shade, but got the text 'dim'. "
                           "Pass a member: Shade.LIGHT, Shade.DARK."),
        ({"limit": "3"}, "parameter 'limit' is annotated Optional[int], but got the text '3'. Pass an int: int('3')."),
        ({"mode": "quick"}, "parameter 'mode' is one of 'fast', 'full', but got 'quick'."),
        ({"depths": "[1, 2]"}, "parameter 'depths' is annotated list[int], but got the text '[1, 2]'. "
                               "Pass a list, not its text."),
    ],
)
def test_text_that_p_would_convert_is_refused_from_python(params, message, tmp_path) -> None:
    """A step would take it as text: ``color is Shade.DARK`` false, a date compared with text raises."""
    with pytest.raises(ParameterError, match=re.escape(f"pipeline 'typed': {message}")):
        typed.run(store=str(tmp_path / "s"), **params)
    assert not (tmp_path / "s").exists()


@dataclass
class _Config:
    lr: float = 0.1


@step
def _learning_rate(cfg: _Config) -> float:
    return cfg.lr


def test_a_dict_for_a_config_parameter_from_python_is_refused_naming_the_class(tmp_path) -> None:
    """The run failed in the step, with `'dict' object has no attribute 'lr'`."""
    @pipeline
    def configured(cfg: _Config = _Config()):
        return _learning_rate(cfg)

    with pytest.raises(ParameterError) as info:
        configured.run(store=str(tmp_path / "s"), cfg={"lr": 0.5})
    assert str(info.value) == ("pipeline 'configured': parameter 'cfg' is annotated _Config, but got a dict. Pass "
                               "_Config(**{'lr': 0.5}) (-p and --params build it from an object of its fields).")
    assert configured.run(store=str(tmp_path / "s"), cfg=_Config(0.5)).output() == 0.5


def test_values_of_the_kinds_python_passes_are_taken(tmp_path) -> None:
    run = typed.run(store=str(tmp_path / "s"), day=datetime.date(2024, 5, 6), shade=Shade.DARK, limit=None,
                    mode="full", depths=[2], path="data", label="text")
    assert run.status == "succeeded"


def test_values_of_the_annotated_kind_and_rerun_by_one_name(tmp_path) -> None:
    run = counting.run(store=tmp_path / "s", n=4, ratio=1, strict=True, label="7")
    assert run.output() == 4
    again = counting.run(store=tmp_path / "s", n=4, ratio=1, strict=True, label="7", rerun="count")
    assert again.steps["count"].reason == "forced with rerun="
    assert counting.plan(store=tmp_path / "s", n=4, ratio=1, strict=True, label="7", rerun="count").counts() == {
        "will run": 1}


def test_workers_without_an_executor_is_refused(tmp_path) -> None:
    with pytest.raises(UserError, match=r'workers=2 sizes a process pool .* add executor="process"'):
        counting.run(store=str(tmp_path / "s"), workers=2)


def test_workers_with_the_sequential_executor_named_is_said_to_be_unused(tmp_path) -> None:
    # Not refused (a script may pass its executor from a variable), but not ignored in silence either.
    with pytest.warns(UserWarning, match=r'^workers=2 is unused: executor="sequential" runs steps one at a time; '
                                         r'use executor="process"') as caught:
        run = counting.run(store=str(tmp_path / "s"), executor="sequential", workers=2)
    assert run.status == "succeeded"
    assert [w.filename for w in caught if "is unused" in str(w.message)] == [__file__]  # the user's line


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"rerun": 5}, 'rerun names steps to run whatever the cache holds: a name or a list of names '
                       '(rerun="fit", rerun=["fit", "evaluate"]), got 5 (int).'),
        ({"rerun": [count]}, "got [<step 'count' (test_pipeline.py:"),
        ({"rerun": [count]}, "Pass the step's name: rerun='count'."),
        ({"metadata": 5}, "metadata must be the path of a local folder, got 5 (int)."),
        ({"params": 3}, "params must be a dict of pipeline parameters, got 3 (int): counting.run(params="),
        ({"params": {"n": 3}, "n": 4}, "parameter 'n' is given twice, in params= (3) and as a keyword (4). Give it once."),
        ({"no_cache": "no"}, "no_cache must be True or False, got 'no' (str)."),
        ({"verbose": "yes"}, "verbose must be True or False, got 'yes' (str)."),
        ({"progress": "bar"}, "progress must be True (live progress and a summary on stderr), False, or an "
                              "orchestrator.report.RunObserver, got 'bar' (str)."),
        ({"address": "tcp://host:8786"}, "address='tcp://host:8786' names a Dask scheduler: use it with "
                                         'executor="dask".'),
    ],
)
def test_a_run_option_of_the_wrong_kind_is_one_user_error(options, message, tmp_path) -> None:
    # Not a raw TypeError/AttributeError from the runner, nor `no_cache="no"` read as true.
    with pytest.raises(UserError) as raised:
        counting.run(store=str(tmp_path / "s"), **options)
    assert message in str(raised.value) and "\n" not in str(raised.value)
    assert not (tmp_path / "s").exists()


def test_rerun_none_forces_nothing_and_progress_true_reports_on_stderr(tmp_path, capsys) -> None:
    counting.run(store=tmp_path / "s")
    again = counting.run(store=tmp_path / "s", rerun=None, progress=True)
    assert again.steps["count"].status == "cached"
    err = capsys.readouterr().err
    assert f"run {again.id} succeeded" in err and "count" in err


@pytest.mark.parametrize("option", ["executor", "workers", "progress"])
def test_plan_refuses_an_option_only_run_takes(option, tmp_path) -> None:
    with pytest.raises(UserError, match=rf"^{option}= is an option of counting.run\(\), not of counting.plan\(\): "
                       r"a plan runs nothing\."):
        counting.plan(store=str(tmp_path / "s"), **{option: 2})


def test_build_refuses_a_parameter_passed_by_position() -> None:
    # It used to be taken for `file_memo`, and the body built with n=3, without a word.
    with pytest.raises(UserError, match=r"^counting.build\(\) got 4 by position. "
                       r"Pipeline parameters are keywords: counting.build\(n=4\).$"):
        counting.build(4)
    assert counting.build(n=4).params["n"] == 4


def test_plan_names_plan_when_a_parameter_is_passed_by_position(tmp_path) -> None:
    with pytest.raises(UserError, match=r"Pipeline parameters are keywords: counting.plan\(n=4\).$"):
        counting.plan(4)  # type: ignore[arg-type]


def _frames(error: BaseException) -> list[str]:
    import traceback

    return [frame.filename for frame in traceback.extract_tb(error.__traceback__)]


@pytest.mark.parametrize("call", ["run", "plan", "build"])
def test_a_user_error_from_python_has_a_short_traceback(call, tmp_path) -> None:
    """The caller's frame and the one that re-raises: not the package's frames down to build_dag."""
    import orchestrator.errors

    options = {} if call == "build" else {"store": str(tmp_path / "s")}
    with pytest.raises(UserError, match="has no parameter 'nn'") as raised:
        getattr(counting, call)(nn=1, **options)
    assert _frames(raised.value) == [__file__, orchestrator.errors.__file__]


def test_verbose_keeps_the_whole_traceback_and_a_body_error_keeps_its_cause(tmp_path) -> None:
    import orchestrator.dag
    from orchestrator.runner import run_pipeline

    with pytest.raises(UserError) as raised:
        counting.run(store=str(tmp_path / "s"), nn=1, verbose=True)
    assert len(_frames(raised.value)) > 2

    @pipeline
    def misnamed():
        return count(nn=1)

    with pytest.raises(UserError) as raised:  # as `orch run --verbose` runs it: build is called from inside
        run_pipeline(misnamed, {}, store=str(tmp_path / "s"))
    assert _frames(raised.value)[-1] == orchestrator.dag.__file__

    @pipeline
    def broken():
        return count({"a": 1}["b"])

    with pytest.raises(PipelineDefinitionError, match="raised KeyError: 'b'") as raised:
        broken.run(store=str(tmp_path / "s"))
    assert _frames(raised.value.__cause__)[-1] == __file__  # the body's own line, where the KeyError is


def test_help_shows_the_pipeline_signature_and_docstring() -> None:
    import pydoc

    @pipeline
    def documented(n: int = 3):
        """Sum the first n numbers."""
        return count(n)

    text = pydoc.render_doc(documented, renderer=pydoc.plaintext)
    assert "documented(n: 'int' = 3)\n    Sum the first n numbers." in text  # future annotations: text
    assert str(inspect.signature(documented)) == "(n: 'int' = 3)"


@step
def load_2(n: int) -> pd.DataFrame:
    return pd.DataFrame({"a": range(n + 100)})


@pytest.mark.parametrize("order", ["step first", "step last"])
def test_a_step_named_like_a_numbered_call_keeps_its_name_whatever_the_order(order: str) -> None:
    @pipeline
    def body():
        mine = load_2(1) if order == "step first" else None
        a, b = load(1), load(2)
        mine = load_2(1) if order == "step last" else mine
        return total(a), total(b), total(mine)

    dag = body.build()
    assert {n: node.step.name for n, node in dag.nodes.items() if n.startswith("load")} == {
        "load": "load", "load_3": "load", "load_2": "load_2"}
    assert dag.nodes["total_2"].upstream == ("load_3",)  # a renamed call's placeholders follow it
    assert dag.nodes["total_3"].upstream == ("load_2",)


def test_an_alias_wins_over_a_numbered_call_and_names_the_call_it_collides_with() -> None:
    @pipeline
    def mapped():
        return total(load.map([1, 2])), total(load.alias("load_2")(5))

    dag = mapped.build()
    assert [(n, dag.nodes[n].arguments["n"]) for n in ("load", "load_3", "load_2")] == [
        ("load", 1), ("load_3", 2), ("load_2", 5)]

    @pipeline
    def twice():
        return total(load(1)), total(load.alias("load")(2))  # alias:twice

    with pytest.raises(PipelineDefinitionError,
                       match=rf"step name 'load' at test_pipeline.py:{_line_of('# alias:twice')} is already "
                             rf"used in this pipeline by the call of step 'load' at test_pipeline.py:"):
        twice.build()


def test_a_parameter_without_default_is_asked_for_as_python_passes_it(tmp_path) -> None:
    @pipeline
    def needs(n: int, ratio: float):
        return count(n)

    with pytest.raises(ParameterError) as exc:
        needs.run(store=str(tmp_path / "s"), ratio=0.5)
    assert str(exc.value) == ("pipeline 'needs' needs parameter 'n', which has no default. "
                              "Pass n=VALUE.")


def test_messages_and_reasons_from_python_name_the_python_keywords(tmp_path) -> None:
    """A notebook user is told `rerun=`, `no_cache=True`, `address=`, not the CLI's `--rerun` and friends."""
    store = str(tmp_path / "s")
    counting.run(store=store, n=2, ratio=1, strict=True, label="x")
    with pytest.raises(UserError) as unknown:
        counting.run(store=store, n=2, ratio=1, strict=True, label="x", rerun=["cont"])
    assert str(unknown.value).startswith("rerun='cont': pipeline 'counting' has no step 'cont'.")
    with pytest.raises(UserError, match=r"^rerun='cont': pipeline"):
        counting.plan(store=store, n=2, ratio=1, strict=True, label="x", rerun="cont")
    no_cache = counting.run(store=store, n=2, ratio=1, strict=True, label="x", no_cache=True)
    assert no_cache.steps["count"].reason == "caching turned off for this run (no_cache=True)"
    assert counting.plan(store=store, n=2, ratio=1, strict=True, label="x", no_cache=True).entries[0].reason == \
        "caching turned off for this run (no_cache=True)"
    with pytest.raises(UserError, match=r"^address='no address' is not a Dask scheduler address"):
        counting.run(store=store, n=2, ratio=1, strict=True, label="x", executor="dask", address="no address")
    with pytest.raises(UserError, match=r"^store s3://bucket/s is a URL, and the metadata database stays on this "
                                        r"machine: pass metadata=PATH \(a local folder\) or set ORCH_METADATA.$"):
        counting.run(store="s3://bucket/s", n=2, ratio=1, strict=True, label="x")
    with pytest.raises(UserError, match=r"^metadata='s3://b/m' is a URL; the metadata database must stay"):
        counting.plan(store="s3://bucket/s", metadata="s3://b/m", n=2, ratio=1, strict=True, label="x")
    with pytest.raises(UserError, match=r'Use executor="sequential", or a store every worker reaches'):
        counting.run(store="memory://spelling", metadata=str(tmp_path / "m"), n=2, ratio=1, strict=True,
                     label="x", executor="process")


@step
def _split(df: pd.DataFrame):  # one output: no tuple annotation, no outputs=
    return df.iloc[:1], df.iloc[1:]


PART_MISUSES = {
    "unpack": (lambda df: total(_unpacked(df)),
               "is unpacked or iterated", " To pass its parts to steps one by one, give step '_split' several "
               "outputs: annotate its return `-> tuple[A, B]` or declare @step(outputs=(\"a\", \"b\")). To call a "
               "step once per item, pass this output to that step's .map()."),
    "key": (lambda df: total(df["train"]),  # misuse:key
            "is indexed (['train'])", " To pass its parts to steps one by one, give step '_split' several "
            "outputs: declare @step(outputs=(\"train\", ...)) and return a dict with those keys (or a tuple), "
            "or index it inside the step that takes it."),
    "attribute": (lambda df: total(df.train),  # misuse:attribute
                  "has its attribute `.train` read", " To pass its parts to steps one by one, give step "
                  "'_split' several outputs: declare @step(outputs=(\"train\", ...)) and return a dict with "
                  "those keys, or read `.train` inside the step that takes it."),
}


def _unpacked(df):
    train, test = df  # misuse:unpack
    return train


@pytest.mark.parametrize("misuse", sorted(PART_MISUSES))
def test_taking_a_part_of_a_single_output_says_how_to_give_the_step_several(misuse: str) -> None:
    use, said, hint = PART_MISUSES[misuse]

    @pipeline
    def body(n: int = 3):
        return use(_split(load(n)))

    with pytest.raises(PipelineDefinitionError) as info:
        body.build()
    assert str(info.value) == (
        f"the output of step '_split' {said} at test_pipeline.py:{_line_of(f'# misuse:{misuse}')} while the "
        "pipeline is being built, but it does not exist until the step runs. Pass it to another step and use "
        f"it there.{hint}"
    )


def test_unpacking_one_of_several_outputs_does_not_suggest_several_outputs() -> None:
    @step
    def halves(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        return df.iloc[:1], df.iloc[1:]

    @pipeline
    def body(n: int = 3):
        first, _ = halves(load(n))
        a, b = first
        return total(a)

    with pytest.raises(PipelineDefinitionError) as info:
        body.build()
    assert "several outputs" not in str(info.value)
    assert str(info.value).endswith("To call a step once per item, pass this output to that step's .map().")


@step
def _thirds(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    return df.iloc[:1], df.iloc[1:2], df.iloc[2:]


def _two_of_three(df):
    a, b = _thirds(df)  # unpack:2
    return a


def _four_of_three(df):
    a, b, c, d = _thirds(df)  # unpack:4
    return a


@pytest.mark.parametrize(("unpack", "names"), [(_two_of_three, 2), (_four_of_three, 4)])
def test_unpacking_several_outputs_into_another_number_of_names_names_the_step_and_its_outputs(unpack, names):
    """Python's `too many values to unpack (expected 2)` named neither the step nor how many outputs it has."""
    @pipeline
    def body(n: int = 3):
        return total(unpack(load(n)))

    with pytest.raises(PipelineDefinitionError) as info:
        body.build()
    site = f"test_pipeline.py:{_line_of(f'# unpack:{names}')}"
    assert str(info.value) == (
        f"the result of step '_thirds' ({_thirds.site}) is unpacked into {names} names at {site}, but the step "
        "has 3 outputs (out0, out1, out2). Unpack 3 names (out0, out1, out2 = _thirds(...)), or take one output "
        "by name (_thirds(...).out0)."
    )


@dataclass
class _Inputs:
    frames: list


@pytest.mark.parametrize(("wrap", "what"), [
    (lambda df: {df}, "a set"),
    (lambda df: frozenset([df]), "a frozenset"),
    (lambda df: _Inputs([df]), "dataclass _Inputs"),
])
def test_an_output_hidden_in_a_set_or_a_dataclass_is_refused_when_built(wrap, what: str, tmp_path) -> None:
    @pipeline
    def body(n: int = 3):
        return total(wrap(load(n)))

    with pytest.raises(PipelineDefinitionError) as info:
        body.build()
    assert re.fullmatch(
        rf"step 'total' \(test_pipeline.py:\d+\): argument 'value' holds the output of step 'load' inside {what}, "
        r"where it would stay a placeholder: a step's output reaches a step as an argument, or inside a list, "
        rf"tuple or dict. Pass it that way and build {what} inside the step.", str(info.value))


@pytest.mark.parametrize("wrap", [
    lambda df: {df: 1},
    lambda df: {df: df},
    lambda df: {"other": 2, df: "label"},
])
def test_an_output_as_a_dict_key_is_refused_when_built(wrap) -> None:
    """A key is not replaced by the value: the step got the placeholder itself, and ran before its producer."""
    @pipeline
    def body(n: int = 3):
        return total(wrap(load(n)))

    with pytest.raises(PipelineDefinitionError) as info:
        body.build()
    assert re.fullmatch(
        r"step 'total' \(test_pipeline.py:\d+\): argument 'value' holds the output of step 'load' as a key of a "
        r"dict, where it would stay a placeholder: a step's output reaches a step as an argument, or inside a "
        r"list, tuple or dict \(as a value\). Pass it that way and build the dict inside the step.", str(info.value))


@pytest.mark.parametrize("attr", ["name", "node"])
def test_reading_name_or_node_of_an_output_in_a_body_fails_as_any_attribute(attr: str) -> None:
    """They are the placeholder's own attributes: `model.name` passed the text "out" to the step."""
    @pipeline
    def body(n: int = 3):
        return total(getattr(load(n), attr))

    with pytest.raises(PipelineDefinitionError, match=rf"the output of step 'load' has its attribute `.{attr}` "
                                                      r"read at test_pipeline.py:\d+ while the pipeline"):
        body.build()

    @pipeline
    def whole(n: int = 3):
        return _split(load(n))

    out = whole.build().result  # once the body has run, they are the package's again
    assert (out.node, out.name) == ("_split", "out")


def test_a_misuse_the_body_catches_still_fails_the_build() -> None:
    """Else the body goes on with its guess (`n = 0`) and a different pipeline is built and run."""
    @pipeline
    def body(n: int = 3):
        df = load(n)
        try:
            rows = int(df)  # misuse:caught
        except Exception:
            rows = 0
        return total(load(rows))

    with pytest.raises(PipelineDefinitionError) as info:
        body.build()
    assert str(info.value) == (
        f"the output of step 'load' is used as a value at test_pipeline.py:{_line_of('# misuse:caught')} while "
        "the pipeline is being built, but it does not exist until the step runs. Pass it to another step and "
        "use it there."
    )


def test_an_input_given_under_another_name_is_one_line_naming_the_parameter() -> None:
    @pipeline
    def body(n: int = 3):
        return load(count=n)  # renamed:argument

    with pytest.raises(PipelineDefinitionError) as info:
        body.build()
    assert str(info.value) == (
        f"step 'load' (test_pipeline.py:{_line_of('# renamed:argument')}) has no parameter 'count', and the call "
        "does not give its input 'n'. Name the argument after the step's parameter (n=...).")


def test_a_misuse_is_reported_with_the_mistakes_of_the_calls_before_it() -> None:
    """Mistakes are collected and reported together: a misuse that ended the body dropped the unknown
    arguments of the calls before it, which the user then met one build at a time."""
    @pipeline
    def body(n: int = 3):
        df = load(nn=n)  # misuse:argument
        if df == 0:  # misuse:after-argument
            return total(df)
        return total(df)

    with pytest.raises(PipelineDefinitionError) as info:
        body.build()
    assert str(info.value).split("\n") == [
        # One line for the misspelt argument: its input 'n' is not given, which the match says already.
        f"step 'load' (test_pipeline.py:{_line_of('# misuse:argument')}) has no parameter 'nn'. Did you mean 'n'?",
        f"the output of step 'load' is used as a value at test_pipeline.py:{_line_of('# misuse:after-argument')} "
        "while the pipeline is being built, but it does not exist until the step runs. Pass it to another step "
        "and use it there.",
    ]


def test_a_caught_misuse_is_named_before_the_error_the_body_raised_instead() -> None:
    @pipeline
    def body(n: int = 3):
        df = load(n)
        try:
            rows = int(df)  # misuse:reraised
        except Exception as exc:
            raise ValueError("cannot size the frame") from exc
        return total(load(rows))

    with pytest.raises(PipelineDefinitionError) as info:
        body.build()
    first, second = str(info.value).split("\n")
    assert first.startswith(f"the output of step 'load' is used as a value at test_pipeline.py:"
                            f"{_line_of('# misuse:reraised')} while the pipeline is being built")
    assert second.startswith(f"the body of pipeline 'body' ({body.site}) raised ValueError: cannot size the frame")


@step
def scaled(values, factor: float) -> float:
    return float(values.sum()) * factor


def test_an_array_given_to_many_calls_is_hashed_once_per_call_while_built_not_twice(monkeypatch) -> None:
    """Building hashes an argument the body's calls already hashed (to tell it unchanged) only once.

    A loop that gives one large array to every call (``fit(X, a)`` for each ``a``) paid one
    hash per call to tell the array unchanged, then one more per call for the keys.
    """
    import orchestrator.dag as dag_module

    step_module = sys.modules["orchestrator.tracing"]
    values = np.arange(1000, dtype=np.float64)
    seen: list[int] = []

    def counting(value, *args, **kwargs):
        if isinstance(value, np.ndarray) and value.size == values.size:
            seen.append(1)
        return original(value, *args, **kwargs)

    original = dag_module.hash_value
    monkeypatch.setattr(dag_module, "hash_value", counting)
    monkeypatch.setattr(step_module, "hash_value", counting)

    @pipeline
    def sweep():
        return [scaled(values, f) for f in (1.0, 2.0, 3.0, 4.0)]

    dag = sweep.build()
    # The copy once and the array at each later call (is it unchanged?); the keys reuse the copy's digest.
    assert len(seen) == 1 + 3
    digests = {node.params["values"] for node in dag.nodes.values()}
    assert len(digests) == 1

    @pipeline
    def edited():
        out = []
        for f in (1.0, 2.0):
            out.append(scaled(values, f))
            values[0] += 1  # changed between calls: each call keeps what it was given
        return out

    nodes = list(edited.build().nodes.values())
    assert nodes[0].params["values"] != nodes[1].params["values"]
    assert nodes[0].params["values"] == digests.pop()


@step
def _items(n: int) -> list:
    return list(range(n))


@step
def _tenfold(item: int) -> int:
    return item * 10


@pytest.mark.parametrize(("use", "said"), [
    (lambda results: max(results), "is unpacked or iterated"),  # Metaflow's join, in the body
    (lambda results: results[0], "is indexed ([0])"),
])
def test_the_result_of_a_map_over_an_output_is_used_in_a_step_not_taken_apart(use, said) -> None:
    """It said to give step 'process.map' several outputs: no step of that name exists."""
    @pipeline
    def body(n: int = 3):
        return total(use(_tenfold.map(_items(n))))

    with pytest.raises(PipelineDefinitionError) as info:
        body.build()
    assert re.fullmatch(
        rf"the output of step '_tenfold.map' {re.escape(said)} at test_pipeline.py:\d+ while the pipeline is being "
        r"built, but it does not exist until the step runs. Pass it to another step and use it there. The result "
        r"of _tenfold.map\(\) over the output of step '_items' is the list of its items' results, made once that "
        r"list is known: pass it whole to a step that takes a list, or map another step over it "
        r"\(`other.map\(results\)`\).", str(info.value))


@step(outputs=("train", "test"))
def _split_as_dict(rows: list) -> dict:
    return {"train": rows[::2], "test": rows[1::2]}


@step
def _split_as_tuple(rows: list) -> tuple[list, list]:
    return rows[::2], rows[1::2]


@step
def _count(rows: list) -> int:
    return len(rows)


@step
def _split_then_count(rows: list) -> int:
    return len(_split_as_dict(rows)["train"])  # a step calling a step: its plain return value


@pipeline
def _by_unpacking(n: int = 5):
    train, test = _split_as_dict(list(range(n)))
    return _count(train), _count(test)


@pipeline
def _by_name(n: int = 5):
    parts = _split_as_dict(list(range(n)))
    return _count(parts.train), _count(parts["test"]), _split_as_tuple(list(range(n)))[1]


@pipeline
def _with_a_step_calling_a_step(n: int = 5):
    return _split_then_count(list(range(n)))


@pipeline
def _by_alias_and_map(n: int = 5):
    first, _ = _split_as_dict.alias("halves")(list(range(n)))
    return [pair.test for pair in _split_as_dict.map([first, [7, 8]])]


@step
async def _fetch(n: int) -> list:
    import asyncio

    await asyncio.sleep(0)
    return list(range(n))


@pipeline
def _awaited(n: int = 5):
    return _count(_fetch(n))


@pytest.mark.parametrize("body", [_by_unpacking, _by_name, _with_a_step_calling_a_step, _by_alias_and_map,
                                  _awaited])
def test_a_pipeline_called_as_a_function_gives_what_its_run_gives(body, tmp_path) -> None:
    # A step returning its outputs as a dict, unpacked in a body called directly, gave the body the
    # dict's keys ("train", "test": counted as 5 and 4 letters), and `.train` an AttributeError.
    assert body() == body.run(store=str(tmp_path / "store")).output()


def test_a_step_of_several_outputs_called_alone_still_returns_what_it_returns() -> None:
    assert _split_as_dict([1, 2, 3]) == {"train": [1, 3], "test": [2]}


def test_a_pipeline_called_as_a_function_names_a_missing_output() -> None:
    @pipeline
    def misspelt():
        return _count(_split_as_dict([1, 2]).tran)

    with pytest.raises(AttributeError, match="no output 'tran': the outputs are train, test. Did you mean 'train'?"):
        misspelt()


def test_a_pipeline_called_as_a_function_refuses_a_return_a_run_refuses() -> None:
    @step(outputs=("a", "b"))
    def wrong() -> dict:
        return {"a": 1, "c": 2}

    @pipeline
    def body():
        return wrong()

    with pytest.raises(TypeError, match=r"step 'wrong' declares 2 outputs \(a, b\) but returned a dict with keys a, c"):
        body()


@step
def _names_of_split(rows: list) -> list:
    return sorted(_split_as_dict(rows))  # a step calling a step: the dict it returns, whose keys these are


@pipeline
def _naming(n: int = 5):
    return _names_of_split(list(range(n)))


@pipeline
def _runs_another(tmp: str = ""):
    return _naming.run(store=tmp).output()


def test_a_run_started_from_a_body_called_directly_calls_steps_in_its_steps_plainly(tmp_path) -> None:
    assert _naming() == ["test", "train"]
    assert _runs_another(tmp=str(tmp_path / "store")) == ["test", "train"]


def test_a_step_returning_a_tuple_of_any_length_has_one_output(tmp_path) -> None:
    """`-> tuple[int, ...]` was refused on any step, used or not: a tuple of any length is one value."""
    @step
    def shape(n: int) -> tuple[int, ...]:
        return tuple(range(n))

    @step
    def total(t: tuple) -> int:
        return sum(t)

    @pipeline
    def shaped(n: int = 4):
        return total(shape(n))

    assert shape.output_names == ("out",)
    assert shaped.run(store=str(tmp_path / "store")).output() == 6


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"n": 3.7}, "parameter 'n' is annotated int, but got 3.7, which is not whole. Pass an int: round(3.7) or int(...)"),
        ({"n": True}, "parameter 'n' is annotated int, but got True, a flag. Pass a number"),
        ({"ratio": True}, "parameter 'ratio' is annotated float, but got True, a flag. Pass a number"),
        ({"strict": 1}, "parameter 'strict' is annotated bool, but got 1. Pass True or False"),
    ],
)
def test_a_number_or_flag_of_the_wrong_kind_is_refused_from_python(params, message, tmp_path) -> None:
    """`run(n=3.7)` ran its steps with a float, and `--params-from` that run then refused the value it recorded."""
    with pytest.raises(ParameterError, match=re.escape(f"pipeline 'counting': {message}")):
        counting.run(store=str(tmp_path / "s"), **params)
    assert not (tmp_path / "s").exists()


def test_numbers_python_takes_for_a_kind_are_kept(tmp_path):
    import numpy as np

    store = str(tmp_path / "s")
    for params in ({"n": 3.0}, {"n": np.int64(3)}, {"ratio": 1}, {"ratio": np.float32(0.5)}, {"strict": np.bool_(True)}):
        counting.plan(store=store, **params)
    with pytest.raises(ParameterError, match=re.escape("parameter 'depths' is annotated list[int], but got 3. "
                                                       "Pass a list: [3]")):
        typed.plan(store=store, depths=3)
    typed.plan(store=store, depths=np.array([1, 2]), day=datetime.datetime(2024, 5, 6))
