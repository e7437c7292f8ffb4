"""Two different step functions of one name in one pipeline: warned of at run and at plan, not renamed."""

from __future__ import annotations

import json
import warnings

from orchestrator import pipeline, step


@step(name="clean")
def _clean_rows(x: int) -> int:
    return x + 1


@step(name="clean")
def _clean_text(x: int) -> int:
    return x * 2


@pipeline
def _both(x: int = 1):
    return _clean_text(_clean_rows(x))


@pipeline
def _aliased(x: int = 1):
    return _clean_text.alias("clean_text")(_clean_rows(x))


def _expected() -> str:
    return (f"2 different steps are named 'clean': {_clean_rows.site} (clean), {_clean_text.site} (clean_2), "
            "told apart by call order only. Name one @step(name=\"...\") or call it with .alias(\"...\").")


def test_two_functions_of_one_name_are_warned_of_at_plan_and_run(tmp_path):
    """`clean` and `clean_2` name a node by call order: swapping two body lines swapped what --rerun clean forced."""
    assert _both.plan(store=str(tmp_path)).warnings == [_expected()]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = _both.run(store=str(tmp_path))
    assert run.status == "succeeded" and run.output() == 4
    assert [str(w.message) for w in caught] == [_expected()]


def test_an_alias_or_one_function_called_twice_is_not_warned_of(tmp_path):
    @pipeline
    def twice(x: int = 1):
        return _clean_rows(_clean_rows(x))

    assert _aliased.plan(store=str(tmp_path)).warnings == []
    assert twice.plan(store=str(tmp_path)).warnings == []


def test_plan_json_lists_the_warning(orch, project):
    (project / "rows.py").write_text("from orchestrator import step\n\n@step\ndef clean(x: int) -> int:\n"
                                     "    return x + 1\n")
    (project / "text.py").write_text("from orchestrator import step\n\n@step\ndef clean(x: int) -> int:\n"
                                     "    return x * 2\n")
    (project / "flow.py").write_text("import rows\nimport text\nfrom orchestrator import pipeline\n\n@pipeline\n"
                                     "def flow(x: int = 1):\n    return text.clean(rows.clean(x))\n")
    planned = orch("plan", "flow.py", "--json")
    assert planned.returncode == 0, planned.stderr
    message = ("2 different steps are named 'clean': rows.py:3 (clean), text.py:3 (clean_2), told apart by call "
               "order only. Name one @step(name=\"...\") or call it with .alias(\"...\").")
    assert json.loads(planned.stdout)["warnings"] == [message]
    ran = orch("run", "flow.py")
    assert ran.returncode == 0 and f"warning: {message}" in ran.stderr
