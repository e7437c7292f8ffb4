"""Re-running an earlier run: ``orch run FILE --params-from RUN`` and ``pipeline.run(params_from=RUN)``.

A user finds last week's good model and rebuilds it: the parameters its run
recorded come back as the pipeline's types (a Path, a dataclass or pydantic
config, an Enum, a date, a list, a dict, a tuple, a set), so every step keeps
its key and ``orch diff`` shows nothing but what really changed.
"""

from __future__ import annotations

import json

import pytest

import orchestrator
from orchestrator import UserError
from orchestrator.loader import load_pipeline

GIVEN = ["-p", "data=data.csv", "-p", 'cfg={"lr": 0.5, "layers": [4, 4], "kind": "tree"}', "-p", 'opt={"beta": 0.5}',
         "-p", "kind=TREE", "-p", "day=2024-02-03", "-p", "at=2024-05-06T10:11:12", "-p", 'cols=["x", "y"]',
         "-p", 'weights={"x": 2}', "-p", "shape=[3, 4]", "-p", 'tags=["b", "a"]', "-p", "seed=3",
         "-p", 'by_id={"2": 0.25}']  # by_kind keeps its default, {Kind.TREE: 1}


@pytest.fixture
def first(orch, project, calls):
    """A run of typed_params.py given a value of each kind by -p: its run id."""
    (project / "data.csv").write_text("x,y\n1,2\n")
    result = orch("run", "typed_params.py", *GIVEN, "--json")
    assert result.returncode == 0, result.stderr
    calls.clear()
    return json.loads(result.stdout)["run_id"]


def _show(orch, run_id):
    return json.loads(orch("show", run_id, "--json").stdout)


def test_a_run_repeated_from_its_parameters_reuses_every_step_and_differs_in_nothing(orch, first, calls):
    result = orch("run", "typed_params.py", "--params-from", first[:8], "--json")
    assert result.returncode == 0, result.stderr
    again = json.loads(result.stdout)
    assert calls.counts()["describe"] == 0  # its key is the first run's: every value came back as it was
    assert again["params"] == _show(orch, first)["params"]
    assert again["params"]["tags"] == ["a", "b"] and again["params"]["cfg"]["kind"] == "tree"
    assert again["params"]["by_id"] == {"2": 0.25} and again["params"]["by_kind"] == {"tree": 1}
    diff = json.loads(orch("diff", first, again["run_id"], "--json").stdout)
    assert diff["params"] == [] and diff["steps"] == []
    planned = json.loads(orch("plan", "typed_params.py", "--params-from", first, "--json").stdout)
    assert [s["status"] for s in planned["steps"]] == ["cached"]


def test_a_later_p_changes_one_parameter_and_diff_says_only_that(orch, first, calls):
    result = orch("run", "typed_params.py", "--params-from", first, "-p", "seed=4", "--json")
    assert result.returncode == 0, result.stderr
    again = json.loads(result.stdout)
    assert calls.counts()["describe"] == 1
    diff = json.loads(orch("diff", first, again["run_id"], "--json").stdout)
    assert [(c["name"], c["a"], c["b"]) for c in diff["params"]] == [("seed", 3, 4)]
    assert [s["reasons"] for s in diff["steps"]] == [["parameter `seed` changed (3 → 4)"]]


def test_a_run_of_another_pipeline_or_no_run_is_one_line(orch, first):
    assert orch("run", "two_params.py", "-p", "x=2").returncode == 0
    result = orch("run", "typed_params.py", "--params-from", "latest")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert lines[0].startswith("error: run ") and "is a run of pipeline 'two_params', not 'typed_params': " \
        f"--params-from takes a run of 'typed_params' (its latest is {first[:12]}; " in lines[0]
    # latest~N counts every pipeline's runs: the line names this pipeline's own latest~N too.
    again = orch("run", "typed_params.py", "--params-from", first, "-p", "seed=8", "--json")
    assert again.returncode == 0, again.stderr
    assert orch("run", "two_params.py", "-p", "x=3").returncode == 0
    assert orch("run", "two_params.py", "-p", "x=4").returncode == 0
    back = orch("run", "typed_params.py", "--params-from", "latest~1")
    assert back.returncode == 2 and back.stderr.count("\n") == 1
    assert "is a run of pipeline 'two_params', not 'typed_params': --params-from takes a run of 'typed_params' " \
        f"(its latest is {json.loads(again.stdout)['run_id'][:12]}, its latest~1 {first[:12]}; " in back.stderr
    missing = orch("run", "typed_params.py", "--params-from", "fffffff")
    assert missing.returncode == 2 and missing.stderr.strip() == "error: no run 'fffffff' in this store. " \
        "List runs with `orch runs`."


def test_python_takes_params_from_too(orch, first, project, store, calls, monkeypatch):
    monkeypatch.chdir(project)  # data.csv is relative, as it was given
    typed = load_pipeline(str(project / "typed_params.py"))
    run = typed.run(store=str(store), params_from=first)
    assert run.status == "succeeded" and run.steps["describe"].status == "cached"
    # What it was given, as recorded, on the live Run and on one read back.
    assert run.params == orchestrator.get_run(first, store=store).params == _show(orch, first)["params"]
    changed = typed.run(store=str(store), params_from=first, seed=5)
    assert changed.steps["describe"].status == "ran"
    assert _show(orch, changed.id)["params"] == {**_show(orch, first)["params"], "seed": 5}
    assert typed.plan(store=str(store), params_from=first).entries[0].status == "cached"
    two = load_pipeline(str(project / "two_params.py"))
    with pytest.raises(UserError, match=rf"^run {first[:12]} is a run of pipeline 'typed_params', not "
                                        r"'two_params': params_from= takes a run of 'two_params' "):
        two.run(store=str(store), params_from=first)
    with pytest.raises(UserError, match="params_from= takes a run id"):
        typed.run(store=str(store), params_from=3)  # type: ignore[arg-type]


def test_a_parameter_the_pipeline_no_longer_has_is_left_out_and_said(orch, first, project, store, monkeypatch):
    """Refusing the run for it would leave no way to rebuild the rest."""
    from .conftest import edit_file

    edit_file(project, "typed_params.py", "tags: set[str] = {\"x\"}, seed: int = 0,", "tags: set[str] = {\"x\"},")
    edit_file(project, "typed_params.py", "tags, seed, by_id", "tags, 0, by_id")
    result = orch("run", "typed_params.py", "--params-from", first, "--json")
    assert result.returncode == 0, result.stderr
    assert (f"warning: run {first[:12]} was given 'seed' (3), which pipeline 'typed_params' no longer takes: "
            "left out.") in result.stderr.splitlines()
    again = json.loads(result.stdout)["params"]
    assert "seed" not in again and again["cfg"] == _show(orch, first)["params"]["cfg"]

    monkeypatch.chdir(project)
    typed = load_pipeline(str(project / "typed_params.py"))
    with pytest.warns(UserWarning, match=r"was given 'seed' \(3\), which pipeline 'typed_params' no longer takes") \
            as caught:
        assert typed.plan(store=str(store), params_from=first).entries[0].status == "cached"
    assert caught[0].filename == __file__  # the line of the user's call


def test_a_value_its_type_no_longer_takes_names_the_run_and_p_replaces_it(orch, first, project):
    from .conftest import edit_file

    edit_file(project, "typed_params.py", "seed: int = 0,", "seed: bool = False,")
    result = orch("run", "typed_params.py", "--params-from", first)
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: parameter 'seed' in run {first[:12]}: expected true or false, got 3."
    assert orch("run", "typed_params.py", "--params-from", first, "-p", "seed=true").returncode == 0
