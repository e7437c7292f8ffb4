"""What `orch plan` says about a step before it runs."""

from __future__ import annotations

from orchestrator.loader import load_pipeline

from .conftest import PIPELINES


def test_plan_names_a_path_parameter_with_no_file_behind_it(tmp_path, calls):
    from pathlib import Path

    plan = load_pipeline(str(PIPELINES / "files.py")).plan(store=str(tmp_path / "store"),
                                                           path=Path(tmp_path / "nosuch.csv"))
    read = next(e for e in plan.entries if e.node == "read")
    assert (read.status, read.reason) == ("will run", f"file `path` does not exist ({tmp_path / 'nosuch.csv'})")


def test_plan_names_a_missing_file_once(tmp_path, calls):
    """After a run that read the file, the reason says it is gone; the note does not repeat the path."""
    from pathlib import Path

    data = tmp_path / "input.txt"
    data.write_text("hello")
    files, store = load_pipeline(str(PIPELINES / "files.py")), str(tmp_path / "store")
    files.run(store=store, path=Path(data))
    data.unlink()
    read = next(e for e in files.plan(store=store, path=Path(data)).entries if e.node == "read")
    assert (read.status, read.reason) == ("will run", f"file `path` is gone ({data})")


def test_rerun_of_a_function_whose_step_has_another_name_names_that_step(tmp_path):
    """`@step(name="fit_2") def other`: `--rerun other` said only that there is no step 'other'."""
    import pytest

    from orchestrator import pipeline, step
    from orchestrator.errors import UserError

    @step
    def fit(xs: list) -> int:
        return len(xs)

    @step(name="fit_2")
    def other(xs: list) -> int:
        return sum(xs)

    @pipeline
    def renamed():
        return fit([1]), other([2])

    with pytest.raises(UserError) as raised:
        renamed.plan(store=str(tmp_path / "store"), rerun="other")
    assert str(raised.value) == ("rerun='other': pipeline 'renamed' has no step 'other'. Function 'other' is the "
                                 "step 'fit_2' here (named by @step(name=...) or an alias): rerun='fit_2'.")
    assert renamed.plan(store=str(tmp_path / "store"), rerun="fit_2").entries[1].status == "will run"


def test_plan_steps_looks_an_entry_up_by_name_as_run_steps_does(tmp_path):
    """A notebook user wrote `plan.steps["fit"].reason`, as `run.steps["fit"]`, and got an AttributeError."""
    import pytest

    from .test_results import squared

    store = str(tmp_path / "store")
    before = squared.plan(store=store)
    assert list(before.steps) == [e.node for e in before.entries] == ["load", "square.map", "total"]
    assert before.steps["load"] is before.entries[0] and before.steps["load"].reason == "no earlier result"
    assert before.steps["total"].status == "may run"
    # A map over an output not made yet is one node: its step's name says where it is.
    with pytest.raises(KeyError, match=r"the plan of pipeline 'squared' has no step 'square'\. Its items are not "
                                       r"made yet .*: the map is plan\.steps\['square\.map'\]\. Its steps: load, "
                                       r"square\.map, total\."):
        before.steps["square"]
    squared.run(store=store)
    after = squared.plan(store=store)
    assert [(name, e.status) for name, e in after.steps.items()] == [
        ("load", "cached"), ("square", "cached"), ("square_2", "cached"), ("square_3", "cached"), ("total", "cached")]
    with pytest.raises(KeyError, match=r"the plan of pipeline 'squared' has no step 'totl'\. Did you mean 'total'\?"):
        after.steps["totl"]
    with pytest.raises(KeyError, match=r"\(plan\.steps\['square_2'\] is its second item\)"):
        after.steps["square[1]"]
    assert after.steps.get("totl") is None and "totl" not in after.steps  # still a dict
    # For a notebook's annotations, as orchestrator.Run: `def check(plan: orchestrator.Plan)`.
    import orchestrator

    assert type(after) is orchestrator.Plan and type(after.steps["load"]) is orchestrator.PlanEntry
    assert {"Plan", "PlanEntry"} <= set(orchestrator.__all__)
