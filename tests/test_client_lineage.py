"""``orchestrator.lineage``: "which data, code and parameters produced this?" answered as data.

A notebook gets the document ``orch lineage REF --format json`` prints, from
the same walk, and a mistake raises the line the CLI prints.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

import orchestrator
from orchestrator import UserError, pipeline, step


@pytest.fixture
def history(orch, project, store):
    """Two runs of tests/pipelines/files.py on the same input file, with another ``unit``."""
    (project / "input.txt").write_text("hello lineage")
    ids = []
    for unit in ("chars", "letters"):
        result = orch("run", "files.py", "-p", f"unit={unit}", "--json")
        assert result.returncode == 0, result.stderr
        ids.append(json.loads(result.stdout)["run_id"])
    return ids


def _steps(doc):
    return {(n["run_id"], n["step"]): n for n in doc["nodes"] if n["kind"] == "step"}


def test_upstream_of_a_result_names_its_data_code_and_parameters(history, orch, project, store):
    first, second = history
    doc = orchestrator.lineage(f"{second}:report", store=store)
    # The same document the CLI prints, not a look-alike.
    printed = orch("lineage", f"{second}:report", "--format", "json")
    assert printed.returncode == 0, printed.stderr
    assert doc == json.loads(printed.stdout)

    assert doc["direction"] == "upstream" and doc["roots"] == [f"step:{second}:report"]
    steps = _steps(doc)
    report = steps[(second, "report")]
    assert report["params"]["unit"] == "letters" and report["status"] == "ran"
    assert report["code"] and "<self>" in report["code_parts"]
    # read and length were cached from the first run: their step runs are those of the first run.
    read = next(n for (_, name), n in steps.items() if name == "read")
    assert read["computed_by"] == f"{first}:read"
    files = [n for n in doc["nodes"] if n["kind"] == "file"]
    assert [f["path"] for f in files] == [str(project / "input.txt")]
    assert len(files[0]["digest"]) >= 12 and "now" not in files[0]  # the content the run read, still there

    # depth=0 is REF alone, as --depth 0.
    alone = orchestrator.lineage(f"{second}:report", depth=0, store=store)
    assert [n["id"] for n in alone["nodes"]] == [f"step:{second}:report"]


def test_downstream_of_a_file_names_the_runs_that_used_it(history, project, store):
    first, second = history
    doc = orchestrator.lineage(project / "input.txt", "downstream", store=store)  # a Path, or its text
    assert doc["direction"] == "downstream"
    assert {run for run, _ in _steps(doc)} == {first, second}
    assert {(run, name) for run, name in _steps(doc) if name == "report"} == {(first, "report"), (second, "report")}
    assert doc["other_contents"] == []
    assert orchestrator.lineage(str(project / "input.txt"), "downstream", store=store) == doc


def test_a_mistake_raises_the_line_the_cli_prints(history, orch, store):
    for ref in ("nope", f"{history[0]}:reprt", "ffffffffff"):
        with pytest.raises(UserError) as caught:
            orchestrator.lineage(ref, store=store)
        printed = orch("lineage", ref, "--format", "json")
        assert printed.returncode == 2
        assert printed.stderr.strip() == f"error: {caught.value}", ref
        assert "\n" not in str(caught.value)
    with pytest.raises(UserError, match=r"^direction must be 'upstream' or 'downstream', not 'down'.$"):
        orchestrator.lineage("latest", "down", store=store)
    with pytest.raises(UserError, match=r"^depth must be a whole number of steps"):
        orchestrator.lineage("latest", depth=-1, store=store)
    with pytest.raises(UserError, match="a REF is text"):
        orchestrator.lineage(5, store=store)  # type: ignore[arg-type]


@step
def square(x: int) -> int:
    return x * x


@pipeline
def squares(n: int = 20):
    return square.map(list(range(n)))


def test_an_ambiguous_prefix_raises_as_get_run_does(store):
    run = squares.run(store=str(store))
    digests = [s.outputs["out"] for s in run.steps.values()] + [run.id]
    # 21 run ids and digests over 16 hex characters: one character begins two of them.
    prefix = Counter(d[0] for d in digests).most_common(1)[0][0]
    with pytest.raises(UserError, match=rf"^'{prefix}' is ambiguous"):
        orchestrator.lineage(prefix, store=store)


def test_the_function_stays_the_function_once_the_metadata_database_is_open():
    """``orchestrator.lineage`` is the function before and after a run opened the metadata database."""
    import importlib

    importlib.import_module("orchestrator.lineage_db")  # what get_run() and every run open

    assert callable(orchestrator.lineage) and orchestrator.lineage.__module__ == "orchestrator.client"
