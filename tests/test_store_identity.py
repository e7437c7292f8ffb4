"""A worker writes only into the run's own store: the folder at the store's path must carry its id."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator import store_identity
from orchestrator.loader import load_pipeline
from orchestrator.remote_store import open_store
from orchestrator.store import ArtifactStore
from orchestrator.task import TaskSpec, run_task

BIG = '''
from orchestrator import pipeline, step


@step
def make(n: int = 20000) -> bytes:
    return b"x" * n  # larger than an inline payload: it becomes an object file


@step
def size(data: bytes) -> int:
    return len(data)


@pipeline
def big(n: int = 20000):
    return size(make(n))
'''


def _object_files(store: Path) -> list[Path]:
    objects = store / "objects"
    return [p for p in objects.rglob("*") if p.is_file()] if objects.exists() else []


def _make(n: int) -> bytes:
    return b"y" * n


def test_a_process_worker_whose_folder_is_another_store_fails_the_step_and_writes_nothing(tmp_path, monkeypatch):
    """Each node of a cluster may have its own `/data/store`: the worker's is not the driver's.

    Simulated by giving the folder another id once the driver has read the run's: what a
    worker on another machine finds at the same path. Before, the worker wrote the output
    there and the run went on as if the driver could read it.
    """
    (tmp_path / "big.py").write_text(BIG)
    store = tmp_path / "store"
    real = store_identity.ensure_id

    def driver_then_other_folder(artifacts: ArtifactStore) -> str | None:
        run_id = real(artifacts)
        (artifacts.root / store_identity.MARKER).write_text("0123456789abcdef\n")  # the other machine's
        return run_id

    monkeypatch.setattr(store_identity, "ensure_id", driver_then_other_folder)
    run = load_pipeline(str(tmp_path / "big.py")).run(store=str(store), executor="process", workers=1)
    assert run.status == "failed"
    error = run.steps["make"].error
    assert "StoreMismatchError" in error and "\n" not in error.strip()
    assert f"the folder {store} on " in error
    assert "is another store than the run's (id 0123456789abcdef, expected " in error
    assert "mount the run's store at that path, or use a shared URL store" in error
    assert _object_files(store) == []


def test_a_worker_whose_folder_has_no_store_id_fails_the_step(tmp_path):
    store = tmp_path / "store"
    store.mkdir()  # exists on this machine, but is not the run's store
    spec = TaskSpec(node="make", step_name="make", fn=_make, arguments={"n": 20000},
                    output_names=("out",), store_root=str(store), store_id="feedfacefeedface")
    result = run_task(spec)
    assert result.failure is not None and result.failure.type_name == "StoreMismatchError"
    assert "(it has no store id, expected feedfacefeedface)" in result.failure.message
    assert _object_files(store) == []
    # Once the right store is there (its marker holds the run's id), the same worker writes to it.
    (store / store_identity.MARKER).write_text("feedfacefeedface\n")
    again = run_task(spec)
    assert again.failure is None and len(_object_files(store)) == 1


def test_a_url_store_is_checked_too(tmp_path):
    """`file:///data/store` names a folder on each machine, exactly like the path."""
    pytest.importorskip("fsspec")
    store = tmp_path / "urlstore"
    url = f"file://{store}"
    run_id = store_identity.ensure_id(open_store(url))
    assert run_id and (store / store_identity.MARKER).read_text().strip() == run_id
    spec = TaskSpec(node="make", step_name="make", fn=_make, arguments={"n": 20000},
                    output_names=("out",), store_root=url, store_id="not-" + run_id)
    result = run_task(spec)
    assert result.failure is not None and result.failure.type_name == "StoreMismatchError"
    assert _object_files(store) == []


def test_a_store_made_before_markers_gets_one_on_its_next_run_and_keeps_it(tmp_path):
    (tmp_path / "big.py").write_text(BIG)
    store = tmp_path / "store"
    pipe = load_pipeline(str(tmp_path / "big.py"))
    assert pipe.run(store=str(store)).status == "succeeded"
    marker = store / store_identity.MARKER
    marker.unlink()  # a store written by an orchestrator without markers
    assert pipe.run(store=str(store), executor="process", workers=1, n=10).status == "succeeded"
    first = marker.read_text()
    assert len(first.strip()) == 32
    assert pipe.run(store=str(store), n=11).status == "succeeded"
    assert marker.read_text() == first


def test_an_existing_marker_is_never_replaced(tmp_path):
    """Two runs starting on a new store at once must agree on one id."""
    artifacts = ArtifactStore(tmp_path / "store")
    first = store_identity.ensure_id(artifacts)
    store_identity._write(artifacts, "a-second-run")
    assert store_identity.read_id(artifacts) == first
    assert [p.name for p in (tmp_path / "store").iterdir()] == [store_identity.MARKER]  # no temp file left


def test_a_marker_temp_file_of_a_killed_run_is_removed_when_the_id_is_next_written(tmp_path):
    """The first run on a store, killed between writing the marker's temp file and linking it, left
    `.store-id.PID-XXXX.tmp` in the store's root for ever; a live writer's is left alone."""
    store = tmp_path / "store"
    store.mkdir()
    dead = store / f".{store_identity.MARKER}.{2**22 + 12345}-0a1b2c3d.tmp"  # above Linux's pid_max
    live = store / f".{store_identity.MARKER}.{os.getpid()}-4e5f6a7b.tmp"
    other = store / f".{store_identity.MARKER}.notes.tmp"  # not named as the marker's temp files are
    for path in (dead, live, other):
        path.write_bytes(b"0123\n")
    assert store_identity.ensure_id(ArtifactStore(store)) is not None
    assert sorted(p.name for p in store.iterdir()) == sorted([store_identity.MARKER, live.name, other.name])


def test_a_store_that_cannot_be_written_gets_no_id_and_its_run_is_not_checked(tmp_path, monkeypatch):
    (tmp_path / "big.py").write_text(BIG)
    store = tmp_path / "store"

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(store_identity, "_write", read_only)
    assert store_identity.ensure_id(ArtifactStore(store)) is None
    run = load_pipeline(str(tmp_path / "big.py")).run(store=str(store))
    assert run.status == "succeeded" and not (store / store_identity.MARKER).exists()


def test_read_commands_on_a_store_without_marker_work_and_write_none(tmp_path):
    """A store read only (another user's, a read-only mount) is read as before, and left as it is."""
    (tmp_path / "big.py").write_text(BIG)
    store = tmp_path / "store"
    run = load_pipeline(str(tmp_path / "big.py")).run(store=str(store))
    (store / store_identity.MARKER).unlink()
    for command in (["runs"], ["show", run.id], ["lineage", f"{run.id}:size"]):
        done = subprocess.run([sys.executable, "-m", "orchestrator", "--store", str(store), *command],
                              cwd=tmp_path, capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
        assert done.returncode == 0, done.stderr
    assert not (store / store_identity.MARKER).exists()


@pytest.fixture(autouse=True)
def _forget_known_stores():
    """Each test starts as a fresh worker process would: no store checked yet."""
    store_identity._known.clear()
    yield
    store_identity._known.clear()
