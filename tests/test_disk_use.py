"""`orch cache du`: what takes a store's space, by pipeline, step or run, adding up to the total."""

from __future__ import annotations

import json

import pytest

from orchestrator.context import Context
from orchestrator.disk_use import ORPHANS, disk_use
from orchestrator.loader import load_pipeline
from orchestrator.store import ArtifactStore

from .conftest import PIPELINES


@pytest.fixture(scope="module")
def grown(tmp_path_factory):
    """Two pipelines' runs (one of them a fully cached re-run) and an orphan object."""
    store = tmp_path_factory.mktemp("du") / "store"
    busy = load_pipeline(str(PIPELINES / "gc_runs.py"))
    other = load_pipeline(str(PIPELINES / "gc_other.py"))
    first = busy.run(store=str(store), n=1)
    second = busy.run(store=str(store), n=2)
    cached = busy.run(store=str(store), n=2)
    third = other.run(store=str(store), n=1)
    ArtifactStore(store).put(b"orphan" * 2000, "e" * 32)  # a process died before recording it
    ctx = Context.open(store)
    size = {d: ctx.store.object_stat(d)[1] for d in ctx.store.iter_objects()}
    return store, ctx, size, first, second, cached, third


def test_groups_add_up_to_the_object_files_each_counted_once(grown):
    store, ctx, size, first, second, cached, third = grown
    make = [r.steps["make"].outputs["out"] for r in (first, second)]
    build = third.steps["build"].outputs["out"]
    assert cached.steps["make"].status == "cached"

    by_pipeline = {g.fields["pipeline"]: (g.objects, g.bytes) for g in disk_use(ctx, "pipeline").groups}
    assert by_pipeline == {"gc_runs": (2, size[make[0]] + size[make[1]]), "gc_other": (1, size[build]),
                           ORPHANS: (1, size["e" * 32])}

    by_step = {(g.fields["pipeline"], g.fields["step"]): g.objects for g in disk_use(ctx, "step").groups}
    assert by_step == {("gc_runs", "make"): 2, ("gc_other", "build"): 1, (ORPHANS, None): 1}

    use = disk_use(ctx, "run")
    by_run = {g.fields["run"]: g.bytes for g in use.groups}
    assert cached.id not in by_run  # a cached re-run wrote nothing
    assert by_run[first.id] == size[make[0]] and by_run[third.id] == size[build]
    assert use.objects == len(size) and use.bytes == sum(size.values()) == sum(by_run.values())
    assert [g.bytes for g in use.groups] == sorted((g.bytes for g in use.groups), reverse=True)


def test_cli_prints_a_table_and_a_json_document(grown, capsys):
    from orchestrator.cli import main

    store, ctx, size, first, second, cached, third = grown
    with pytest.raises(SystemExit) as exited:
        main(["--store", str(store), "cache", "du", "--by", "step"])
    assert exited.value.code == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[0].split() == ["pipeline", "step", "objects", "size"]
    assert any(line.split()[:3] == ["gc_runs", "make", "2"] for line in out.splitlines())
    assert f"{len(size)} objects" in err and "orch cache gc --keep-last N --dry-run" in err

    with pytest.raises(SystemExit):
        main(["--store", str(store), "cache", "du", "--by", "run", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert doc["by"] == "run" and doc["bytes"] == sum(size.values()) and doc["metadata_bytes"] > 0
    row = next(g for g in doc["groups"] if g["run"] == third.id)
    assert row == {"run": third.id, "pipeline": "gc_other", "status": "succeeded",
                   "started": row["started"], "objects": 1, "bytes": size[third.steps["build"].outputs["out"]]}



def test_a_store_shared_by_other_databases_calls_their_objects_theirs_not_orphans(tmp_path):
    """Objects another metadata database records are not orphans for `orch cache gc` to remove."""
    from orchestrator.disk_use import OTHERS

    store = tmp_path / "shared"
    mine = load_pipeline(str(PIPELINES / "gc_runs.py")).run(store=str(store), metadata=str(tmp_path / "me"), n=4)
    load_pipeline(str(PIPELINES / "gc_other.py")).run(store=str(store), metadata=str(tmp_path / "them"), n=4)

    groups = {g.fields["pipeline"]: g.objects for g in disk_use(Context.open(store, tmp_path / "me")).groups}

    assert groups == {"gc_runs": 1, OTHERS: 1} and mine.status == "succeeded"


def test_request_logs_and_drift_reports_are_counted_apart(tmp_path, capsys):
    """Months of `orch serve` grow serving/ as runs grow objects/: du says so beside the objects."""
    from orchestrator.cli import main

    store = tmp_path / "store"
    load_pipeline(str(PIPELINES / "gc_other.py")).run(store=str(store))
    (store / "serving" / "churn").mkdir(parents=True)
    (store / "serving" / "churn" / "a.jsonl").write_bytes(b"x" * 3000)
    (store / "reports" / "churn").mkdir(parents=True)
    (store / "reports" / "churn" / "drift.json").write_bytes(b"y" * 700)

    use = disk_use(Context.open(store))
    assert (use.request_log_bytes, use.reports_bytes, use.objects) == (3000, 700, 1)
    with pytest.raises(SystemExit):
        main(["--store", str(store), "cache", "du"])
    assert "; request logs (serving/) 3.0 kB; drift reports (reports/) 700 B." in capsys.readouterr().err


def test_an_object_a_running_run_wrote_before_its_row_is_not_called_an_orphan(tmp_path, monkeypatch):
    """A step's object is stored before its row: while the run goes on, it is no crash's leftover."""
    from orchestrator.disk_use import WRITING

    store = tmp_path / "store"
    load_pipeline(str(PIPELINES / "gc_other.py")).run(store=str(store))
    ctx = Context.open(store)
    ctx.store.put(b"in flight" * 2000, "f" * 32)
    assert {g.fields["pipeline"] for g in disk_use(ctx).groups} == {"gc_other", ORPHANS}

    real_runs = ctx.lineage.runs
    monkeypatch.setattr(ctx.lineage, "runs", lambda **kw: [{**real_runs()[0], "status": "running"}]
                        if kw.get("statuses") == ("running",) else real_runs(**kw))
    groups = {g.fields["pipeline"] for g in disk_use(ctx).groups}
    assert groups == {"gc_other", WRITING}


def test_values_kept_inline_are_counted_beside_the_files_as_ls_verify_and_doctor_count_them(tmp_path, capsys):
    """A store of small values has no object file: du said '0 objects, 0 B' where cache ls listed each."""
    from orchestrator.cli import main

    (tmp_path / "small.py").write_text(
        "from orchestrator import pipeline, step\n\n@step\ndef pair(n: int) -> tuple[int, str]:\n"
        "    return n, 'x' * 100\n\n@pipeline\ndef small(n: int = 1):\n    return pair(n)\n")
    store = tmp_path / "store"
    run = load_pipeline(str(tmp_path / "small.py")).run(store=str(store))
    assert run.status == "succeeded"

    use = disk_use(Context.open(store))
    assert (use.objects, use.inline_objects) == (0, 2) and 100 < use.inline_bytes < use.metadata_bytes
    with pytest.raises(SystemExit):
        main(["--store", str(store), "cache", "du"])
    err = capsys.readouterr().err
    assert err.startswith(f"0 objects, 0 B; metadata.db {use.metadata_bytes / 1e3:.1f} kB (with 2 values of 4 KB or "
                          f"less, {use.inline_bytes} B, that orch cache ls lists). ")
    with pytest.raises(SystemExit):
        main(["--store", str(store), "cache", "du", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert (doc["objects"], doc["inline_objects"], doc["inline_bytes"]) == (0, 2, use.inline_bytes)


def test_an_object_two_steps_of_a_run_output_counts_for_the_one_that_made_it(tmp_path):
    """A step that returns its input unchanged outputs the same object as the step before it: du credited
    it to whichever edge the database listed last (`validate`, after `make` by name), not to its maker.
    Both name orders: `a_check` sorts before `load`, `validate` after `make`."""
    (tmp_path / "validated.py").write_text(
        "from orchestrator import pipeline, step\n\n@step\ndef make(n: int) -> list:\n    return list(range(n))\n\n"
        "@step\ndef validate(xs: list) -> list:\n    return xs\n\n@step\ndef total(xs: list, k: int = 1) -> int:\n"
        "    return sum(xs) * k\n\n@pipeline\ndef validated(n: int = 5000, k: int = 1):\n"
        "    return total(validate(make(n)), k)\n")
    for path, maker, passer in ((tmp_path / "validated.py", "make", "validate"),
                                (PIPELINES / "passthrough.py", "load", "a_check")):
        store = tmp_path / f"store_{maker}"
        run = load_pipeline(str(path)).run(store=str(store), n=5000)
        assert run.steps[maker].outputs["out"] == run.steps[passer].outputs["out"]
        groups = disk_use(Context.open(store), "step").groups
        assert [(g.fields["step"], g.objects) for g in groups] == [(maker, 1)], path.name
