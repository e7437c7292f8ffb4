"""What a REPL shows for a ``Run``, its ``StepResult``s and a ``Plan``: one readable line each, no digests."""

from __future__ import annotations

import re

from orchestrator import pipeline, step


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
    run = summed.run(store=str(tmp_path / "store"), n=2.5)
    assert repr(run).startswith(
        f"<run {run.id} of pipeline 'summed': failed (1 failed, 1 skipped): step 'load' failed after 1 attempt: "
        "TypeError: 'float' object cannot be interpreted as an integer")
    assert repr(run.steps["total"]) == "<result of step 'total': skipped (upstream step 'load' failed)>"
    assert repr(run.steps["load"]).endswith("(TypeError: 'float' object cannot be interpreted as an integer)>")


def test_repr_of_a_plan_is_what_orch_plan_prints(tmp_path) -> None:
    store = str(tmp_path / "store")
    summed.run(store=store)
    assert repr(summed.plan(store=store, n=4)) == (
        "<plan of pipeline 'summed': 1 will run, 1 may run\n"
        "  load   will run  parameter `n` changed (3 → 4)\n"
        "  total  may run   input from step 'load', which will run>"
    )
