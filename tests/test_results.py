"""What a REPL shows for a ``Run``, its ``StepResult``s and a ``Plan``: one readable line each, no digests."""

from __future__ import annotations

import re
import shutil
import sys

import pytest

import orchestrator
from orchestrator import UserError, pipeline, step


@step
def load(n: int) -> list:
    return list(range(n))


@step
def total(xs: list) -> int:
    return sum(xs)


@pipeline
def summed(n: int = 3):
    return total(load(n))


def test_repr_of_a_run_and_its_steps(tmp_path) -> None:
    store = str(tmp_path / "store")
    run = summed.run(store=store)
    assert repr(run) == f"<run {run.id} of pipeline 'summed': succeeded (2 ran); store {store}>"
    assert re.fullmatch(r"<result of step 'total': ran, 1 attempt, [\d.]+ ms \(no earlier result\)>",
                        repr(run.steps["total"]))
    assert repr(summed.run(store=store).steps["load"]) == "<result of step 'load': cached>"


def test_repr_of_a_failed_run_names_the_error(tmp_path) -> None:
    run = summed.run(store=str(tmp_path / "store"), n=10**30)  # more items than a list can hold
    assert repr(run).startswith(
        f"<run {run.id} of pipeline 'summed': failed (1 failed, 1 skipped): step 'load' failed after 1 attempt: "
        "OverflowError: Python int too large to convert to C ssize_t")
    assert repr(run.steps["total"]) == "<result of step 'total': skipped (upstream step 'load' failed)>"
    assert repr(run.steps["load"]).endswith("(OverflowError: Python int too large to convert to C ssize_t)>")


def test_repr_of_a_plan_is_what_orch_plan_prints(tmp_path) -> None:
    store = str(tmp_path / "store")
    summed.run(store=store)
    assert repr(summed.plan(store=store, n=4)) == (
        "<plan of pipeline 'summed': 1 will run, 1 may run\n"
        "  load   will run  parameter `n` changed (3 → 4)\n"
        "  total  may run   input from step 'load', which will run>"
    )


def test_a_run_whose_store_was_deleted_says_so_and_makes_no_new_store(tmp_path) -> None:
    """A notebook keeps a Run after its store (a temporary folder) is gone: reading it must not re-create it."""
    store = tmp_path / "store"
    run = summed.run(store=str(store))
    assert run.output() == 3 and run.metrics == {}
    shutil.rmtree(store)
    for read in (run.output, lambda: run.metrics, run.steps["total"].output):
        with pytest.raises(UserError, match=rf"^run {run.id} was made in the store {re.escape(str(store))}, which "
                           r"is gone \(no .*metadata.db\): it was deleted or moved. Run the pipeline again"):
            read()
    assert not store.exists()


def test_get_run_refuses_a_store_that_is_no_path(tmp_path) -> None:
    with pytest.raises(orchestrator.UserError, match=r"^store must be a folder path or a URL, got 5 \(int\).$"):
        orchestrator.get_run(store=5)  # type: ignore[arg-type]
    with pytest.raises(orchestrator.UserError, match=r"^metadata must be a folder path, got 5 \(int\).$"):
        orchestrator.load("latest", store=str(tmp_path), metadata=5)  # type: ignore[arg-type]


@step
def divide(xs: list) -> float:
    return 1 / (len(xs) - 2)


@pipeline
def failing(n: int = 2):
    return divide(load(n))


def test_a_failed_step_shows_its_traceback_from_python(tmp_path) -> None:
    store = str(tmp_path / "store")
    run = failing.run(store=store)
    traceback = run.steps["divide"].traceback
    assert traceback is not None and traceback.startswith("Traceback (most recent call last):")
    assert "return 1 / (len(xs) - 2)" in traceback and traceback.endswith("ZeroDivisionError: division by zero\n")
    assert run.steps["load"].traceback is None
    assert orchestrator.get_run(run.id, store=store).steps["divide"].traceback == traceback


def test_run_and_step_result_are_importable_from_the_package_without_loading_them_at_import() -> None:
    import subprocess
    import sys
    from pathlib import Path

    script = ("import sys, orchestrator; loaded = 'orchestrator.results' in sys.modules; "
              "from orchestrator import Run, StepResult; import orchestrator.results as r; "
              "print(loaded, Run is r.Run, StepResult is r.StepResult, 'Run' in orchestrator.__all__)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent)
    assert out.stdout.split() == ["False", "True", "True", "True"]
    with pytest.raises(AttributeError, match="has no attribute 'Runn'"):
        orchestrator.Runn  # noqa: B018


def test_repr_of_a_built_dag_and_its_nodes_is_short() -> None:
    dag = summed.build(n=4)
    assert repr(dag) == "<dag of pipeline 'summed'(n=4): 2 nodes: load, total>"
    assert repr(dag.nodes["total"]) == f"<node 'total' ({dag.nodes['total'].site}), after load>"


@step
def square(x: int) -> int:
    return x * x


@pipeline
def squared(n: int = 3):
    return total(square.map(load(n)))


def test_a_step_the_run_lacks_names_the_steps_it_has(tmp_path) -> None:
    # A typo or a map item asked as `square[0]` was a bare `KeyError: 'totl'`.
    store = str(tmp_path / "store")
    run = squared.run(store=store)
    with pytest.raises(KeyError, match=r"run \w+ has no step 'totl'\. Did you mean 'total'\? "
                                       r"Its steps: load, square, square_2, square_3, total\."):
        run.steps["totl"]
    with pytest.raises(KeyError, match=r"The items of a map are nodes named after its step: square, square_2, "
                                       r"\.\.\. \(run\.steps\['square_2'\] is its second item\)"):
        orchestrator.get_run("latest", store=store).steps["square[1]"]
    assert run.steps.get("totl") is None and "totl" not in run.steps  # still a dict
    assert run.steps["square_2"].output() == 1


def test_what_a_step_printed_warned_and_logged_is_read_from_python(tmp_path, monkeypatch) -> None:
    # A notebook without verbose=True or a terminal had no way to see it (orch logs RUN:STEP only).
    import logging
    import warnings

    @step
    def talks(n: int) -> int:
        print(f"read {n} rows")
        warnings.warn("column 'age' is text", UserWarning)
        logging.getLogger("proj").warning("3 rows dropped")
        return n

    @pipeline
    def talking(n: int = 3):
        return total(load(talks(n)))

    store = str(tmp_path / "store")
    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001, ANN202
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))

    with warnings.catch_warnings():  # shown on stderr, as outside pytest (which records them)
        warnings.simplefilter("always")
        monkeypatch.setattr(warnings, "showwarning", show)
        run = talking.run(store=store)
    said = run.steps["talks"]
    assert said.stdout == "read 3 rows\n"
    assert "UserWarning: column 'age' is text" in said.stderr
    assert said.logs.endswith("WARNING proj: 3 rows dropped\n")
    cached = talking.run(store=store).steps["talks"]
    assert cached.status == "cached" and cached.stdout == "read 3 rows\n"  # the run that made the result
    assert run.steps["load"].stdout == run.steps["load"].stderr == run.steps["load"].logs == ""


@step
def _failing_with_its_run() -> int:
    raise ValueError(f"see orch show {orchestrator.current_run_id()}")


@pipeline
def _names_its_run():
    return _failing_with_its_run()


@pytest.mark.parametrize("executor", ["sequential", "process"])
def test_a_step_reads_the_id_of_its_run_for_its_messages(tmp_path, executor) -> None:
    """A step's error could only say `orch show RUN_ID`, leaving the user to find which run it was."""
    run = _names_its_run.run(store=str(tmp_path), executor=executor)
    assert run.status == "failed" and f"ValueError: see orch show {run.id}" in run.error
    assert orchestrator.current_run_id() is None  # outside a run
