"""Lineage walks follow the pipeline's data flow, also through a step that passed its input on."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from orchestrator import pipeline, step
from orchestrator.context import Context
from orchestrator.hashing import combine
from orchestrator.loader import load_pipeline
from orchestrator.provenance import render, walk

from .conftest import PIPELINES


def test_a_passed_on_artifact_is_traced_through_the_step_that_passed_it(store):
    run = load_pipeline(str(PIPELINES / "passthrough.py")).run(store=str(store), n=5)
    assert run.status == "succeeded"
    lineage = Context.open(store).lineage
    graph = walk(lineage, f"{run.id}:total", "upstream")
    steps = [v.data["step"] for v in graph.vertices.values() if v.kind == "step"]
    assert steps == ["total", "a_check", "load"]  # total read a_check's output, equal to load's
    digest = run.steps["load"].outputs["out"]
    assert [node for _, node, _ in lineage.producers(digest)] == ["load", "a_check"]
    assert [node for _, node, _ in lineage.consumers(digest)] == ["a_check", "total"]
    # No vertex points back at itself through the shared digest.
    passed_on = graph.vertices[f"artifact:{digest}@{run.id}:a_check"]
    assert passed_on.children == [("produced by", f"step:{run.id}:a_check")]
    made = graph.vertices[f"artifact:{digest}@{run.id}:load"]
    assert made.children == [("produced by", f"step:{run.id}:load")]

    down = walk(lineage, f"{run.id}:load", "downstream")
    assert [v.data["step"] for v in down.vertices.values() if v.kind == "step"] == ["load", "a_check", "total"]
    # By digest alone the walk goes by content: the first step run that made it.
    by_content = walk(lineage, digest, "upstream")
    assert by_content.vertices[f"artifact:{digest}"].children == [("produced by", f"step:{run.id}:load")]


def test_equal_content_made_by_another_pipeline_is_not_its_lineage(store):
    """`total` of another pipeline output the same int: it is not downstream of this one's output."""
    ours = load_pipeline(str(PIPELINES / "passthrough.py")).run(store=str(store), n=4)  # total = 6
    other = load_pipeline(str(PIPELINES / "two_params.py")).run(store=str(store), x=2, y=3)  # 3 * 3 = 9
    also = load_pipeline(str(PIPELINES / "two_params.py")).run(store=str(store), x=5, y=1)  # 6 * 1 = 6
    assert ours.output() == also.output() == 6 and other.status == "succeeded"
    lineage = Context.open(store).lineage
    down = walk(lineage, f"{ours.id}:load", "downstream")
    assert {v.data["run_id"] for v in down.vertices.values() if v.kind == "step"} == {ours.id}
    up = walk(lineage, f"{also.id}:second", "upstream")
    assert [v.data["step"] for v in up.vertices.values() if v.kind == "step"] == ["second", "first"]


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


def test_dot_and_mermaid_escape_quotes_and_backslashes_in_labels(tmp_path, monkeypatch, calls):
    """A file input named `we"ird [x].txt` must not end the label early (dot -Tsvg would refuse it)."""
    monkeypatch.chdir(tmp_path)
    name = 'we"ird [x]\\.txt'
    (tmp_path / name).write_text("hello")
    run = load_pipeline(str(PIPELINES / "files.py")).run(store=str(tmp_path / "store"), path=Path(name))
    assert run.status == "succeeded"
    graph = walk(Context.open(tmp_path / "store").lineage, f"{run.id}:read", "upstream")
    shown = str(tmp_path / name).replace("\\", "\\\\").replace('"', '\\"')
    dot = render(graph, "dot")
    assert f'[label="{shown} (' in dot and name not in dot
    mermaid = render(graph, "mermaid")
    assert f'("{tmp_path}/we#quot;ird [x]\\.txt (' in mermaid and '"path"' in mermaid



def test_a_file_on_disk_is_a_lineage_ref_both_ways(tmp_path, monkeypatch, capsys):
    """`orch lineage data.csv --downstream` answers "what was built from this dataset?"."""
    from orchestrator.cli import main

    monkeypatch.chdir(tmp_path)
    store = tmp_path / "store"
    run = load_pipeline(str(PIPELINES / "written.py")).run(store=str(store), rows=3)
    assert run.status == "succeeded" and run.output() == 3
    lineage = Context.open(store).lineage

    down = walk(lineage, "export.txt", "downstream")
    assert {v.data["step"] for v in down.vertices.values() if v.kind == "step"} == {"count"}
    assert len(down.roots) == 1  # one tree, not the file and the path `export` returned side by side
    up = walk(lineage, str(tmp_path / "export.txt"), "upstream")
    assert {v.data["step"] for v in up.vertices.values() if v.kind == "step"} == {"export"}

    def lineage_of(ref):
        try:
            main(["--store", str(store), "lineage", ref])
        except SystemExit as exited:
            return exited.code, capsys.readouterr()
        return 0, capsys.readouterr()

    (tmp_path / "export.txt").write_text("edited by hand\n")
    code, out = lineage_of("export.txt")
    assert code == 2 and out.err.count("\n") == 1
    assert "no run read or wrote 'export.txt' as it is now" in out.err and "earlier contents were" in out.err
    # The command that message suggests answers: the content a step wrote is a ref of its own.
    (earlier,) = _earlier_contents(out.err)
    code = 0
    try:
        main(["--store", str(store), "lineage", earlier, "--downstream", "--format", "json"])
    except SystemExit as exited:
        code = exited.code
    out = capsys.readouterr()
    assert code == 0, out.err
    assert '"count"' in out.out
    (tmp_path / "unrelated.csv").write_text("a\n")
    code, out = lineage_of("unrelated.csv")
    assert code == 2 and "no run in this store read or wrote 'unrelated.csv'" in out.err


def _earlier_contents(err: str) -> list[str]:
    """The digests the "no run read or wrote FILE as it is now" message names, in its order."""
    named = err.split("earlier contents were, most recent first: ")[1].split(".")[0]
    return named.split(" and ")[0].split(", ")


def test_a_changed_file_names_its_most_recent_earlier_contents_and_counts_the_rest(tmp_path, monkeypatch, capsys,
                                                                                  calls):
    """Seven contents read at a path, the file edited since: the message names the five latest, newest
    first, and says how many it left out (it named five in digest order, the newest maybe not among them)."""
    monkeypatch.chdir(tmp_path)
    store = tmp_path / "store"
    files = load_pipeline(str(PIPELINES / "files.py"))
    runs = []
    for i in range(1, 8):
        (tmp_path / "input.txt").write_text("v" * i)
        runs.append(files.run(store=str(store)))
    (tmp_path / "input.txt").write_text("edited by hand")
    lineage = Context.open(store).lineage
    read = [next(d for _, _, d, path in lineage.step_edges(run.id, "read") if path) for run in runs]
    for direction in ((), ("--downstream",)):
        code, _, err = _orch(store, capsys, "lineage", "input.txt", *direction)
        assert code == 2 and err.count("\n") == 1
        assert _earlier_contents(err) == [d[:12] for d in reversed(read[2:])]
        assert "and 2 more." in err

    # Contents a step wrote at a path, and returned as it, by the time of the runs that wrote them.
    @step
    def export(rows: int) -> Path:
        target = Path("export.txt")
        target.write_text("".join(f"{i}\n" for i in range(rows)))
        return target

    @pipeline
    def exported(rows: int = 1):
        return export(rows)

    made = [exported.run(store=str(store), rows=rows) for rows in range(1, 4)]
    (tmp_path / "export.txt").write_text("edited by hand\n")
    code, _, err = _orch(store, capsys, "lineage", "export.txt")
    contents = [lineage.artifact_row(run.steps["export"].outputs["out"])["meta"]["file"]["content"] for run in made]
    assert code == 2 and _earlier_contents(err) == [c[:12] for c in reversed(contents)] and "more" not in err


def test_a_file_inside_a_folder_input_traces_to_that_folder(tmp_path, monkeypatch):
    from orchestrator import pipeline, step

    @step
    def count(folder: Path) -> int:
        return len(list(folder.iterdir()))

    @pipeline
    def folders(folder: Path = Path("data")):
        return count(folder)

    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.csv").write_text("a\n")
    run = folders.run(store=str(tmp_path / "store"))
    graph = walk(Context.open(tmp_path / "store").lineage, "data/x.csv", "downstream")
    assert [graph.vertices[r].data["path"] for r in graph.roots] == [str(tmp_path / "data")]
    assert {v.data["run_id"] for v in graph.vertices.values() if v.kind == "step"} == {run.id}


def test_a_store_recorded_before_input_sources_is_migrated_with_its_sources(tmp_path):
    """A version-1 database (edges without their source node) opens, migrates, and follows the data flow."""
    import sqlite3

    from orchestrator.lineage_schema import SCHEMA_VERSION

    store = tmp_path / "store"
    run = load_pipeline(str(PIPELINES / "passthrough.py")).run(store=str(store), n=3)
    db = store / "metadata.db"
    with sqlite3.connect(db) as conn:  # turn it back into what version 1 wrote
        conn.executescript(
            "CREATE TABLE old_edges AS SELECT run_id, node, direction, name, digest, path FROM edges;"
            "DROP TABLE edges;"
            "CREATE TABLE edges (run_id TEXT NOT NULL, node TEXT NOT NULL, direction TEXT NOT NULL, "
            "name TEXT NOT NULL, digest TEXT NOT NULL, path TEXT, PRIMARY KEY (run_id, node, direction, name)) "
            "WITHOUT ROWID; INSERT INTO edges SELECT * FROM old_edges; DROP TABLE old_edges;"
            "ALTER TABLE steps DROP COLUMN origin;"
            "ALTER TABLE runs DROP COLUMN result;"
            "UPDATE meta SET value='1' WHERE key='schema_version';")
    conn.close()
    lineage = Context.open(store).lineage
    assert lineage.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == \
        str(SCHEMA_VERSION)
    up = walk(lineage, f"{run.id}:total", "upstream")  # sources filled in from the run's own records
    assert [v.data["step"] for v in up.vertices.values() if v.kind == "step"] == ["total", "a_check", "load"]
    again = load_pipeline(str(PIPELINES / "passthrough.py")).run(store=str(store), n=3)
    assert again.status == "succeeded" and all(s.status == "cached" for s in again.steps.values())


def test_the_tree_shows_code_and_whether_an_input_file_changed_since(tmp_path, monkeypatch, calls):
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "input.txt"
    data.write_text("hello")
    store = tmp_path / "store"
    run = load_pipeline(str(PIPELINES / "files.py")).run(store=str(store))
    lineage = Context.open(store).lineage
    code = lineage.step_row(run.id, "read")["key_parts"]["code"]
    tree = render(walk(lineage, f"{run.id}:shout", "upstream"), "tree")
    assert f"code {code[:12]}" in tree
    assert f"{data} (" in tree and "changed since" not in tree
    data.write_text("bye")
    assert "changed since)" in render(walk(lineage, f"{run.id}:shout", "upstream"), "tree")
    data.unlink()
    assert "gone since)" in render(walk(lineage, f"{run.id}:shout", "upstream"), "tree")


def test_a_cached_step_run_keeps_its_origin_after_a_later_rerun_of_the_same_key(store):
    """Run 2 reused run 1's `load`; a forced run 3 recomputes that key: run 2 still came from run 1."""
    pipe = load_pipeline(str(PIPELINES / "passthrough.py"))
    first = pipe.run(store=str(store), n=4)
    second = pipe.run(store=str(store), n=4)
    third = pipe.run(store=str(store), n=4, rerun=["load"])
    assert second.steps["load"].status == "cached" and third.steps["load"].status == "ran"
    lineage = Context.open(store).lineage
    assert lineage.origin(second.id, "load") == (first.id, "load")
    graph = walk(lineage, f"{second.id}:total", "upstream")
    # The walk follows run 2's own steps; each says which step run computed what it reused.
    steps = {v.data["step"]: v.data for v in graph.vertices.values() if v.kind == "step"}
    assert {d["run_id"] for d in steps.values()} == {second.id}
    assert steps["load"]["computed_by"] == f"{first.id}:load"


def test_downstream_of_a_file_leaves_out_runs_of_its_older_content(tmp_path, monkeypatch):
    """`upper` is cached in run 2 (its input is the same) and was computed in run 1: the `combine` of
    run 1 read its output too, but run 1 read the file's older content, so it was not built from this one."""
    from orchestrator import pipeline, step

    @step
    def load(path: Path) -> list:
        return path.read_text().split()

    @step
    def head(rows: list) -> str:
        return rows[0]

    @step
    def upper(word: str) -> str:
        return word.upper()

    @step
    def last(rows: list) -> str:
        return rows[-1]

    @step
    def combine(first: str, final: str) -> str:
        return first + final

    @pipeline
    def words(path: Path = Path("words.txt")):
        rows = load(path)
        return combine(upper(head(rows)), last(rows))

    monkeypatch.chdir(tmp_path)
    store = str(tmp_path / "store")
    (tmp_path / "words.txt").write_text("a b\n")
    old = words.run(store=store)
    (tmp_path / "words.txt").write_text("a b c\n")
    new = words.run(store=store)
    assert new.steps["upper"].status == "cached" and new.steps["combine"].status == "ran"
    assert old.output() == "Ab" and new.output() == "Ac"
    down = walk(Context.open(store).lineage, "words.txt", "downstream")
    combines = {v.data["run_id"] for v in down.vertices.values() if v.kind == "step" and v.data["step"] == "combine"}
    assert combines == {new.id}
    steps = {v.data["step"] for v in down.vertices.values() if v.kind == "step"}
    assert steps == {"load", "head", "upper", "last", "combine"}


def test_a_file_is_its_path_and_content_not_any_equal_copy(tmp_path, monkeypatch):
    """Two files with the same bytes are two inputs: each keeps its own path, and its own readers."""
    from orchestrator import pipeline, step

    @step
    def compare(left: Path, right: Path) -> bool:
        return left.read_text() == right.read_text()

    @step
    def size(path: Path) -> int:
        return len(path.read_text())

    @pipeline
    def copies(left: Path = Path("a.csv"), right: Path = Path("b.csv")):
        return compare(left, right), size(right)

    monkeypatch.chdir(tmp_path)
    store = str(tmp_path / "store")
    (tmp_path / "a.csv").write_text("x\n")
    (tmp_path / "b.csv").write_text("x\n")
    run = copies.run(store=store)
    lineage = Context.open(store).lineage
    up = walk(lineage, f"{run.id}:compare", "upstream")
    files = {v.data["path"] for v in up.vertices.values() if v.kind == "file"}
    assert files == {str(tmp_path / "a.csv"), str(tmp_path / "b.csv")}
    down = walk(lineage, "a.csv", "downstream")
    assert [down.vertices[r].data["path"] for r in down.roots] == [str(tmp_path / "a.csv")]
    assert {v.data["step"] for v in down.vertices.values() if v.kind == "step"} == {"compare"}
    assert f"{tmp_path / 'b.csv'}" not in render(down, "tree")


def test_a_cached_step_given_a_copy_of_its_file_names_the_copy_its_run_read(tmp_path, monkeypatch):
    """Run again in a copy of the project (a checkout elsewhere): the step reuses the result computed from
    the original's A.csv (same path as given, same content, same key), and the model's lineage named the
    original A.csv, though the run read the copy's; `orch lineage` of the copy found nothing.

    (A copy at another path in the same project, B.csv, is another parameter: its step runs, see
    test_runner's test_a_path_parameter_naming_a_copy_runs_the_step_on_the_copy.)"""
    import shutil

    from orchestrator import pipeline, step

    @step
    def load(path: Path) -> list:
        return path.read_text().split()

    @step
    def count(words: list) -> int:
        return len(words)

    @pipeline
    def flow(data: Path = Path("A.csv")):
        return count(load(data))

    project, checkout = tmp_path / "project", tmp_path / "checkout"
    project.mkdir()
    (project / "A.csv").write_text("x y\n")
    store = str(tmp_path / "store")
    monkeypatch.chdir(project)
    first = flow.run(store=store)
    shutil.copytree(project, checkout)
    monkeypatch.chdir(checkout)
    copy = flow.run(store=store)
    assert copy.steps["load"].status == "cached"
    lineage = Context.open(store).lineage

    up = walk(lineage, f"{copy.id}:count", "upstream")
    assert {v.data["path"] for v in up.vertices.values() if v.kind == "file"} == {str(checkout / "A.csv")}
    assert up.vertices[f"step:{copy.id}:load"].data["params"] == {"path": "A.csv"}
    down = walk(lineage, str(checkout / "A.csv"), "downstream")
    # ... and so is what was built from it, not the steps of the run that read the original.
    assert {(v.data["run_id"], v.data["step"]) for v in down.vertices.values() if v.kind == "step"} == {
        (copy.id, "load"), (copy.id, "count")}
    assert first.id not in {v.data.get("run_id") for v in down.vertices.values()}
    assert copy.id not in render(walk(lineage, str(project / "A.csv"), "downstream"), "tree")


def test_a_folder_named_in_hex_is_a_path_when_no_id_begins_so(tmp_path, monkeypatch):
    """`orch lineage d1 --downstream` of a folder input `d1` said no run id or digest begins with 'd1'."""
    from orchestrator import pipeline, step

    @step
    def listing(folder: Path) -> list:
        return sorted(p.name for p in folder.iterdir())

    @pipeline
    def listed(folder: Path = Path("d1")):
        return listing(folder)

    monkeypatch.chdir(tmp_path)
    (tmp_path / "d1").mkdir()
    (tmp_path / "d1" / "x.txt").write_text("x")
    run = listed.run(store=str(tmp_path / "store"))
    down = walk(Context.open(tmp_path / "store").lineage, "d1", "downstream")
    assert {(v.data["run_id"], v.data["step"]) for v in down.vertices.values() if v.kind == "step"} == {
        (run.id, "listing")}


def _steps_within(graph) -> set[str]:  # type: ignore[no-untyped-def]
    return {v.data["step"] for v in graph.vertices.values() if v.kind == "step"}


def test_depth_counts_steps_and_a_deeper_walk_never_shows_less(store):
    """`--depth N` shows N steps beyond the REF, however the walk first met a shared input."""
    run = load_pipeline(str(PIPELINES / "diamond.py")).run(store=str(store))
    assert run.status == "succeeded"
    lineage = Context.open(store).lineage
    up = {depth: walk(lineage, f"{run.id}:score", "upstream", depth) for depth in (0, 1, 2, 3)}
    assert _steps_within(up[0]) == {"score"}
    # One step up is the producers of score's inputs, not only the inputs themselves.
    assert _steps_within(up[1]) == {"score", "fit", "prep"}
    # `z_data` is met first through `fit` (two steps away), then directly (one step away).
    assert _steps_within(up[2]) == _steps_within(up[3]) == {"score", "fit", "prep", "load"}
    z_data = f"artifact:{run.steps['prep'].outputs['out']}@{run.id}:prep"
    assert up[3].vertices[z_data].children == [("produced by", f"step:{run.id}:prep")]
    assert render(up[3], "tree") == render(walk(lineage, f"{run.id}:score", "upstream"), "tree")
    # A step cut by the depth says so: shown bare, it would read as one that had no inputs.
    cut = {v.data["step"] for v in up[1].vertices.values() if v.data.get("truncated")}
    assert cut == {"fit", "prep"} and render(up[1], "tree").count("(more beyond --depth)") == 2
    # ... and so do the diagrams, where a step drawn without inputs reads as one that read nothing.
    for fmt in ("dot", "mermaid"):
        marked = [line for line in render(up[1], fmt).splitlines() if "(more beyond --depth)" in line]
        assert len(marked) == 2 and all(f"(run {run.id}" in line for line in marked), (fmt, marked)
        assert "more beyond" not in render(up[2], fmt)
    assert not any(v.data.get("truncated") for v in up[2].vertices.values())  # `load` reads no artifact

    load_out = run.steps["load"].outputs["out"]
    down = {depth: walk(lineage, load_out, "downstream", depth) for depth in (1, 2)}
    assert _steps_within(down[1]) == {"prep"}
    assert _steps_within(down[2]) == {"prep", "fit", "score"}


def test_a_moved_project_names_where_runs_read_the_same_file_content(tmp_path, monkeypatch, capsys, calls):
    """After moving the project folder, `orch lineage FILE` names where runs read that content, and how to trace it."""
    from orchestrator.cli import main

    old = tmp_path / "old"
    old.mkdir()
    (old / "input.txt").write_text("hello")
    monkeypatch.chdir(old)
    run = load_pipeline(str(PIPELINES / "files.py")).run(store=str(tmp_path / "store"))
    assert run.status == "succeeded"
    moved = tmp_path / "moved"
    old.rename(moved)
    monkeypatch.chdir(moved)
    try:
        main(["--store", str(tmp_path / "store"), "lineage", "input.txt", "--downstream"])
    except SystemExit as exited:
        assert exited.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    digest = next(d for _, _, d, path in Context.open(tmp_path / "store").lineage.step_edges(run.id, "read") if path)
    assert f"at {moved / 'input.txt'}, but runs read the same content ({digest[:12]}) at {old / 'input.txt'}" in err
    assert f"`orch lineage {digest[:12]} --downstream`" in err
    graph = walk(Context.open(tmp_path / "store").lineage, digest[:12], "downstream")  # the command it names works
    assert {v.data["step"] for v in graph.vertices.values() if v.kind == "step"} >= {"read", "shout"}


def _two_runs_and_gc_keeping_the_last(store):
    """Two runs of gc_runs.py, then `cache gc --keep-last 1`: (older run, newer run, the digest gc removed)."""
    from orchestrator.maintenance import collect_garbage

    gc_runs = load_pipeline(str(PIPELINES / "gc_runs.py"))
    old = gc_runs.run(store=str(store), n=1)
    new = gc_runs.run(store=str(store), n=2)
    removed = old.steps["make"].outputs["out"]
    ctx = Context.open(store)
    hour_ago = time.time() - 3600  # gc spares objects written in its last few milliseconds
    os.utime(ctx.store.path_of(removed), (hour_ago, hour_ago))
    assert collect_garbage(ctx, keep_last=1).removed == [removed]
    return old, new, removed


def test_lineage_of_an_older_run_after_gc_says_which_artifacts_are_gone(store):
    """After `cache gc --keep-last 1`, an older run's lineage still stands, and says what gc removed."""
    old, new, removed = _two_runs_and_gc_keeping_the_last(store)
    lineage = Context.open(store).lineage

    up = walk(lineage, f"{old.id}:check", "upstream")
    gone = up.vertices[f"artifact:{removed}@{old.id}:make"]
    assert gone.label == f"{removed[:12]} (no longer stored: removed by orch cache gc or verify --repair)"
    assert gone.data["stored"] is False and gone.children == [("produced by", f"step:{old.id}:make")]
    kept = walk(lineage, f"{new.id}:check", "upstream").vertices[
        f"artifact:{new.steps['make'].outputs['out']}@{new.id}:make"]
    assert kept.data["stored"] is True and "no longer stored" not in kept.label
    # The digest `orch show` still lists for the old run is a REF, traced through the runs' records.
    by_digest = walk(lineage, removed[:10], "downstream")
    assert by_digest.roots == [f"artifact:{removed}"]
    assert {v.data["run_id"] for v in by_digest.vertices.values() if v.kind == "step"} == {old.id}


def test_diagrams_show_each_step_runs_parameters_and_code(store):
    """`--format dot|mermaid` answer "which parameters and code made this?" as the tree does."""
    run = load_pipeline(str(PIPELINES / "two_params.py")).run(store=str(store), x=4, y=7)
    graph = walk(Context.open(store).lineage, f"{run.id}:second", "upstream")
    code = graph.vertices[f"step:{run.id}:second"].data["code"][:12]
    dot = render(graph, "dot")
    assert f'[label="second (run {run.id}, ran)\\ny=7\\ncode {code}", shape=box];' in dot
    assert f'[label="first (run {run.id}, ran)\\nx=4\\ncode ' in dot
    mermaid = render(graph, "mermaid")
    assert f'["second (run {run.id}, ran)  y=7  code {code}"]' in mermaid
    assert f"second (run {run.id}, ran)  y=7  code {code}" in render(graph, "tree")


def test_a_step_an_interrupted_run_never_reached_is_explained(store, capsys):
    """`orch logs RUN:evaluate` after Ctrl-C: the step exists, the run stopped before it."""
    import sqlite3

    from orchestrator.cli import main

    two_params = load_pipeline(str(PIPELINES / "two_params.py"))
    done = two_params.run(store=str(store), x=1)
    stopped = two_params.run(store=str(store), x=2)
    with sqlite3.connect(store / "metadata.db") as db:  # as Ctrl-C during `first` leaves it
        db.execute("UPDATE runs SET status='interrupted' WHERE run_id=?", (stopped.id,))
        db.execute("DELETE FROM steps WHERE run_id=? AND node='second'", (stopped.id,))

    def error_of(*args: str) -> str:
        try:
            main(["--store", str(store), *args])
        except SystemExit as exited:
            assert exited.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        return err

    for args in (["logs", f"{stopped.id[:6]}:second"], ["lineage", f"{stopped.id[:6]}:second"]):
        assert (f"run {stopped.id} (interrupted) has no record of step 'second': it stopped before that step "
                f"started. The last run that has one is {done.id}.") in error_of(*args)
    assert f"run {done.id} has no step 'secnd'. Did you mean 'second'?" in error_of("logs", f"{done.id}:secnd")
    # A typo given an interrupted run: the steps of the pipeline's other runs are close matches too.
    assert "or its pipeline has no step 'secnd'. Did you mean 'second'?" in error_of("logs", f"{stopped.id}:secnd")
    assert f"no step after ':'. Write RUN:STEP, such as {done.id}:second." in error_of("lineage", f"{done.id}:")


@pytest.mark.parametrize("status", ["interrupted", "failed"])
def test_a_step_the_only_run_never_reached_is_not_called_missing(store, capsys, status):
    """Ctrl-C during the first step of a pipeline's first run: `orch logs RUN:second` said `run … has no
    step 'second'`, as for a typo. The run records no step it never started (nor which it planned), so
    the message says both what may be and where the pipeline's steps are listed."""
    import sqlite3

    from orchestrator.cli import main

    file = str(PIPELINES / "two_params.py")
    stopped = load_pipeline(file).run(store=str(store), x=2)
    with sqlite3.connect(store / "metadata.db") as db:  # as Ctrl-C (or a crash) during `first` leaves it
        db.execute("UPDATE runs SET status=? WHERE run_id=?", (status, stopped.id))
        db.execute("DELETE FROM steps WHERE run_id=? AND node='second'", (stopped.id,))

    def error_of(*args: str) -> str:
        with pytest.raises(SystemExit) as exited:
            main(["--store", str(store), *args])
        assert exited.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        return err

    said = "was interrupted" if status == "interrupted" else "failed"
    for command in ("logs", "lineage"):
        assert error_of(command, f"{stopped.id[:6]}:second") == (
            f"error: run {stopped.id} {said} before it recorded step 'second' (a step it never started has no "
            f"record), or its pipeline has no step 'second'. `orch plan {file}:two_params` lists the pipeline's "
            f"steps; `orch show {stopped.id}` those the run recorded.\n")
    assert "or its pipeline has no step 'frst'. Did you mean 'first'?" in error_of("logs", f"{stopped.id}:frst")


def test_diagram_arrows_read_the_way_the_data_flowed(store):
    """Going up, the arrow from a step to its output says `produced`, not `produced by`."""
    run = load_pipeline(str(PIPELINES / "two_params.py")).run(store=str(store), x=4, y=7)
    up = walk(Context.open(store).lineage, f"{run.id}:second", "upstream")
    made = f"artifact:{run.steps['first'].outputs['out']}@{run.id}:first"
    dot = render(up, "dot")
    assert f'"step:{run.id}:first" -> "{made}" [label="produced"];' in dot and "produced by" not in dot
    assert '-->|"produced"|' in render(up, "mermaid")
    assert "produced by: first" in render(up, "tree")  # the tree reads from REF outwards
    down = render(walk(Context.open(store).lineage, f"{run.id}:first", "downstream"), "dot")
    assert f'"{made}" -> "step:{run.id}:second" [label="read by"];' in down


def test_the_lineage_of_a_failed_run_includes_its_failed_step(store):
    """`orch lineage RUN` traces all its steps: the one that failed, and what it read, above all."""
    failed = load_pipeline(str(PIPELINES / "gc_runs.py")).run(store=str(store), n=2, fail=True)
    assert failed.status == "failed"
    graph = walk(Context.open(store).lineage, failed.id, "upstream")
    assert graph.roots == [f"step:{failed.id}:make", f"step:{failed.id}:check"]
    check = graph.vertices[f"step:{failed.id}:check"]
    assert check.data["status"] == "failed" and check.data["params"] == {"fail": True}
    assert check.children == [("xs", f"artifact:{failed.steps['make'].outputs['out']}@{failed.id}:make")]


def test_a_cached_step_names_the_run_that_computed_it_and_keeps_its_parameters_after_gc(store):
    """A step reused cached is shown with the run that computed it; gc dropping its cache entry keeps
    its parameters and code, which the runs' records still hold."""
    from orchestrator.maintenance import collect_garbage

    gc_runs = load_pipeline(str(PIPELINES / "gc_runs.py"))
    first = gc_runs.run(store=str(store), n=1)
    second = gc_runs.run(store=str(store), n=1)
    gc_runs.run(store=str(store), n=2)
    assert second.steps["make"].status == "cached"
    ctx = Context.open(store)
    removed = first.steps["make"].outputs["out"]
    hour_ago = time.time() - 3600  # gc spares objects written in its last few milliseconds
    os.utime(ctx.store.path_of(removed), (hour_ago, hour_ago))
    assert collect_garbage(ctx, keep_last=1).removed == [removed]
    lineage = Context.open(store).lineage
    assert lineage.key_parts_of(second.steps["make"].key) is None  # gc dropped its cache entry

    graph = walk(lineage, f"{second.id}:make", "upstream")
    make = graph.vertices[f"step:{second.id}:make"]
    assert make.label == f"make (run {second.id}, cached from run {first.id})"
    assert make.data["computed_by"] == f"{first.id}:make"
    assert make.data["params"] == {"n": 1}
    assert make.data["code"] == lineage.step_row(first.id, "make")["key_parts"]["code"]
    assert f"cached from run {first.id})  n=1  code {make.data['code'][:12]}" in render(graph, "tree")
    ran = walk(lineage, f"{first.id}:make", "upstream").vertices[f"step:{first.id}:make"]
    assert ran.label == f"make (run {first.id}, ran)" and ran.data["computed_by"] == f"{first.id}:make"


def test_a_file_names_the_other_contents_runs_read_at_its_path(tmp_path, monkeypatch, capsys, calls):
    """`orch lineage input.txt` traces the file as it is now, and names what earlier runs read there."""
    import json

    monkeypatch.chdir(tmp_path)
    store = tmp_path / "store"
    files = load_pipeline(str(PIPELINES / "files.py"))
    (tmp_path / "input.txt").write_text("hello")
    old = files.run(store=str(store))
    again = files.run(store=str(store), unit="letters")  # `read` cached: this run used the old content too
    (tmp_path / "input.txt").write_text("bye")
    new = files.run(store=str(store))
    lineage = Context.open(store).lineage
    before = next(digest for _, _, digest, path in lineage.step_edges(old.id, "read") if path)

    down = walk(lineage, "input.txt", "downstream")
    assert down.other_contents == [{"digest": before, "runs": [old.id, again.id]}]
    assert {v.data["run_id"] for v in down.vertices.values() if v.kind == "step"} == {new.id}
    assert render(down, "tree").endswith(
        f"other contents runs read at this path: {before[:12]} (runs {old.id}, {again.id}). Trace one with "
        "`orch lineage DIGEST --downstream`.")
    code, out, _ = _orch(store, capsys, "lineage", "input.txt", "--format", "json")
    assert code == 0 and json.loads(out)["other_contents"] == [{"digest": before, "runs": [old.id, again.id]}]
    assert walk(lineage, f"{new.id}:read", "upstream").other_contents is None  # a step REF has no such note


def test_a_deleted_file_is_still_traced_by_its_path_from_the_runs_records(tmp_path, monkeypatch, capsys, calls):
    """"What was built from data/raw.csv?" after the file was deleted or moved: every content runs read there."""
    monkeypatch.chdir(tmp_path)
    store = tmp_path / "store"
    files = load_pipeline(str(PIPELINES / "files.py"))
    (tmp_path / "input.txt").write_text("hello")
    old = files.run(store=str(store))
    (tmp_path / "input.txt").write_text("bye")
    new = files.run(store=str(store))
    (tmp_path / "input.txt").unlink()
    lineage = Context.open(store).lineage
    contents = [next(d for _, _, d, path in lineage.step_edges(run.id, "read") if path) for run in (old, new)]

    down = walk(lineage, "input.txt", "downstream")
    path = str(tmp_path / "input.txt")
    assert down.roots == [f"file:{d}@{path}" for d in contents]  # oldest first
    assert [down.vertices[r].label for r in down.roots] == [f"{path} ({d[:12]}, gone since)" for d in contents]
    assert {v.data["run_id"] for v in down.vertices.values() if v.kind == "step"} == {old.id, new.id}
    assert down.other_contents == []
    code, out, _ = _orch(store, capsys, "lineage", "input.txt", "--downstream")
    assert code == 0 and out.count("gone since") == 2
    code, _, err = _orch(store, capsys, "lineage", "other.txt")  # a path no run used is still refused
    assert code == 2 and "file 'other.txt' does not exist" in err


def test_a_file_a_step_wrote_says_when_it_no_longer_holds_what_the_step_wrote(tmp_path, monkeypatch, capsys):
    """A step's path output is marked `changed since` or `gone since` as an input file is: the file at that
    path today may be what a later run wrote, or nothing, and showed as the one this run made."""
    import json

    @step
    def write(text: str) -> Path:
        target = Path("out.txt")
        target.write_text(text)
        return target

    @pipeline
    def wrote(text: str = "one"):
        return write(text)

    monkeypatch.chdir(tmp_path)
    store = tmp_path / "store"
    first, second = (wrote.run(store=str(store), text=text) for text in ("one", "two"))
    lineage = Context.open(store).lineage
    path = str(tmp_path / "out.txt")
    made = {run.id: f"artifact:{run.steps['write'].outputs['out']}@{run.id}:write" for run in (first, second)}

    down = walk(lineage, f"{first.id}:write", "downstream")
    assert down.vertices[made[first.id]].label.endswith(f"→ {path} (changed since)")
    assert down.vertices[made[first.id]].data["file"]["now"] == "changed since"
    now = walk(lineage, f"{second.id}:write", "downstream").vertices[made[second.id]]
    assert now.label.endswith(f"→ {path}") and "now" not in now.data["file"]  # it holds what this run wrote
    code, out, _ = _orch(store, capsys, "lineage", f"{first.id}:write", "--downstream", "--format", "json")
    node = next(n for n in json.loads(out)["nodes"] if n["id"] == made[first.id])
    assert code == 0 and node["file"] == {"path": path, "content": node["file"]["content"], "now": "changed since"}
    code, out, _ = _orch(store, capsys, "lineage", f"{first.id}:write", "--downstream", "--format", "dot")
    assert code == 0 and f"→ {path} (changed since)" in out

    (tmp_path / "out.txt").unlink()
    gone = walk(lineage, "out.txt", "upstream")
    assert [gone.vertices[r].label.endswith(f"→ {path} (gone since)") for r in gone.roots] == [True, True]
    code, out, _ = _orch(store, capsys, "lineage", "out.txt")
    assert code == 0 and out.count("(gone since)") == 2
    code, out, _ = _orch(store, capsys, "lineage", "out.txt", "--format", "mermaid")
    assert code == 0 and out.count("(gone since)") == 2


def _orch(store, capsys, *args):
    """(exit code, stdout, stderr) of ``orch --store STORE ARGS`` run in this process."""
    from orchestrator.cli import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        main(["--store", str(store), *args])
    out, err = capsys.readouterr()
    return int(done.value.code or 0), out, err


def test_a_file_a_step_passes_on_as_its_path_is_one_tree(tmp_path, monkeypatch):
    """A data source step returning its path input (as the lifecycle's `source` does): the file's tree
    holds that path output, which is not printed again as a second tree below it."""
    from orchestrator import pipeline, step

    @step
    def source(data: Path) -> Path:
        return data

    @step
    def words(path: Path) -> int:
        return len(path.read_text().split())

    @pipeline
    def sourced(data: Path = Path("raw.txt")):
        return words(source(data))

    monkeypatch.chdir(tmp_path)
    (tmp_path / "raw.txt").write_text("a b c")
    run = sourced.run(store=str(tmp_path / "store"))
    assert run.output() == 3
    down = walk(Context.open(tmp_path / "store").lineage, "raw.txt", "downstream")
    assert len(down.roots) == 1 and down.roots[0].startswith("file:")
    assert {v.data["step"] for v in down.vertices.values() if v.kind == "step"} == {"source", "words"}
    assert render(down, "tree").count("read by: words") == 1
    returned = run.steps["source"].outputs["out"]
    assert f"artifact:{returned}" not in down.vertices  # nor a vertex of its own in the JSON and diagrams
    assert f"artifact:{returned}@{run.id}:source" in down.vertices


def test_downstream_names_the_step_that_failed_on_it(store):
    """"Which runs used this (bad) data?": a step that read it and failed is listed with its run."""
    failed = load_pipeline(str(PIPELINES / "gc_runs.py")).run(store=str(store), n=3, fail=True)
    assert failed.status == "failed"
    lineage = Context.open(store).lineage
    made = failed.steps["make"].outputs["out"]
    for ref in (f"{failed.id}:make", made):  # along the data flow, and by content
        down = walk(lineage, ref, "downstream")
        check = down.vertices[f"step:{failed.id}:check"]
        assert check.data["status"] == "failed" and check.label == f"check (run {failed.id}, failed)"
    assert f"read by: check (run {failed.id}, failed)" in render(down, "tree")


def test_downstream_names_every_run_that_failed_on_it(store):
    """Two runs failed alike on the same data (the same key, nothing made): both are runs it broke, and
    both are listed, where the second was taken for the first's computation and left out."""
    import json

    pipe = load_pipeline(str(PIPELINES / "gc_runs.py"))
    first, second = (pipe.run(store=str(store), n=3, fail=True) for _ in range(2))
    assert first.status == second.status == "failed" and second.steps["make"].status == "cached"
    lineage = Context.open(store).lineage
    made = first.steps["make"].outputs["out"]
    for ref in (f"{first.id}:make", f"{second.id}:make", made):  # along the data flow, and by content
        down = walk(lineage, ref, "downstream")
        checks = {v.data["run_id"] for v in down.vertices.values() if v.kind == "step" and v.data["step"] == "check"}
        assert checks == {first.id, second.id}, ref
        tree = render(down, "tree")
        assert f"check (run {first.id}, failed)" in tree and f"check (run {second.id}, failed)" in tree
        nodes = json.loads(render(down, "json"))["nodes"]
        assert sorted(n["run_id"] for n in nodes if n.get("step") == "check") == sorted([first.id, second.id])


def test_the_json_nodes_have_the_keys_docs_cli_md_lists(tmp_path, monkeypatch, calls):
    """The node keys of `orch lineage --format json` are a documented contract: the table in docs/cli.md."""
    import json
    import re

    from .conftest import ROOT

    monkeypatch.chdir(tmp_path)
    (tmp_path / "input.txt").write_text("hello")
    store = str(tmp_path / "store")
    first = load_pipeline(str(PIPELINES / "files.py")).run(store=store)
    second = load_pipeline(str(PIPELINES / "files.py")).run(store=store, unit="words")
    (tmp_path / "input.txt").write_text("edited")
    lineage = Context.open(store).lineage
    nodes = [n for ref in (first.id, second.id, f"{second.id}:report")
             for n in json.loads(render(walk(lineage, ref, depth=1 if ":" in ref else None), "json"))["nodes"]]
    table = ROOT.joinpath("docs", "cli.md").read_text().split("| `kind` | keys |", 1)[1].split("\n\n", 1)[0]
    documented = {row.split("|")[1].strip(" `"): set(re.findall(r"`(\w+)(?=[`:])", row.split("|")[2]))
                  for row in table.strip().splitlines()[1:]}
    for node in nodes:
        assert set(node) - {"id", "kind", "label"} <= documented[node["kind"]], node
    assert {n["kind"] for n in nodes} == {"step", "artifact", "file"}
    assert any(n.get("now") for n in nodes) and any(n.get("truncated") for n in nodes)


def test_a_skipped_step_run_is_a_documented_status_computed_by_nothing(store):
    """`orch lineage RUN:total --format json` of a step skipped after a failure upstream said `status: skipped`,
    which the docs' key table did not list, and `computed_by` itself, though nothing ever computed it."""
    import json
    import re

    from .conftest import ROOT

    @step
    def refuse(xs: list) -> list:
        raise ValueError("bad data")

    @pipeline
    def refused(n: int = 3):
        return add_up(refuse(halves(n)[0]))

    run = refused.run(store=str(store))
    assert run.steps["add_up"].status == "skipped"
    lineage = Context.open(store).lineage
    nodes = {n["step"]: n for ref in (f"{run.id}:add_up", f"{run.id}:refuse", f"{run.id}:halves")
             for n in json.loads(render(walk(lineage, ref), "json"))["nodes"] if n["kind"] == "step"}
    assert {name: (n["status"], n["computed_by"]) for name, n in nodes.items()} == {
        "add_up": ("skipped", None), "refuse": ("failed", f"{run.id}:refuse"), "halves": ("ran", f"{run.id}:halves")}
    row = ROOT.joinpath("docs", "cli.md").read_text().split("| `kind` | keys |", 1)[1].split("\n| `artifact`", 1)[0]
    statuses = re.search(r"`status` \(([^)]*)\)", row)
    assert statuses is not None and {"ran", "cached", "failed", "interrupted", "skipped"} <= set(
        re.findall(r"`(\w+)`", statuses.group(1))), row
    assert "null for a skipped step" in row


def test_a_folder_whose_files_runs_read_names_them(tmp_path, monkeypatch, capsys, calls):
    """`orch lineage data/` when runs read data/input.txt, not the folder: the message names the file to trace."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "input.txt").write_text("hello")
    store = tmp_path / "store"
    load_pipeline(str(PIPELINES / "files.py")).run(store=str(store), path=Path("data/input.txt"))
    code, _, err = _orch(store, capsys, "lineage", "data")
    assert code == 2 and err.count("\n") == 1
    assert err.strip() == ("error: no run in this store read or wrote 'data' as a folder, but runs read files in it: "
                           "data/input.txt. Trace one with `orch lineage data/input.txt`.")
    (tmp_path / "empty").mkdir()
    code, _, err = _orch(store, capsys, "lineage", "empty")
    assert code == 2 and "read or wrote 'empty'. Pass a run id" in err


def test_downstream_of_a_grown_list_includes_the_items_this_run_reused(store):
    """A map over a list that grew (a new day's partition) reuses the items computed before.

    Those items were computed from the shorter list, yet in this run they are items of this run's
    list: "what was built from it?" must name them and what they fed, not only the new item.
    """
    fanout = load_pipeline(str(PIPELINES / "fanout.py") + ":fanout")
    first = fanout.run(store=str(store), n=3)
    grown = fanout.run(store=str(store), n=4)
    assert [grown.steps[n].status for n in ("square", "square_2", "square_3", "square_4")] == \
        ["cached", "cached", "cached", "ran"]
    lineage = Context.open(store).lineage
    down = walk(lineage, f"{grown.id}:items", "downstream")
    ours = {v.data["step"] for v in down.vertices.values() if v.kind == "step" and v.data["run_id"] == grown.id}
    assert ours == {"items", "square", "square_2", "square_3", "square_4", "total"}
    # Each reused item shows its parameters and the output it gave in this run, read by this run's total.
    square_2 = down.vertices[f"step:{grown.id}:square_2"]
    assert square_2.data["params"] == {"x": 1, "offset": 0}
    out = grown.steps["square_2"].outputs["out"]
    assert square_2.children == [("out", f"artifact:{out}@{first.id}:square_2")]  # its output, as computed
    assert ("read by", f"step:{grown.id}:total") in down.vertices[square_2.children[0][1]].children
    # Going up, a reused item came from this run's list (n=4), not from the list of the run that computed it.
    up = walk(lineage, f"{grown.id}:square_2", "upstream")
    grown_list = f"artifact:{grown.steps['items'].outputs['out']}@{grown.id}:items"
    assert up.vertices[f"step:{grown.id}:square_2"].children == [("x", grown_list)]
    assert up.vertices[grown_list].children == [("produced by", f"step:{grown.id}:items")]
    assert up.vertices[f"step:{grown.id}:items"].data["params"]["n"] == 4
    # So it is from the list's digest, which goes by content.
    by_digest = walk(lineage, grown.steps["items"].outputs["out"], "downstream")
    assert {v.data["step"] for v in by_digest.vertices.values() if v.kind == "step"} == \
        {"square", "square_2", "square_3", "square_4", "total"}


def test_an_older_content_traced_by_its_digest_says_the_file_changed_since(tmp_path, monkeypatch, capsys, calls):
    """`orch lineage data/raw.csv` names the older contents runs read; tracing one by its digest, as that
    line says, must not show it as the file's content today."""
    import json

    monkeypatch.chdir(tmp_path)
    data = tmp_path / "input.txt"
    data.write_text("v1")
    files = load_pipeline(str(PIPELINES / "files.py"))
    old = files.run(store=str(tmp_path / "store"))
    first = next(digest for _, _, digest, path in Context.open(tmp_path / "store").lineage.step_edges(old.id, "read")
                 if path)
    data.write_text("v2, edited")
    files.run(store=str(tmp_path / "store"))
    code, out, _ = _orch(tmp_path / "store", capsys, "lineage", str(data))
    assert code == 0 and f"other contents runs read at this path: {first[:12]}" in out
    code, out, _ = _orch(tmp_path / "store", capsys, "lineage", first[:12], "--downstream")
    assert out.splitlines()[0] == f"{data} ({first[:12]}, changed since)"
    code, out, _ = _orch(tmp_path / "store", capsys, "lineage", first[:12], "--downstream", "--format", "json")
    (root,) = json.loads(out)["roots"]
    node = next(n for n in json.loads(out)["nodes"] if n["id"] == root)
    assert (node["kind"], node["path"], node["now"]) == ("file", str(data), "changed since")
    data.unlink()
    code, out, _ = _orch(tmp_path / "store", capsys, "lineage", first[:12])
    assert out.splitlines()[0] == f"{data} ({first[:12]}, gone since)"


def test_an_input_file_traced_up_names_the_command_that_traces_it_down(tmp_path, monkeypatch, capsys, calls):
    """Upstream (the default), an input file is one line alone: the question was what was built from it."""
    import json

    monkeypatch.chdir(tmp_path)
    (tmp_path / "my data.txt").write_text("hello")
    run = load_pipeline(str(PIPELINES / "files.py")).run(store=str(tmp_path / "store"), path=Path("my data.txt"))
    code, out, _ = _orch(tmp_path / "store", capsys, "lineage", "my data.txt")
    assert code == 0 and out.splitlines()[-1] == ("an input file: no step made it. What was built from it: "
                                                  "`orch lineage 'my data.txt' --downstream`.")
    code, out, _ = _orch(tmp_path / "store", capsys, "lineage", "my data.txt", "--downstream")
    assert f"read by: read (run {run.id}, ran)" in out and "no step made it" not in out
    code, out, _ = _orch(tmp_path / "store", capsys, "lineage", "my data.txt", "--format", "json")
    assert "no step made it" not in out and json.loads(out)["edges"] == []


@step
def halves(n: int) -> tuple[list, list]:
    return list(range(n)), list(range(n, 2 * n))


@step
def count(xs: list) -> int:
    return len(xs)


@step
def add_up(xs: list) -> int:
    return sum(xs)


@pipeline
def halved(n: int = 3):
    first, second = halves(n)
    return count(first), add_up(second)


def test_one_output_of_a_step_run_is_a_ref_as_orch_show_names_it(store, capsys):
    """`orch lineage RUN:halves.out1 --downstream`: what was built from that output alone, as load() takes it."""
    import json

    run = halved.run(store=str(store))
    again = halved.run(store=str(store))  # all cached: its outputs are the first run's
    out1 = run.steps["halves"].outputs["out1"]
    down = walk(Context.open(store).lineage, f"{again.id}:halves.out1", "downstream")
    assert down.roots == [f"artifact:{out1}@{run.id}:halves"]
    assert {v.data["step"] for v in down.vertices.values() if v.kind == "step"} == {"add_up"}  # not count
    up = walk(Context.open(store).lineage, f"{again.id}:halves.out1", "upstream")
    assert down.vertices[down.roots[0]].data["digest"] == out1
    assert up.vertices[up.roots[0]].children == [("produced by", f"step:{again.id}:halves")]
    code, out, _ = _orch(store, capsys, "lineage", f"{again.id}:halves.out1", "--downstream", "--format", "json")
    assert code == 0 and json.loads(out)["roots"] == [f"artifact:{out1}@{run.id}:halves"]
    code, _, err = _orch(store, capsys, "lineage", f"{again.id}:halves.out2")
    assert code == 2 and err == (f"error: step 'halves' of run {again.id} has no output 'out2': its outputs are out0, "
                                 f"out1. Did you mean 'out1'? Trace the step with `orch lineage {again.id}:halves`.\n")
    for command in ("logs", "show"):  # an output is no step: the line names the step and what takes the output
        code, _, err = _orch(store, capsys, command, f"{again.id}:halves.out1")
        assert code == 2 and err == (f"error: run {again.id} has no step 'halves.out1': a step's output "
                                     f"(STEP.OUTPUT) is taken by `orch lineage {again.id}:halves.out1` and "
                                     f"orchestrator.load; the step is {again.id}:halves.\n"), command
    code, _, err = _orch(store, capsys, "lineage", f"{again.id}:nosuch.out1")  # no step: said as before
    assert code == 2 and err.startswith(f"error: run {again.id} has no step 'nosuch.out1'.")


def test_an_item_of_a_map_over_a_maps_result_is_traced_to_the_item_it_read(store):
    """add_one.map(square.map(items)): each add_one item read one square item's output, through the list of
    square.map's results, which is never stored as one; the walk goes through that item both ways."""
    chained = load_pipeline(str(PIPELINES / "fanout.py") + ":chained")
    first = chained.run(store=str(store), n=3)
    grown = chained.run(store=str(store), n=4)
    assert grown.steps["add_one_2"].status == "cached"
    lineage = Context.open(store).lineage
    up = walk(lineage, f"{grown.id}:add_one_2", "upstream")  # reused from the first run
    # It read square_2 of its own run (cached too), which goes on to the step run that computed it.
    square_2 = f"artifact:{first.steps['square_2'].outputs['out']}@{grown.id}:square_2"
    assert up.vertices[f"step:{grown.id}:add_one_2"].children == [("x", square_2)]
    assert up.vertices[square_2].children == [("produced by", f"step:{grown.id}:square_2")]
    assert {v.data["step"] for v in up.vertices.values() if v.kind == "step"} == {"add_one_2", "square_2", "items"}
    up = walk(lineage, f"{grown.id}:add_one_4", "upstream")  # ran in this run
    assert up.vertices[f"step:{grown.id}:add_one_4"].children == \
        [("x", f"artifact:{grown.steps['square_4'].outputs['out']}@{grown.id}:square_4")]
    down = walk(lineage, f"{grown.id}:items", "downstream")
    assert {v.data["step"] for v in down.vertices.values() if v.kind == "step"} == \
        {"items", "square", "square_2", "square_3", "square_4", "add_one", "add_one_2", "add_one_3", "add_one_4",
         "total"}
    for ref in (f"{grown.id}:total", grown.id):
        assert f"step:{grown.id}:add_one_2" in walk(lineage, ref, "upstream").vertices, ref

    # Where the first map's items left no output records (an older store), the list is named for what it is,
    # not as an artifact `cache gc` removed.
    with lineage.transaction() as c:
        c.execute("DELETE FROM edges WHERE node LIKE 'square%' AND direction='out'")
        # whose items recorded the list they read, not the item (as items did before they recorded the item)
        results = combine("map", *(grown.steps[f"square{s}"].outputs["out"] for s in ("", "_2", "_3", "_4")))
        c.execute("UPDATE edges SET source='square.map', digest=? WHERE run_id=? AND node LIKE 'add_one%' "
                  "AND direction='in'", (results, grown.id))
    up = walk(lineage, f"{grown.id}:add_one_4", "upstream")
    (listed,) = [v for v in up.vertices.values() if v.kind == "artifact"]
    assert listed.label.endswith(f"(the list of square.map's results, run {grown.id}: each item's output is "
                                 "stored, not the list)")
    assert "cache gc" not in render(up, "tree")


def _items_by_window(run) -> dict[str, list[str]]:
    """{window node: the items of the map over its list}, read off Run.steps (a map's items follow its list)."""
    found: dict[str, list[str]] = {}
    for name in run.steps:
        if name.startswith("window"):
            found[name] = current = []
        elif name.startswith("double"):
            current.append(name)
    return found


def _readers(graph, vertex: str) -> set[str]:
    """The step runs ("RUN:node") listed as reading ``vertex``."""
    return {child.partition(":")[2] for label, child in graph.vertices[vertex].children if label == "read by"}


def test_the_items_of_maps_over_lists_that_share_items_are_read_from_their_own_list(store, capsys):
    """Map k runs over [k, k+1, k+2]: two items are cache hits of the map before it, in the same run. They
    were put under the list their reused step run read: `window` read by double_4, double_5, double_7, and
    `window_2` by double_8 and double_10, which came from window_3 and window_4."""
    import json

    import orchestrator

    maps = load_pipeline(str(PIPELINES / "overlapping_maps.py:overlapping_maps"))
    first = maps.run(store=str(store), m=4)
    later = maps.run(store=str(store), m=4, start=1)  # its first three windows are the first run's last three
    assert first.steps["double_4"].status == later.steps["double_10"].status == later.steps["window"].status == \
        "cached"
    lineage = Context.open(store).lineage
    whole = walk(lineage, first.id, "downstream")
    for window, items in _items_by_window(first).items():
        listed = f"artifact:{first.steps[window].outputs['out']}@{first.id}:{window}"
        assert _readers(whole, listed) == {f"{first.id}:{item}" for item in items}, window
    for run in (first, later):
        for window, items in _items_by_window(run).items():
            down = walk(lineage, f"{run.id}:{window}", "downstream", depth=1)
            assert {f"{run.id}:{item}" for item in items} == {
                r for v in down.vertices.values() if v.kind == "artifact" for r in _readers(down, v.id)}, window
            for item in items:  # and going up, each item came from its own map's list, in its own run
                up = walk(lineage, f"{run.id}:{item}", "upstream", depth=1)
                assert [child for _, child in up.vertices[f"step:{run.id}:{item}"].children] == \
                    [f"artifact:{run.steps[window].outputs['out']}@{run.id}:{window}"], item
    # As orchestrator.lineage and `orch lineage --format json` give it.
    doc = orchestrator.lineage(f"{first.id}:window_2", "downstream", 1, store=str(store))
    assert {e["to"] for e in doc["edges"] if e["label"] == "read by"} == \
        {f"step:{first.id}:{item}" for item in ("double_4", "double_5", "double_6")}
    code, out, _ = _orch(store, capsys, "lineage", f"{first.id}:window_2", "--downstream", "--depth", "1",
                          "--format", "json")
    assert code == 0 and json.loads(out)["edges"] == doc["edges"]
    # orch show --json (and get_run) name the list each item read, not the one its computation read.
    code, out, _ = _orch(store, capsys, "show", later.id, "--json")
    inputs = {s["name"]: s["inputs"] for s in json.loads(out)["steps"]}
    assert code == 0 and all(inputs[item] == [{"name": "i", "hash": later.steps[window].outputs["out"]}]
                             for window, items in _items_by_window(later).items() for item in items)


def test_a_reused_item_of_a_second_map_over_a_maps_results_goes_up_to_an_item_not_the_list(store):
    """The item a map over `square.map_2` reused from the one over `square.map` records its list, the results
    of `square.map_2`, never stored as one: the walk took it for an ordinary list and stopped there."""
    run = load_pipeline(str(PIPELINES / "overlapping_maps.py:overlapping_squares")).run(store=str(store), m=2)
    assert run.steps["double_4"].status == "cached"  # double(square(1)), computed as double_2
    up = walk(Context.open(store).lineage, f"{run.id}:double_4", "upstream", depth=1)
    [(name, artifact)] = up.vertices[f"step:{run.id}:double_4"].children
    assert artifact.startswith(f"artifact:{run.steps['square_4'].outputs['out']}@{run.id}:square"), artifact
    assert up.vertices[artifact].data["stored"] is True


def test_an_item_of_a_second_map_over_a_maps_results_is_traced_to_the_item_it_read_both_ways(store):
    """`square.map_2`, a step's second map, was not taken for a map's results: double_6 went up to that list
    (said to be removed by orch cache gc, though never stored) and square_6 had no readers."""
    run = load_pipeline(str(PIPELINES / "overlapping_maps.py:overlapping_squares")).run(store=str(store), m=2)
    assert run.steps["double_6"].status == run.steps["square_6"].status == "ran"  # double(square(3))
    lineage = Context.open(store).lineage
    up = walk(lineage, f"{run.id}:double_6", "upstream", depth=1)
    squared = f"artifact:{run.steps['square_6'].outputs['out']}@{run.id}:square_6"
    assert up.vertices[f"step:{run.id}:double_6"].children == [("i", squared)]
    assert up.vertices[squared].data["stored"] is True
    down = walk(lineage, f"{run.id}:square_6", "downstream", depth=1)
    assert _readers(down, squared) == {f"{run.id}:double_6"}


def test_equal_items_of_maps_over_maps_results_are_traced_to_their_own_items(store):
    """Map k of ``double.map(square.map(window(k)))`` shares two items with the map before it (cache hits in
    the same run): square_4 (= square(1), reused from square_2) was said to feed double_2, not double_4, and
    double_8 (of square(3)) to come from square_6, not square_8."""
    run = load_pipeline(str(PIPELINES / "overlapping_maps.py:overlapping_squares")).run(store=str(store), m=3)
    assert run.steps["square_4"].status == run.steps["double_4"].status == "cached"
    lineage = Context.open(store).lineage
    for square, double in (("square_4", "double_4"), ("square_8", "double_8"), ("square_2", "double_2")):
        read = f"artifact:{run.steps[square].outputs['out']}@{run.id}:{square}"
        down = walk(lineage, f"{run.id}:{square}", "downstream", depth=1)
        assert _readers(down, read) == {f"{run.id}:{double}"}, square
        up = walk(lineage, f"{run.id}:{double}", "upstream", depth=2)
        assert up.vertices[f"step:{run.id}:{double}"].children == [("i", read)], double
        assert up.vertices[read].children == [("produced by", f"step:{run.id}:{square}")], double


def test_a_forced_rerun_that_made_another_output_is_listed_downstream(tmp_path, monkeypatch):
    """`fit` reads what its key cannot see (an environment variable), so the user forced it with --rerun
    and it made another model: "what was built from this data?" names both models and what each fed.
    Computed again with an equal output (`no_cache`), a step is one computation, shown in the walk's own
    run when walked from a step of that run."""
    import os

    @step
    def load(path: Path) -> list:
        return path.read_text().split()

    @step
    def fit(rows: list) -> str:
        return os.environ.get("ORCH_TEST_TAG", "") + str(len(rows))

    @step
    def evaluate(model: str) -> int:
        return len(model)

    @pipeline
    def training(path: Path = Path("rows.txt")):
        return evaluate(fit(load(path)))

    monkeypatch.chdir(tmp_path)
    store = str(tmp_path / "store")
    (tmp_path / "rows.txt").write_text("a b c\n")
    monkeypatch.setenv("ORCH_TEST_TAG", "x")
    first = training.run(store=store)
    monkeypatch.setenv("ORCH_TEST_TAG", "yy")
    forced = training.run(store=store, rerun=["fit"])
    again = training.run(store=store, no_cache=True)
    assert first.output() == 2 and forced.output() == 3 and again.output() == 3
    lineage = Context.open(store).lineage

    down = walk(lineage, "rows.txt", "downstream")
    runs_of = {(v.data["step"], v.data["run_id"]) for v in down.vertices.values() if v.kind == "step"}
    assert runs_of == {("load", first.id), ("fit", first.id), ("evaluate", first.id),
                       ("fit", forced.id), ("evaluate", forced.id)}
    models = {v.data["digest"] for v in down.vertices.values() if v.kind == "artifact"} & {
        first.steps["fit"].outputs["out"], forced.steps["fit"].outputs["out"]}
    assert len(models) == 2

    from_again = walk(lineage, f"{again.id}:load", "downstream")
    fits = [v.data["run_id"] for v in from_again.vertices.values() if v.kind == "step" and v.data["step"] == "fit"]
    assert fits == [again.id, first.id]  # its own run's fit (equal to forced's), then the other model's


def test_show_marks_the_outputs_gc_removed(store, capsys):
    """`orch show` of an older run says which outputs `cache gc` removed, and its JSON has `stored`."""
    import json

    from orchestrator.cli import main
    old, new, removed = _two_runs_and_gc_keeping_the_last(store)

    def show(run_id: str, *json_flag: str) -> str:
        with pytest.raises(SystemExit) as exited:
            main(["--store", str(store), "show", run_id, *json_flag])
        assert exited.value.code == 0
        return capsys.readouterr().out

    steps = {s["name"]: s for s in json.loads(show(old.id, "--json"))["steps"]}
    assert steps["make"]["outputs"] == [{"name": "out", "hash": removed, "stored": False}]
    assert all(o["stored"] for s in json.loads(show(new.id, "--json"))["steps"] for o in s["outputs"])
    assert f"out={removed[:10]} (removed)" in show(old.id)
    assert "(removed)" not in show(new.id)


def test_upstream_of_a_step_that_reused_a_result_follows_its_own_runs_data_to_its_file(tmp_path):
    """Early cutoff: run 2 read another file whose first line is the same, so the steps after it were
    cached from run 1. "Which data produced run 2's result?" named run 1's file, while "what was built
    from run 2's file?" named run 2's result: the two directions disagreed."""
    @step
    def first_line(path: Path) -> str:
        return path.read_text().splitlines()[0]

    @step
    def shout(line: str) -> str:
        return line.upper()

    @step
    def tag(text: str, name: str) -> str:
        return f"{name}: {text}"

    @pipeline
    def tagged(path: Path = Path("a.txt"), name: str = "a"):
        return tag(shout(first_line(path)), name)

    (tmp_path / "a.txt").write_text("header\n1\n")
    (tmp_path / "b.txt").write_text("header\n2\n")
    store = str(tmp_path / "store")
    tagged.run(store=store, path=tmp_path / "a.txt", name="a")
    second = tagged.run(store=store, path=tmp_path / "b.txt", name="b")
    assert (second.steps["first_line"].status, second.steps["shout"].status) == ("ran", "cached")
    lineage = Context.open(store).lineage

    up = walk(lineage, f"{second.id}:tag", "upstream")
    files = {v.data["path"] for v in up.vertices.values() if v.kind == "file"}
    assert files == {str(tmp_path / "b.txt")}
    assert {v.data["run_id"] for v in up.vertices.values() if v.kind == "step" and v.data["step"] == "first_line"} \
        == {second.id}
    down = walk(lineage, str(tmp_path / "b.txt"), "downstream")
    assert f"step:{second.id}:tag" in down.vertices


@step
def scale(xs: list, k: int) -> list:
    return [x * k for x in xs]


@step
def add_up_scaled(xs: list) -> int:
    return sum(xs)


@pipeline
def scaled(n: int = 4, k: int = 3):
    return add_up_scaled(scale(halves(n)[0], k))


def test_downstream_of_a_step_run_shows_the_steps_its_run_reused_in_that_run(store):
    """docs/cli.md: a computation a later run reused is "shown in the REF's own run when REF is a step run
    of it". From the load of a run that reused `scale` (load forced again, or all cached), `scale` was shown
    in the run that computed it, and a run REF split into two trees."""
    first = scaled.run(store=str(store))
    forced = scaled.run(store=str(store), rerun=["halves"])
    cached = scaled.run(store=str(store))
    assert forced.steps["scale"].status == cached.steps["halves"].status == "cached"
    lineage = Context.open(store).lineage
    for run, ref in ((first, f"{first.id}:halves"), (forced, f"{forced.id}:halves"),
                     (cached, f"{cached.id}:halves"), (cached, cached.id)):
        down = walk(lineage, ref, "downstream")
        steps = {v.data["step"]: v for v in down.vertices.values() if v.kind == "step"}
        assert {v.data["run_id"] for v in steps.values()} == {run.id}, ref
        assert steps["scale"].data["computed_by"] == f"{first.id}:scale", ref
        if run is not first:
            assert steps["scale"].label == f"scale (run {run.id}, cached from run {first.id})", ref
        assert len(down.roots) == (3 if ref == cached.id else 1)
        assert all(f"(run {run.id}," in line for line in render(down, "tree").splitlines() if "read by" in line), ref
