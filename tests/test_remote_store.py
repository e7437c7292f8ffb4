"""A store behind an fsspec URL (in-memory and local filesystems), with the metadata database kept local."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli, main
from orchestrator.context import Context
from orchestrator.errors import UserError
from orchestrator.loader import load_pipeline

from .conftest import PIPELINES

fsspec = pytest.importorskip("fsspec")


def _signature(run):
    return {n: (s.status, s.key, tuple(sorted(s.outputs.items()))) for n, s in run.steps.items()}


def _mixed(**run_options):
    return load_pipeline(str(PIPELINES / "parallel.py:mixed")).run(**run_options)


@pytest.fixture
def memory_url():
    """A fresh in-memory store URL, removed afterwards (the memory filesystem is process-wide)."""
    bucket = f"orch-test-{uuid.uuid4().hex[:12]}"
    yield f"memory://{bucket}/store"
    fs = fsspec.filesystem("memory")
    if fs.exists(f"/{bucket}"):
        fs.rm(f"/{bucket}", recursive=True)


@pytest.fixture
def reference(tmp_path_factory, calls):
    """The same pipeline on a plain local store: what every other store must reproduce."""
    run = _mixed(store=str(tmp_path_factory.mktemp("local")))
    assert run.status == "succeeded", run.error
    return run


def test_memory_store_gives_the_same_keys_and_digests_and_caches(memory_url, reference, tmp_path, calls):
    meta = tmp_path / "meta"
    first = _mixed(store=memory_url, metadata=str(meta))
    assert first.status == "succeeded", first.error
    assert {n: v[1:] for n, v in _signature(first).items()} == {n: v[1:] for n, v in _signature(reference).items()}
    assert first.output() == {"sum": 14, "rows": 2000}

    fs = fsspec.filesystem("memory")
    base = memory_url.removeprefix("memory://")
    stored = [p.rsplit("/", 1)[-1] for p in fs.find(f"/{base}/objects")]
    assert first.steps["frame"].outputs["out"] in stored  # the 2,000-row table is an object in the remote store
    assert (meta / "metadata.db").exists() and not fs.exists(f"/{base}/metadata.db")

    calls.clear()
    again = _mixed(store=memory_url, metadata=str(meta))
    assert {s.status for s in again.steps.values()} == {"cached"}
    assert calls.ran() == set()
    assert again.output() == {"sum": 14, "rows": 2000}


def test_damaged_remote_object_is_detected_and_recomputed(memory_url, tmp_path, calls):
    meta = str(tmp_path / "meta")
    first = _mixed(store=memory_url, metadata=meta)
    digest = first.steps["frame"].outputs["out"]
    fs = fsspec.filesystem("memory")
    path = f"/{memory_url.removeprefix('memory://')}/objects/{digest[:2]}/{digest}"
    data = bytearray(fs.cat_file(path))
    data[-10] ^= 0xFF
    fs.pipe_file(path, bytes(data))

    verify = CliRunner().invoke(cli, ["--store", memory_url, "--metadata", meta, "cache", "verify", "--json"])
    assert verify.exit_code == 1, verify.output
    assert [d["hash"] for d in json.loads(verify.output)["damaged"]] == [digest]

    # The step that reads it is forced, so the damage is found mid-run and its producer re-runs.
    second = _mixed(store=memory_url, metadata=meta, rerun=["combine"])
    assert second.status == "succeeded", second.error
    assert second.steps["frame"].status == "ran"
    assert second.steps["frame"].reason == "stored output was damaged"
    assert second.output() == {"sum": 14, "rows": 2000}
    clean = CliRunner().invoke(cli, ["--store", memory_url, "--metadata", meta, "cache", "verify"])
    assert clean.exit_code == 0, clean.output


def test_cli_lists_and_collects_a_remote_store(memory_url, tmp_path, calls):
    meta = str(tmp_path / "meta")
    run = _mixed(store=memory_url, metadata=meta)
    base = ["--store", memory_url, "--metadata", meta]
    listed = CliRunner().invoke(cli, [*base, "cache", "ls", "--json"])
    assert listed.exit_code == 0, listed.output
    objects = {o["hash"]: o for o in json.loads(listed.output)}
    frame = run.steps["frame"].outputs["out"]
    assert objects[frame]["path"] == f"{memory_url.split('/store')[0]}/store/objects/{frame[:2]}/{frame}"

    shown = CliRunner().invoke(cli, [*base, "show", run.id, "--json"])
    assert shown.exit_code == 0 and json.loads(shown.output)["status"] == "succeeded"

    # An object no run references is collected; the run's own objects stay.
    ctx = Context.open(memory_url, meta)
    stray = ctx.store.put(b"x" * 10_000, "0" * 32)
    assert stray.inline is None and ctx.store.has("0" * 32)
    time.sleep(0.05)  # gc spares what is written while it runs, as a run that starts meanwhile may
    gc = CliRunner().invoke(cli, [*base, "cache", "gc"])
    assert gc.exit_code == 0, gc.output
    assert not ctx.store.has("0" * 32) and ctx.store.has(frame)


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["process", "dask"])
def test_file_url_store_is_shared_by_workers(executor, reference, tmp_path, calls):
    if executor == "dask":
        pytest.importorskip("distributed")
    folder = tmp_path / "shared"
    meta = tmp_path / "meta"
    run = _mixed(store=f"file://{folder}", metadata=str(meta), executor=executor, workers=None if executor == "sequential" else 2)
    assert run.status == "succeeded", run.error
    assert _signature(run) == _signature(reference)
    frame = run.steps["frame"].outputs["out"]
    assert (folder / "objects" / frame[:2] / frame).is_file()  # written by a worker, through fsspec
    assert not (folder / "metadata.db").exists() and (meta / "metadata.db").exists()
    assert not list((folder / "tmp").glob("*.tmp"))  # uploads were moved to their final names
    assert run.output() == {"sum": 14, "rows": 2000}


def _orch(capsys, *args):
    """``orch ARGS`` in this process (the memory filesystem is per process): (exit code, stderr)."""
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    return exited.value.code, capsys.readouterr().err


def test_store_url_mistakes_are_one_clear_line(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ORCH_METADATA", raising=False)
    code, err = _orch(capsys, "--store", "memory://b/s", "runs")
    assert code == 2 and "pass --metadata PATH" in err and err.count("\n") == 1

    code, err = _orch(capsys, "--store", "memory://b/s", "--metadata", "s3://x/meta", "runs")
    assert code == 2 and "must stay on this machine" in err and err.count("\n") == 1

    code, err = _orch(capsys, "--store", "nosuchfs://b/s", "--metadata", str(tmp_path), "runs")
    assert code == 2 and "cannot open store nosuchfs://b/s" in err and err.count("\n") == 1

    with pytest.raises(UserError, match="lives inside this process"):
        _mixed(store="memory://b/s", metadata=str(tmp_path), executor="process")


def test_metadata_elsewhere_for_a_local_store(tmp_path, calls):
    store, meta = tmp_path / "objects-only", tmp_path / "meta" / "lineage.db"
    run = _mixed(store=str(store), metadata=str(meta))
    assert run.status == "succeeded", run.error
    assert meta.is_file() and not (store / "metadata.db").exists()
    listed = CliRunner().invoke(cli, ["--store", str(store), "--metadata", str(meta), "runs", "--json"])
    assert [r["run_id"] for r in json.loads(listed.output)] == [run.id]
    assert Path(store / "objects").is_dir()


def test_mistyped_store_url_is_refused_before_anything_reads_or_repairs(memory_url, tmp_path, capsys):
    meta = str(tmp_path / "meta")
    run = _mixed(store=memory_url, metadata=meta)
    assert run.status == "succeeded", run.error
    wrong = memory_url.replace("/store", "/stroe")
    for command in (["cache", "verify", "--repair"], ["doctor"], ["runs"]):
        code, err = _orch(capsys, "--store", wrong, "--metadata", meta, *command)
        assert code == 2 and err.count("\n") == 1, err
        assert f"no store at {wrong}" in err and "check the store URL" in err
    # Nothing was dropped: the real URL still has every record and object.
    code, _ = _orch(capsys, "--store", memory_url, "--metadata", meta, "cache", "verify")
    assert code == 0
    assert _mixed(store=memory_url, metadata=meta).steps["frame"].status == "cached"


def test_objects_are_staged_in_a_private_folder_of_this_user(memory_url, tmp_path, monkeypatch):
    """The system temp folder is shared: a planted staging folder (a symlink, another user's) is refused."""
    import os

    from orchestrator.errors import StoreError
    from orchestrator.remote_store import FsspecStore, staging_folder

    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    payload = b"x" * 10_000  # over the inline limit: staged in a file
    store = FsspecStore(memory_url)
    store.put(payload, "a" * 32)
    assert store.root == staging_folder() and (store.root.stat().st_mode & 0o777) == 0o700
    assert store.root.parent == tmp_path

    other = tmp_path / "someone-elses"
    other.mkdir(mode=0o777)
    store.root.rename(tmp_path / "moved")
    store.root.symlink_to(other)
    with pytest.raises(StoreError, match="is not a folder of yours"):
        FsspecStore(memory_url).put(payload, "b" * 32)
    assert list(other.iterdir()) == []
    if os.getuid() == 0:  # root can plant a folder of another user's, as that user would have
        store.root.unlink()
        store.root.mkdir()
        os.chown(store.root, 65534, 65534)
        with pytest.raises(StoreError, match="is not a folder of yours"):
            FsspecStore(memory_url).put(payload, "b" * 32)


def test_a_store_shared_by_two_metadata_databases_keeps_each_ones_objects(memory_url, tmp_path, capsys, calls):
    """Two users, each with their own --metadata, on one store: neither's gc or doctor takes the other's objects."""
    alice, bob = str(tmp_path / "alice"), str(tmp_path / "bob")
    shared = _mixed(store=memory_url, metadata=alice)            # bob runs the same: same digests
    only_alice = _mixed(store=memory_url, metadata=alice, n=3000)  # a table only alice records
    assert _mixed(store=memory_url, metadata=bob).status == "succeeded"
    frames = [shared.steps["frame"].outputs["out"], only_alice.steps["frame"].outputs["out"]]
    time.sleep(0.05)  # past gc's spare-what-is-being-written window

    code, err = _orch(capsys, "--store", memory_url, "--metadata", bob, "doctor")
    assert code == 0, err  # alice's table is hers, not an orphan of a crash to collect
    for gc in (["cache", "gc"], ["cache", "gc", "--keep-last", "0"]):
        code, err = _orch(capsys, "--store", memory_url, "--metadata", bob, *gc)
        assert code == 2 and err.count("\n") == 1, err
        assert "shared with 1 other metadata database" in err and "alice" in err and "--force" in err
    store = Context.open(memory_url, alice).store
    assert all(store.has(f) for f in frames)
    assert _mixed(store=memory_url, metadata=alice, n=3000).steps["frame"].status == "cached"

    # --force is the user's explicit word: then bob's gc does what it says.
    code, err = _orch(capsys, "--store", memory_url, "--metadata", bob, "cache", "gc", "--force")
    assert code == 0, err
    assert store.has(frames[0]) and not store.has(frames[1])


def test_a_metadata_user_of_a_local_store_sees_the_database_inside_it(tmp_path, capsys, calls):
    store = tmp_path / "store"
    assert _mixed(store=str(store), n=3000).status == "succeeded"  # the database inside the store folder
    assert _mixed(store=str(store), metadata=str(tmp_path / "meta")).status == "succeeded"
    time.sleep(0.05)
    code, err = _orch(capsys, "--store", str(store), "--metadata", str(tmp_path / "meta"), "cache", "gc")
    assert code == 2 and str(store / "metadata.db") in err, err
    # The owner of the folder sees the --metadata user, who registered in the store.
    code, err = _orch(capsys, "--store", str(store), "cache", "gc")
    assert code == 2 and str(tmp_path / "meta" / "metadata.db") in err, err


@pytest.mark.parametrize(("given", "fixed"), [("file:/mnt/shared/store", "file:///mnt/shared/store"),
                                               ("s3:/bucket/store", "s3://bucket/store")])
def test_a_url_missing_its_slashes_is_refused_not_made_a_local_folder(given, fixed, tmp_path, capsys,
                                                                      monkeypatch, calls):
    monkeypatch.chdir(tmp_path)
    code, err = _orch(capsys, "--store", given, "--metadata", str(tmp_path / "meta"), "runs")
    assert code == 2 and err.count("\n") == 1 and f"write {fixed}" in err, err
    code, err = _orch(capsys, "--store", str(tmp_path / "s"), "--metadata", given, "runs")
    assert code == 2 and err.count("\n") == 1 and "missing its '//'" in err, err
    with pytest.raises(UserError, match="missing its '//'"):
        _mixed(store=given, metadata=str(tmp_path / "meta"))
    assert list(tmp_path.iterdir()) == []  # no folder named 'file:' or 's3:'
    # A folder of that name is still reachable, explicitly; a drive letter is no URL.
    assert _mixed(store=f"./{given}", metadata=str(tmp_path / "meta")).status == "succeeded"
    assert _mixed(store="C:/stores/x", metadata=str(tmp_path / "meta2")).status == "succeeded"


def test_a_relative_file_url_names_one_folder_wherever_a_worker_runs(tmp_path, monkeypatch, calls):
    """Workers open the store by ``Context.location``: a relative URL must not depend on their folder."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    run = _mixed(store="file://rel", metadata="meta")
    assert run.status == "succeeded", run.error
    ctx = Context.open("file://rel", "meta")
    assert ctx.location == f"file://{tmp_path / 'a' / 'rel'}"
    frame = run.steps["frame"].outputs["out"]
    monkeypatch.chdir(tmp_path / "b")  # a worker started elsewhere
    assert Context.open(ctx.location, str(tmp_path / "a" / "meta")).store.has(frame)


def test_a_forgotten_store_with_metadata_elsewhere_is_refused_before_repair(tmp_path, capsys, monkeypatch, calls):
    """ORCH_METADATA set, --store forgotten (or mistyped): not every object 'missing', and nothing dropped."""
    store, meta = tmp_path / "objects-only", str(tmp_path / "meta")
    run = _mixed(store=str(store), metadata=meta)
    assert run.status == "succeeded", run.error
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ORCH_STORE", raising=False)
    monkeypatch.setenv("ORCH_METADATA", meta)
    for command in (["cache", "verify", "--repair"], ["doctor"]):
        code, err = _orch(capsys, *command)  # the store defaults to ./cache
        assert code == 2 and err.count("\n") == 1, err
        assert f"no store at {tmp_path / 'cache'}" in err and "--store or ORCH_STORE" in err
    assert not (tmp_path / "cache").exists()
    code, err = _orch(capsys, "--store", str(store), "cache", "verify")
    assert code == 0, err
    assert _mixed(store=str(store), metadata=meta).steps["frame"].status == "cached"


def test_a_memory_store_named_again_by_a_later_command_says_it_did_not_outlive_its_process(tmp_path, capsys):
    meta = str(tmp_path / "meta")
    assert _mixed(store="memory://gone/store", metadata=meta).status == "succeeded"
    fsspec.filesystem("memory").rm("/gone", recursive=True)  # what a new process sees
    code, err = _orch(capsys, "--store", "memory://gone/store", "--metadata", meta, "runs")
    assert code == 2 and err.count("\n") == 1 and "lives only as long as the process" in err, err


def test_doctor_names_where_dead_writers_left_temp_files(memory_url, tmp_path, monkeypatch, calls):
    """Not the metadata folder's tmp/, which holds none: the store's own, and a URL's remote tmp/."""
    from orchestrator.remote_store import _HOST

    store, meta = tmp_path / "objects-only", str(tmp_path / "meta")
    assert _mixed(store=str(store), metadata=meta).status == "succeeded"
    dead_pid = 2**22 + 12345  # above Linux's pid_max: no such process
    (store / "tmp" / f"{dead_pid}-{'a' * 16}.tmp").write_bytes(b"half")
    doctor = CliRunner().invoke(cli, ["--store", str(store), "--metadata", meta, "doctor", "--json"])
    found = {f["check"]: f for f in json.loads(doctor.output)["findings"]}
    assert doctor.exit_code == 1 and f"1 under {store / 'tmp'}" in found["temp files"]["problem"], found

    remote_meta = str(tmp_path / "remote-meta")
    monkeypatch.setenv("TMPDIR", str(tmp_path / "staging"))
    (tmp_path / "staging").mkdir()
    assert _mixed(store=memory_url, metadata=remote_meta).status == "succeeded"
    fsspec.filesystem("memory").pipe_file(
        f"/{memory_url.removeprefix('memory://')}/tmp/{_HOST}-{dead_pid}-{'b' * 16}.tmp", b"half")
    doctor = CliRunner().invoke(cli, ["--store", memory_url, "--metadata", remote_meta, "doctor", "--json"])
    found = {f["check"]: f for f in json.loads(doctor.output)["findings"]}
    assert doctor.exit_code == 1 and f"1 under {memory_url}/tmp" in found["temp files"]["problem"], found


def test_metadata_naming_a_file_that_is_no_database_is_a_mistake_not_damage(tmp_path, capsys):
    """`--metadata pipeline.py` must not be called a damaged database whose fix is to move the file aside."""
    pipeline_file = tmp_path / "pipeline.py"
    pipeline_file.write_text("from orchestrator import step\n")
    code, err = _orch(capsys, "--store", str(tmp_path / "s"), "--metadata", str(pipeline_file), "runs")
    assert code == 2 and err.count("\n") == 1, err
    assert "is a file that is not an SQLite database" in err and "damaged" not in err and "aside" not in err
    assert pipeline_file.read_text() == "from orchestrator import step\n"
    # A database file of another name is still one: --metadata names it.
    meta = tmp_path / "lineage.sqlite"
    assert _mixed(store=str(tmp_path / "s"), metadata=str(tmp_path / "m.db")).status == "succeeded"
    meta.write_bytes((tmp_path / "m.db").read_bytes())
    assert CliRunner().invoke(cli, ["--store", str(tmp_path / "s"), "--metadata", str(meta), "runs"]).exit_code == 0


def test_an_object_loads_from_a_url_store_without_being_held_twice(tmp_path, monkeypatch):
    """`bytearray(fs.cat_file(...))` held an object twice while loading it: a 1 GB frame took 2 GB.
    It is now read in slices into one buffer, and still loads writable and whole."""
    import tracemalloc

    import numpy as np

    from orchestrator import remote_store
    from orchestrator.hashing import hash_value
    from orchestrator.remote_store import FsspecStore

    monkeypatch.setattr(remote_store, "_READ_SLICE", 1 << 20, raising=False)
    store = FsspecStore(f"file://{tmp_path / 'store'}", fsync=False)
    array = np.arange(2_000_000, dtype=np.float64)  # 16 MB
    info = store.put(array, hash_value(array))
    tracemalloc.start()
    try:
        loaded = store.get(info)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert np.array_equal(loaded, array) and loaded.flags.writeable
    assert peak < 1.25 * array.nbytes, peak  # one buffer and a slice, not two copies


def test_a_url_store_object_shorter_than_its_size_is_damaged(tmp_path, monkeypatch):
    from orchestrator.object_format import Damaged
    from orchestrator.remote_store import FsspecStore

    store = FsspecStore(f"file://{tmp_path / 'store'}", fsync=False)
    info = store.put(list(range(5000)), "0" * 32)
    monkeypatch.setattr(store.fs, "size", lambda path: info.size + 10_000)  # the file shrank meanwhile
    with pytest.raises(Damaged, match="truncated"):
        store._read_object(info.digest)


def test_the_sweep_of_a_url_stores_tmp_removes_only_what_the_store_named_there(tmp_path):
    """Anything in `<url>/tmp` older than a day was removed, whatever its name: a user's file, the files of
    the folder a symbolic link `tmp` led to; and a folder there failed gc and every later write."""
    import os

    from orchestrator.remote_store import _HOST, open_store

    url = f"file://{tmp_path / 'store'}"
    store = open_store(url)
    store.put(b"x" * 10_000, "1" * 32)  # a write makes <url>/tmp
    tmp = tmp_path / "store" / "tmp"
    old = time.time() - 3 * 24 * 3600
    theirs, folder = tmp / "notes.txt", tmp / "somedir"
    theirs.write_text("mine")
    folder.mkdir()
    ours = tmp / f"other-host-77-{'c' * 16}.tmp"  # another host's writer, gone for days
    ours.write_bytes(b"half")
    dead_here = tmp / f"{_HOST}-{2**22 + 1}-{'d' * 16}.tmp"  # this host's, of a dead process
    dead_here.write_bytes(b"half")
    for path in (theirs, folder, ours):
        os.utime(path, (old, old))
    store.sweep_temp()
    assert theirs.exists() and folder.is_dir()
    assert not ours.exists() and not dead_here.exists()
    store.put(b"y" * 10_000, "2" * 32)  # a folder there breaks no write


def test_a_file_url_store_inside_a_folder_input_is_no_part_of_its_content(tmp_path, monkeypatch):
    """`--store file://data/ustore` inside the folder input `data`: each run's new objects changed the
    folder's digest, so its reader ran every time (`data: ustore/objects/... added`)."""
    from orchestrator import pipeline, step

    @step
    def count(folder: Path) -> int:
        return len(list(folder.glob("*.csv")))

    @step
    def blob(n: int) -> bytes:
        return b"x" * 10_000 * n  # an object file in the store

    @pipeline
    def inside(folder: Path = Path("data"), n: int = 1):
        return count(folder), blob(n)

    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.csv").write_text("x\n1\n")
    options = {"store": "file://data/ustore", "metadata": str(tmp_path / "meta")}
    assert inside.run(**options).status == "succeeded"
    assert inside.run(**options, n=2).steps["count"].status == "cached"  # a new object, the folder as it was
    assert inside.run(**options, n=3).steps["count"].status == "cached"


@pytest.mark.parametrize("given", ["file:///", "file://", "local://", "file:///.", "file:///tmp/.."])
def test_a_file_url_naming_no_folder_is_refused(given, tmp_path, capsys, monkeypatch, calls):
    """`file:///$DIR` with DIR unset wrote the store at the root of the file system (and every step failed),
    and `file://$DIR` made a new store in the current folder that ran everything again."""
    monkeypatch.chdir(tmp_path)
    code, err = _orch(capsys, "--store", given, "--metadata", str(tmp_path / "meta"), "run", str(PIPELINES / "parallel.py:mixed"))
    assert code == 2 and err.count("\n") == 1 and f"store {given} names no folder" in err, err
    with pytest.raises(UserError, match="names no folder"):
        _mixed(store=given, metadata=str(tmp_path / "meta"))
    assert list(tmp_path.iterdir()) == []


def test_a_teammates_first_command_on_a_shared_store_is_told_to_start_a_database_not_that_one_was_lost(
        tmp_path, capsys, calls):
    store = tmp_path / "store"
    assert _mixed(store=str(store)).status == "succeeded"  # the owner's database, inside the store folder
    code, err = _orch(capsys, "--store", str(store), "--metadata", str(tmp_path / "new"), "runs")
    assert code == 2 and err.count("\n") == 1, err
    assert f"no metadata database {tmp_path / 'new' / 'metadata.db'} yet; the store at {store} is shared with 1 " \
           f"other database(s) ({store / 'metadata.db'})" in err and "lost or moved" not in err, err

    # gc there names no databases/ file to delete: the store's own database has none.
    assert _mixed(store=str(store), metadata=str(tmp_path / "new")).status == "succeeded"
    code, err = _orch(capsys, "--store", str(store), "--metadata", str(tmp_path / "new"), "cache", "gc")
    assert code == 2 and "Pass --force to delete their objects anyway." in err and "databases/" not in err, err
