"""Lineage walks name the step that made an artifact, also when a later step passed it on."""

from __future__ import annotations

from orchestrator.context import Context
from orchestrator.loader import load_pipeline
from orchestrator.provenance import walk

from .conftest import PIPELINES


def test_a_passed_on_artifact_is_traced_to_the_step_that_made_it(store):
    run = load_pipeline(str(PIPELINES / "passthrough.py")).run(store=str(store), n=5)
    assert run.status == "succeeded"
    lineage = Context.open(store).lineage
    graph = walk(lineage, f"{run.id}:total", "upstream")
    steps = [v.data["step"] for v in graph.vertices.values() if v.kind == "step"]
    assert steps == ["total", "load"]  # a_check output the same digest but did not make it
    digest = run.steps["load"].outputs["out"]
    assert [node for _, node, _ in lineage.producers(digest)] == ["load", "a_check"]
    assert [node for _, node, _ in lineage.consumers(digest)] == ["a_check", "total"]
    # No vertex points back at itself through the shared digest.
    artifact = graph.vertices[f"artifact:{digest}"]
    assert artifact.children == [("produced by", f"step:{run.id}:load")]


def test_a_relative_input_path_is_recorded_absolute(tmp_path, monkeypatch, calls):
    """The audit trail must locate the file whatever folder the run was started from."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "input.txt").write_text("hello")
    monkeypatch.chdir(work)
    run = load_pipeline(str(PIPELINES / "files.py")).run(store=str(tmp_path / "store"))
    assert run.status == "succeeded"
    lineage = Context.open(tmp_path / "store").lineage
    paths = [path for _, _, _, path in lineage.step_edges(run.id, "read") if path]
    assert paths == [str(work / "input.txt")]

