"""`orch cache gc --keep-last N`: what a user keeps is their last good runs, and a failed run's progress."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.context import Context
from orchestrator.hashing import hash_value
from orchestrator.loader import load_pipeline
from orchestrator.maintenance import collect_garbage, verify_store

from .conftest import PIPELINES


def _run(store, **params):
    return load_pipeline(str(PIPELINES / "gc_runs.py")).run(store=str(store), **params)


def test_keep_last_counts_succeeded_runs_and_spares_newer_failures(store):
    old = _run(store, n=1)
    good = _run(store, n=2)
    failed = _run(store, n=3, fail=True)  # newest: its `make` finished, `check` failed
    assert (old.status, good.status, failed.status) == ("succeeded", "succeeded", "failed")
    ctx = Context.open(store)

    result = collect_garbage(ctx, keep_last=1)

    assert result.removed == [old.steps["make"].outputs["out"]]
    assert ctx.store.has(good.steps["make"].outputs["out"])
    assert ctx.store.has(failed.steps["make"].outputs["out"])  # the next run resumes from it
    again = _run(store, n=3, fail=False)
    assert again.steps["make"].status == "cached"


def test_keep_last_with_no_succeeded_run_keeps_everything(store):
    first = _run(store, n=1, fail=True)
    second = _run(store, n=2, fail=True)
    result = collect_garbage(Context.open(store), keep_last=1)
    assert result.removed == []
    assert first.status == second.status == "failed"


def test_keep_last_counts_the_runs_of_each_pipeline(store):
    """--keep-last 1 keeps the last training run however many etl runs came after it."""
    other = load_pipeline(str(PIPELINES / "gc_other.py"))
    older = other.run(store=str(store), n=1)
    last = other.run(store=str(store), n=2)
    busy = [_run(store, n=n) for n in (1, 2, 3)]  # the busier pipeline runs since
    assert [r.status for r in (older, last, *busy)] == ["succeeded"] * 5
    time.sleep(0.05)  # past gc's spare-what-is-being-written window, however fast the runs were
    ctx = Context.open(store)

    result = collect_garbage(ctx, keep_last=1)

    assert sorted(result.removed) == sorted([older.steps["build"].outputs["out"],
                                             busy[0].steps["make"].outputs["out"],
                                             busy[1].steps["make"].outputs["out"]])
    assert ctx.store.has(last.steps["build"].outputs["out"])
    assert ctx.store.has(busy[2].steps["make"].outputs["out"])
    assert other.run(store=str(store), n=2).steps["build"].status == "cached"


def test_a_kept_cached_run_keeps_what_it_reused_after_a_rerun_replaced_the_cache_entry(store):
    """gc followed the key's cache entry, which a later --rerun pointed at a new draw: a kept run's output went."""
    import orchestrator

    drawn = load_pipeline(str(PIPELINES / "gc_drawn.py"))
    first = drawn.run(store=str(store))
    reused = drawn.run(store=str(store))  # cached: its output is the first run's draw
    drawn.run(store=str(store), rerun="draw")  # a new draw, now under the key
    time.sleep(0.05)  # past gc's spare-what-is-being-written window
    assert reused.steps["draw"].status == "cached"

    collect_garbage(Context.open(store), keep_last=2)  # keeps the last two runs

    assert orchestrator.get_run(reused.id, store=store).output() == first.output()


def _during_gc(ctx: Context, action) -> None:
    """Make ``action`` happen while ``collect_garbage`` runs, right after it reads the runs."""
    read_runs = ctx.lineage.runs

    def runs(*args, **kwargs):
        found = read_runs(*args, **kwargs)
        action()
        return found

    ctx.lineage.runs = runs  # type: ignore[method-assign]


def test_a_run_that_starts_during_gc_keeps_what_it_writes(store):
    _run(store, n=1)
    _run(store, n=2)
    ctx = Context.open(store)
    started: list = []
    _during_gc(ctx, lambda: started.append(_run(store, n=3)))

    collect_garbage(ctx, keep_last=1)

    made = started[0].steps["make"].outputs["out"]
    assert ctx.store.has(made)
    assert _run(store, n=3).steps["make"].status == "cached"


def test_an_old_object_a_running_run_produces_again_is_kept(store):
    old = _run(store, n=1)
    _run(store, n=2)
    digest = old.steps["make"].outputs["out"]
    assert hash_value([1] * 5000) == digest
    ctx = Context.open(store)
    hour_ago = time.time() - 3600
    os.utime(ctx.store.path_of(digest), (hour_ago, hour_ago))
    # Another run's step returns the same value again; its rows are not committed yet.
    _during_gc(ctx, lambda: ctx.store.put([1] * 5000, digest))

    result = collect_garbage(ctx, keep_last=1)

    assert digest not in result.removed and ctx.store.has(digest)


def test_a_run_that_produces_an_object_again_between_its_record_and_its_file_going_keeps_it(store):
    """gc forgets an artifact before deleting its file: a run that makes it again meanwhile adopts the file."""
    _run(store, n=1)
    _run(store, n=2)
    _run(store, n=3)
    ctx = Context.open(store)
    hour_ago = time.time() - 3600
    for path in ctx.store.root.glob("objects/*/*"):
        os.utime(path, (hour_ago, hour_ago))
    forget, again = ctx.forget_signatures, []

    def forget_then_run(digests):
        forget(digests)  # the records are gone, the files not yet
        if not again:
            again.append(_run(store, n=1))

    ctx.forget_signatures = forget_then_run  # type: ignore[method-assign]
    collect_garbage(ctx, keep_last=1)

    made = again[0].steps["make"]
    assert made.status == "ran" and ctx.store.has(made.outputs["out"])
    assert verify_store(ctx)[1] == []


def test_a_store_that_refuses_a_delete_is_one_clear_line_and_leaves_no_dangling_row(store, monkeypatch, capsys):
    """A read-only store (or missing delete permission on a bucket): say so; no row names a deleted object."""
    from orchestrator.cli import main
    from orchestrator.doctor import examine
    from orchestrator.store import ArtifactStore

    old = [_run(store, n=n).steps["make"].outputs["out"] for n in (1, 2)]
    _run(store, n=3)
    time.sleep(0.05)  # past gc's spare-what-is-being-written window
    real_delete, calls = ArtifactStore.delete, []

    def refuses_the_second(self, digest):
        calls.append(digest)
        if len(calls) > 1:
            raise PermissionError(13, "Permission denied", str(self.path_of(digest)))
        real_delete(self, digest)

    monkeypatch.setattr(ArtifactStore, "delete", refuses_the_second)
    with pytest.raises(SystemExit) as exited:
        main(["--store", str(store), "cache", "gc", "--keep-last", "1"])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.count("\n") == 1, err
    assert "cannot remove object" in err and "Permission denied" in err and "removed 1 artifact(s) before it" in err
    assert "the 1 left are recorded no more (orphans" in err
    monkeypatch.setattr(ArtifactStore, "delete", real_delete)
    ctx = Context.open(store)
    # No row names a removed object; the object left is an orphan, which gc removes once it can.
    assert [f.check for f in examine(ctx).findings] == ["orphans"]
    assert sum(ctx.store.has(d) for d in old) == 1
    collect_garbage(ctx, keep_last=1)
    assert examine(ctx).healthy and not any(ctx.store.has(d) for d in old)


def test_gc_reads_the_cache_index_once_however_many_artifacts_it_removes(store):
    """A scan of the cache index per removed artifact made gc of 2,000 artifacts take 14 s."""
    old = [_run(store, n=n) for n in (1, 2, 3, 4)]
    _run(store, n=5)  # the run kept
    ctx = Context.open(store)
    # gc spares objects written in its last 10 ms (a coarse file clock): the old ones must be older.
    hour_ago = time.time() - 3600
    for path in ctx.store.root.glob("objects/*/*"):
        os.utime(path, (hour_ago, hour_ago))
    statements: list[str] = []
    ctx.lineage.conn.set_trace_callback(statements.append)
    result = collect_garbage(ctx, keep_last=1)
    ctx.lineage.conn.set_trace_callback(None)

    removed = {run.steps["make"].outputs["out"] for run in old}
    assert set(result.removed) == removed  # every `check` returned 5000: that artifact is kept's too
    scans = [s for s in dict.fromkeys(statements) if "cache" in s and any(
        row[3].startswith("SCAN") for row in ctx.lineage.conn.execute("EXPLAIN QUERY PLAN " + s))]
    assert len(scans) <= 1, scans
    # Exactly the entries naming a removed artifact are gone: the kept run's and every `check`'s stay.
    outputs = [o for (o,) in ctx.lineage.conn.execute("SELECT outputs FROM cache")]
    assert len(outputs) == 6 and not any(d in o for d in removed for o in outputs)
    again = _run(store, n=1)
    assert (again.steps["make"].status, again.steps["check"].status) == ("ran", "cached")


def test_an_old_object_a_running_run_reuses_from_the_cache_is_kept(store, monkeypatch):
    """gc while a run is under way must not delete what its cache hits named, before their rows commit."""
    pipeline = load_pipeline(str(PIPELINES / "gc_during_run.py"))
    first = pipeline.run(store=str(store))
    digest = first.steps["make"].outputs["out"]
    ctx = Context.open(store)
    hour_ago = time.time() - 3600
    os.utime(ctx.store.path_of(digest), (hour_ago, hour_ago))
    # Records are committed in groups; with a long budget, the cache hit's row is still queued when gc runs.
    monkeypatch.setenv("ORCH_COMMIT_BUDGET", "3600")
    monkeypatch.setenv("GC_DURING_RUN_STORE", str(store))

    second = pipeline.run(store=str(store), round=1)

    assert second.steps["make"].status == "cached"
    assert ctx.store.has(digest)
    assert second.output()[0] == [1] * 5000


def test_cache_verify_in_another_terminal_waits_for_gc_instead_of_reporting_what_it_removes(store, tmp_path):
    """`orch cache verify` while `orch cache gc` ran in another terminal: gc deletes objects before their
    rows, so verify found rows whose objects were gone and exited 1 calling them damaged ('missing from
    the store', or `error: artifact … is missing from the store`). It now waits for gc, saying so."""
    import subprocess
    import sys
    import threading

    from tests.reliability.helpers import wait_for

    from .conftest import ROOT

    for n in (1, 2, 3):
        _run(store, n=n)
    ctx = Context.open(store)
    # gc spares objects written in its last 10 ms (a coarse file clock): the old ones must be older.
    hour_ago = time.time() - 3600
    for path in ctx.store.root.glob("objects/*/*"):
        os.utime(path, (hour_ago, hour_ago))
    deleted, go_on = threading.Event(), threading.Event()
    delete = ctx.store.delete

    def delete_then_pause(digest: str) -> None:
        delete(digest)
        deleted.set()
        go_on.wait(timeout=60)  # gc is half-way: an object is gone, its row is not yet

    ctx.store.delete = delete_then_pause  # type: ignore[method-assign]
    gc = threading.Thread(target=collect_garbage, args=(ctx,), kwargs={"keep_last": 1})
    gc.start()
    try:
        assert deleted.wait(timeout=60)
        err = tmp_path / "verify.err"
        with err.open("w") as stderr:
            verify = subprocess.Popen([sys.executable, "-m", "orchestrator", "--store", str(store), "cache", "verify"],
                                      stdout=subprocess.PIPE, stderr=stderr, text=True,
                                      env={**os.environ, "PYTHONPATH": str(ROOT)})
            assert wait_for(lambda: verify.poll() is not None or "waiting: " in err.read_text(), timeout=60)
    finally:
        go_on.set()
        gc.join(timeout=60)
    out, _ = verify.communicate(timeout=60)
    lines = err.read_text().strip().splitlines()
    assert verify.returncode == 0 and out == "", (out, lines)
    assert lines[0].startswith(f"waiting: another process is removing or checking the objects of the store {store}")
    assert lines[-1] == "2 objects checked, 0 damaged"  # what run 3 keeps: its list and its (inline) count


def test_dry_run_lists_each_artifact_it_would_remove_and_removes_nothing(store, capsys):
    """`--dry-run` ("show what would be removed") printed a count alone: nothing to look up before deleting."""
    from orchestrator.cli import main

    old = _run(store, n=1)
    _run(store, n=2)
    time.sleep(0.05)  # past gc's spare-what-is-being-written window
    digest = old.steps["make"].outputs["out"]
    with pytest.raises(SystemExit) as exited:
        main(["--store", str(store), "cache", "gc", "--keep-last", "1", "--dry-run"])
    out = capsys.readouterr().out.splitlines()
    assert exited.value.code in (0, None)
    size = next(r["size"] for r in Context.open(store).lineage.artifact_rows() if r["digest"] == digest)
    assert out[0].split() == [digest, str(size), "list"], out
    assert out[-1].startswith("would remove 1 artifact") and len(out) == 2, out
    assert Context.open(store).store.has(digest)


def test_gc_says_how_much_it_frees_as_cache_du_says_sizes(store, capsys):
    """Freeing two small objects printed `(0.0 MB)`: read as nothing freed. The size is said as `cache du`
    says it (kB here), by `--dry-run` and by the removal alike."""
    from orchestrator.cli import main

    old = _run(store, n=1)
    _run(store, n=2)
    time.sleep(0.05)  # past gc's spare-what-is-being-written window
    ctx = Context.open(store)
    size = ctx.store.object_stat(old.steps["make"].outputs["out"])[1]
    assert 1_000 <= size < 1_000_000
    for verb, flags in (("would remove", ["--dry-run"]), ("removed", [])):
        with pytest.raises(SystemExit) as exited:
            main(["--store", str(store), "cache", "gc", "--keep-last", "1", *flags])
        assert exited.value.code in (0, None)
        last = capsys.readouterr().out.splitlines()[-1]
        assert last.startswith(f"{verb} 1 artifact ({size / 1e3:.1f} kB); "), last


def test_gc_of_values_held_in_the_database_says_so_rather_than_freeing_nothing(tmp_path, capsys):
    """A step returning `[k, 2 * k]`: gc listed the value, then said `would remove 1 artifact (0 B)`."""
    from orchestrator import pipeline, step
    from orchestrator.cli import main

    @step
    def pair(k: int) -> list:
        return [k, 2 * k]

    @pipeline
    def pairs(k: int = 1):
        return pair(k)

    store = tmp_path / "store"
    pairs.run(store=str(store), k=1)
    pairs.run(store=str(store), k=2)
    time.sleep(0.05)  # past gc's spare-what-is-being-written window
    with pytest.raises(SystemExit) as exited:
        main(["--store", str(store), "cache", "gc", "--keep-last", "1", "--dry-run"])
    assert exited.value.code in (0, None)
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith("would remove 1 artifact (0 B, 1 of them values held in metadata.db); "), last


def test_verify_of_a_store_of_one_object_says_one_object(tmp_path, capsys):
    """`1 objects checked` read as a typo on a fresh store's first verify."""
    from orchestrator.cli import main

    load_pipeline(str(PIPELINES / "gc_other.py")).run(store=str(tmp_path / "store"))  # one object
    with pytest.raises(SystemExit) as exited:
        main(["--store", str(tmp_path / "store"), "cache", "verify"])
    assert exited.value.code == 0
    assert capsys.readouterr().err.splitlines()[-1] == "1 object checked, 0 damaged"


def test_a_store_moved_with_its_metadata_folder_names_the_file_that_makes_gc_refuse(tmp_path, capsys):
    """After `mv project elsewhere`, gc refused for ever: 'shared with vm:/old/meta/metadata.db', a hashed file to find."""
    import shutil

    from orchestrator.cli import main

    old = tmp_path / "old"
    load_pipeline(str(PIPELINES / "gc_other.py")).run(store=str(old / "objs"), metadata=str(old / "meta"))
    new = tmp_path / "new"
    shutil.move(old, new)
    ctx = Context.open(new / "objs", new / "meta")
    [registration] = (new / "objs" / "databases").glob("*.json")

    with pytest.raises(SystemExit) as exited:
        main(["--store", str(new / "objs"), "--metadata", str(new / "meta"), "cache", "gc"])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.count("\n") == 1, err
    assert f"{old / 'meta' / 'metadata.db'} no longer exist(s) on this host" in err
    assert f"remove {registration} and run gc again" in err

    registration.unlink()
    assert collect_garbage(ctx).removed == []  # its runs are all kept, and nothing refuses



def test_gc_keeps_the_record_of_a_file_a_step_wrote_so_its_lineage_still_names_the_content(store, tmp_path):
    """A path a step returns is stored in the database alone (no object): removing its row freed
    nothing and lost which content the step wrote, so a model's audit trail lost its training data."""

    from orchestrator import pipeline, step
    from orchestrator.provenance import walk

    target = tmp_path / "data.csv"

    @step(untracked="target")  # written, not read
    def write(rows: int) -> Path:
        target.write_text("x\n" + "1\n" * rows)
        return target

    @step
    def count(path: Path) -> int:
        return len(path.read_text().splitlines()) - 1

    @pipeline
    def written(rows: int = 3):
        return count(write(rows))

    old = written.run(store=str(store), rows=3)
    written.run(store=str(store), rows=4)
    time.sleep(0.05)  # past gc's spare-what-is-being-written window
    ctx = Context.open(store)
    made = old.steps["write"].outputs["out"]
    meta_before = ctx.lineage.artifact_row(made)["meta"]["file"]

    collect_garbage(ctx, keep_last=1)

    row = Context.open(store).lineage.artifact_row(made)
    assert row is not None and row["meta"]["file"] == meta_before
    graph = walk(Context.open(store).lineage, f"{old.id}:count", "upstream")
    # The later run wrote over the file: the one this run wrote is named, as no longer there.
    assert any(v.data.get("file") == {**meta_before, "now": "changed since"} for v in graph.vertices.values())


def test_verify_repair_in_a_shared_store_keeps_an_object_only_its_own_signature_fails(tmp_path, monkeypatch, capsys):
    """Database B, under another signing key, found A's pickled object 'damaged' (its signature) and
    --repair deleted the file, which A's runs used: gc refuses in such a store, repair did not."""
    from orchestrator.cli import main

    objects, a, b = tmp_path / "objs", tmp_path / "meta-a", tmp_path / "meta-b"
    pipe = load_pipeline(str(PIPELINES / "pickled.py"))
    monkeypatch.setenv("ORCH_SIGNING_KEY", "aa" * 32)
    first = pipe.run(store=str(objects), metadata=str(a))
    digest = first.steps["make"].outputs["out"]
    monkeypatch.setenv("ORCH_SIGNING_KEY", "bb" * 32)
    assert pipe.run(store=str(objects), metadata=str(b)).status == "succeeded"  # signs its own row
    ctx_b = Context.open(objects, metadata=str(b))
    ctx_b.lineage.conn.execute("UPDATE signatures SET hmac='0' || substr(hmac, 2) WHERE digest=?", (digest,))
    ctx_b.lineage.conn.commit()
    try:
        main(["--store", str(objects), "--metadata", str(b), "cache", "verify", "--repair"])
    except SystemExit:
        pass
    capsys.readouterr()
    from orchestrator.store import ArtifactStore

    assert ArtifactStore(objects).has(digest)
    monkeypatch.setenv("ORCH_SIGNING_KEY", "aa" * 32)
    again = pipe.run(store=str(objects), metadata=str(a))
    assert again.steps["make"].status == "cached" and again.output() == first.output()


def test_a_reason_after_gc_names_the_real_change_not_no_earlier_result(store, tmp_path):
    """A key whose parts gc removed counted as one change, and beat the last run's two real ones:
    `orch run` said "no earlier result" of a step that ran in every earlier run, while `plan` named it."""
    from orchestrator import pipeline, step

    @step
    def load(path: Path) -> list:
        return [float(x) for x in path.read_text().split()]

    @step
    def scale(xs: list, k: float) -> list:
        return [x * k for x in xs]

    @pipeline
    def flow(path: Path = tmp_path / "d.txt", k: float = 1.0):
        return scale(load(path), k=k)

    data = tmp_path / "d.txt"
    data.write_text("1 2 3")
    flow.run(store=str(store), k=3.0)
    flow.run(store=str(store), k=3.0)  # cached: its steps' rows keep no parts, the cache index does
    data.write_text("4 5 6")
    flow.run(store=str(store), k=2.0)
    time.sleep(0.05)
    collect_garbage(Context.open(store), keep_last=1)
    data.write_text("7 8 9")
    planned = flow.plan(store=str(store), k=5.0).steps
    run = flow.run(store=str(store), k=5.0)
    assert "parameter `k` changed (2.0 → 5.0)" in run.steps["scale"].reason
    assert "parameter `k` changed (2.0 → 5.0)" in planned["scale"].reason


def _orch_as(seed: int, *args: str) -> subprocess.CompletedProcess:
    """`orch ...` in a process of its own hash seed: a set of strings pickles in another order in each."""
    env = {**os.environ, "PYTHONHASHSEED": str(seed), "ORCH_SIGNING_KEY": "aa" * 32,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], env=env, capture_output=True, text=True,
                          check=False)


def test_another_databases_encoding_of_a_shared_object_is_recomputed_not_deleted(tmp_path, monkeypatch):
    """Pickles of one value differ between processes (a set's order, a class sent by value). Bob's run replaced
    Alice's object; her cached run said succeeded with an output she could not load, and her `verify --repair`
    then deleted Bob's sound file."""
    from orchestrator import get_run
    from orchestrator.store import ArtifactStore

    monkeypatch.setenv("ORCH_SIGNING_KEY", "aa" * 32)
    (tmp_path / "words.py").write_text(
        "from orchestrator import pipeline, step\n\n@step\ndef vocab(n: int) -> set:\n"
        "    return {f'word{i}' for i in range(n)}\n\n@pipeline\ndef words(n: int = 2000):\n    return vocab(n)\n")
    objects, alice, bob, flow = str(tmp_path / "objs"), str(tmp_path / "alice"), str(tmp_path / "bob"), \
        str(tmp_path / "words.py")
    assert _orch_as(1, "--store", objects, "--metadata", alice, "run", flow).returncode == 0
    assert _orch_as(2, "--store", objects, "--metadata", bob, "run", flow).returncode == 0  # replaced hers

    again = _orch_as(1, "--store", objects, "--metadata", alice, "run", flow, "--json")
    assert again.returncode == 0, again.stderr
    [step] = json.loads(again.stdout)["steps"]
    assert (step["status"], step["reason"]) == ("ran", "stored output was damaged")  # not a cached unloadable one
    assert len(get_run("latest", store=objects, metadata=alice).output()) == 2000

    # Now Bob's record is the stale one: his repair removes his record, never Alice's sound object.
    repaired = _orch_as(2, "--store", objects, "--metadata", bob, "cache", "verify", "--repair")
    digest = step["outputs"][0]["hash"]
    assert f"removed this database's record of {digest}" in repaired.stdout, repaired.stdout + repaired.stderr
    assert "its object stays" in repaired.stdout
    assert ArtifactStore(objects).has(digest)
    assert len(get_run("latest", store=objects, metadata=alice).output()) == 2000
