"""Reaching earlier runs from Python: ``orchestrator.get_run`` and ``orchestrator.load``.

A notebook asks for what a run made last week: the same ``Run`` that
``Pipeline.run`` returned (statuses, reasons, metrics, ``output()`` in the
shape the pipeline returned), or one step's value, loaded through the
checked path; and a mistake gets one line that says what to do.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time

import pandas as pd
import pytest

import orchestrator
from orchestrator import Metrics, UserError, pipeline, step
from orchestrator.context import Context
from orchestrator.maintenance import collect_garbage

from .conftest import PIPELINES, copy_store


@step
def frame(n: int) -> pd.DataFrame:
    return pd.DataFrame({"x": range(n), "y": [i * 2.5 for i in range(n)]})


@step(outputs=("train", "test"))
def split(df: pd.DataFrame):
    return df.iloc[::2], df.iloc[1::2]


@step
def fit(train: pd.DataFrame, alpha: float = 1.0) -> dict:
    return {"coef": float(train.y.sum()) * alpha}


@step
def evaluate(model: dict, test: pd.DataFrame) -> Metrics:
    return Metrics(rows=len(test), coef=model["coef"])


@step
def ids(n: int) -> list:
    return list(range(n))


@step
def halves(x: int) -> tuple[int, int]:
    return x // 2, x - x // 2


@pipeline
def training(n: int = 6, alpha: float = 1.0):
    train, test = split(frame(n))
    model = fit(train, alpha=alpha)
    return {"model": model, "split": (train, test), 2: [evaluate(model, test)], ("a", 1): halves.map(ids(n))}


@pipeline
def pair(n: int = 4):
    return split(frame(n))


class Box:
    """An object of this module's own class: pickled, so signed."""

    def __init__(self, size: int) -> None:
        self.size = size


@step
def box(size: int) -> Box:
    return Box(size)


@pipeline
def boxed(size: int = 3):
    return box(size)


@pipeline
def broken(n: int = 4):
    return fit(frame(n), alpha="x")  # str * float: fit fails, evaluate is skipped


def test_a_past_run_comes_back_as_the_run_object_with_the_same_output(store):
    live = training.run(store=str(store), alpha=2.0)
    again = orchestrator.get_run(store=store)  # latest

    assert (again.id, again.pipeline, again.status) == (live.id, "training", "succeeded")
    assert set(again.steps) == set(live.steps)
    for name, result in live.steps.items():
        rebuilt = again.steps[name]
        assert (rebuilt.status, rebuilt.reason, rebuilt.attempts, rebuilt.key, rebuilt.outputs) == \
            (result.status, result.reason, result.attempts, result.key, result.outputs), name
    assert again.metrics == live.metrics == {"rows": 3, "coef": 2 * (0 + 5 + 10)}
    expected, got = live.output(), again.output()
    assert list(got) == ["model", "split", 2, ("a", 1)]  # an int key stays an int, a tuple key a tuple
    assert got["model"] == expected["model"] == {"coef": 30.0}
    assert isinstance(got["split"], tuple) and len(got["split"]) == 2
    pd.testing.assert_frame_equal(got["split"][1], expected["split"][1])
    assert got[2] == expected[2] == [Metrics(rows=3, coef=30.0)]
    assert got[("a", 1)] == expected[("a", 1)] == [(0, 0), (0, 1), (1, 1), (1, 2), (2, 2), (2, 3)]
    assert orchestrator.get_run(live.id[:5], store=store).id == live.id


def test_a_tuple_result_stays_a_tuple(store):
    live = pair.run(store=str(store))
    got = orchestrator.get_run(live.id, store=str(store)).output()
    assert isinstance(got, tuple) and [len(f) for f in got] == [2, 2]
    assert isinstance(orchestrator.load("latest", store=store), tuple)


def test_load_a_step_its_named_output_and_a_digest(store):
    run = training.run(store=str(store))
    train, test = orchestrator.load(f"{run.id}:split", store=store)  # declared order, not alphabetical
    pd.testing.assert_frame_equal(train, frame(6).iloc[::2])
    pd.testing.assert_frame_equal(test, frame(6).iloc[1::2])
    pd.testing.assert_frame_equal(orchestrator.load(f"{run.id[:6]}:split.test", store=store), test)
    assert orchestrator.load(f"{run.id}:fit", store=store) == {"coef": 15.0}
    digest = run.steps["fit"].outputs["out"]
    assert orchestrator.load(digest[:10], store=store) == {"coef": 15.0}


def test_a_cached_step_loads_from_the_run_it_reused(store):
    first = training.run(store=str(store))
    second = training.run(store=str(store), alpha=3.0)
    assert second.steps["split"].status == "cached" and second.steps["fit"].status == "ran"
    rebuilt = orchestrator.get_run(second.id, store=store)
    assert rebuilt.steps["split"].outputs == first.steps["split"].outputs
    # The same Run as the live one: a cached step took no time (it read None from the database).
    assert rebuilt.steps["split"].duration == second.steps["split"].duration == 0.0
    pd.testing.assert_frame_equal(orchestrator.load(f"{second.id}:split.train", store=store), frame(6).iloc[::2])
    assert rebuilt.output()["model"] == {"coef": 45.0}


def test_a_step_result_loads_its_own_output_on_a_live_and_a_rebuilt_run(store):
    first = training.run(store=str(store))
    second = training.run(store=str(store), alpha=3.0)
    for run in (second, orchestrator.get_run(second.id, store=store)):
        train, test = run.steps["split"].output()  # cached in this run: the output of the run it reused
        pd.testing.assert_frame_equal(test, frame(6).iloc[1::2])
        assert run.steps["fit"].output() == {"coef": 45.0}
        assert run.steps["halves"].output() == (0, 0)  # the first item of the map, a step of its own
    assert first.steps["fit"].output() == {"coef": 15.0}
    failed = broken.run(store=str(store))
    for run in (failed, orchestrator.get_run(failed.id, store=store)):
        with pytest.raises(UserError, match=rf"^step 'fit' of run {failed.id} failed \(TypeError.*\): it has no "
                                             "output.$"):
            run.steps["fit"].output()


def test_a_run_from_another_process(orch, store):
    assert orch("run", "diamond.py", "-p", "n=4").returncode == 0
    run = orchestrator.get_run("latest", store=store)
    assert run.pipeline == "diamond" and run.status == "succeeded"
    assert run.output() == 12 / 4
    assert orchestrator.load("latest:prep", store=store) == [0, 2, 4, 6]


def test_the_store_is_found_as_the_cli_finds_it(store, tmp_path, monkeypatch):
    pair.run(store=str(store))
    monkeypatch.setenv("ORCH_STORE", str(store))
    assert orchestrator.get_run().pipeline == "pair"
    monkeypatch.delenv("ORCH_STORE")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert orchestrator.get_run(store="~/store").pipeline == "pair"
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=r"^no store at .*cache \(no metadata.db\) in the current folder .*: run a "
                                        r"pipeline first with pipeline.run\(\), or pass store=DIR$"):
        orchestrator.get_run()
    with pytest.raises(UserError, match=r"is a URL.*: pass metadata=PATH \(a local folder\) or set ORCH_METADATA.$"):
        orchestrator.load("latest:x", store="file:///nowhere")
    assert not (tmp_path / "cache").exists()  # only read: nothing is created


def test_unknown_or_ambiguous_refs_are_one_line_each(store):
    run = training.run(store=str(store))
    cases = {
        "nope": "'nope' is not a run id, RUN:STEP or digest in this store",
        f"{run.id}:fitt": f"run {run.id} has no step 'fitt'. Did you mean 'fit'?",
        f"{run.id}:split.valid": "has no output 'valid'; its outputs are train, test",
        "fffffffff": "no run id or digest in this store begins with 'fffffffff'",
        "": "an empty REF is not valid",
        "churn@production": "load it with orchestrator.registry.load_model",
        "zz:fit": "no run 'zz' in this store",
    }
    for ref, message in cases.items():
        with pytest.raises(UserError) as caught:
            orchestrator.load(ref, store=store)
        assert message in str(caught.value) and "\n" not in str(caught.value), ref
    with pytest.raises(UserError, match="no run 'abc' in this store. List runs with `orch runs`"):
        orchestrator.get_run("abc", store=store)
    with pytest.raises(UserError, match="a REF is text"):
        orchestrator.load(3, store=store)  # type: ignore[arg-type]


def test_an_unknown_ref_has_a_short_traceback(store):
    """The notebook's frame and the one that re-raises, not the lineage queries below them."""
    import traceback

    import orchestrator.errors

    training.run(store=str(store))
    for call in (lambda: orchestrator.load("latest:fitt", store=store),
                 lambda: orchestrator.get_run("abc", store=store)):
        with pytest.raises(UserError) as caught:
            call()
        files = [frame.filename for frame in traceback.extract_tb(caught.value.__traceback__)]
        assert files[1:] == [__file__, orchestrator.errors.__file__]  # [0]: the call just above


def test_a_failed_or_skipped_step_has_no_output(store):
    run = broken.run(store=str(store))
    assert run.status == "failed"
    rebuilt = orchestrator.get_run(run.id, store=store)
    assert rebuilt.status == "failed" and rebuilt.steps["fit"].status == "failed"
    assert "TypeError" in rebuilt.steps["fit"].error and rebuilt.error == run.error
    for failed in (run, rebuilt):  # the reason, in the line a test report shows
        with pytest.raises(UserError) as raised:
            failed.output()
        assert str(raised.value) == f"run {run.id} failed, so it has no output: {run.error}"
        assert "step 'fit' failed after 1 attempt: TypeError" in str(raised.value)
    with pytest.raises(UserError, match=rf"step 'fit' of run {run.id} failed \(TypeError.*: it has no output. "
                                         rf"See `orch logs {run.id}:fit`"):
        orchestrator.load(f"{run.id}:fit", store=store)
    pd.testing.assert_frame_equal(orchestrator.load(f"{run.id}:frame", store=store), frame(4))


def test_an_artifact_removed_by_gc_says_so(store):
    from orchestrator.loader import load_pipeline

    gc_runs = load_pipeline(str(PIPELINES / "gc_runs.py"))
    old = gc_runs.run(store=str(store), n=1)
    gc_runs.run(store=str(store), n=2)
    removed = old.steps["make"].outputs["out"]
    # gc spares objects written in its last moments (a run may be writing them): both runs take
    # a few ms here, so the old object is dated back as an older run's would be.
    past = time.time() - 3600
    os.utime(store / "objects" / removed[:2] / removed, (past, past))
    assert collect_garbage(Context.open(store), keep_last=1).removed == [removed]
    fix = "is no longer in the store: `orch cache gc` or `orch cache verify --repair` removed it, or its " \
          "file was deleted. Run the pipeline again"
    # `orch run FILE` alone runs the defaults (n=1 here by chance): the run's own parameters make it again.
    remake = f" (orch run {PIPELINES / 'gc_runs.py'} --params-from {old.id}) to make it again."
    for ref in (f"{old.id}:make", removed[:12]):
        with pytest.raises(UserError, match=fix) as raised:
            orchestrator.load(ref, store=store)
        assert str(raised.value).endswith(remake), raised.value
    assert orchestrator.get_run(old.id, store=store).output() == 5000  # `check` kept its small result


def test_an_object_deleted_outside_orch_is_not_blamed_on_gc(store):
    """A teammate's `rm -r objects` (or a restore without them) leaves the rows: the line names that cause too."""
    from orchestrator.loader import load_pipeline

    run = load_pipeline(str(PIPELINES / "gc_runs.py")).run(store=str(store), n=1)
    shutil.rmtree(store / "objects")
    with pytest.raises(UserError, match=f"output 'out' of step 'make' of run {run.id} .* is no longer in the "
                                        "store: .*, or its file was deleted. Run the pipeline again"):
        orchestrator.load(f"{run.id}:make", store=store)


def test_a_damaged_object_is_refused(store):
    from orchestrator.loader import load_pipeline

    run = load_pipeline(str(PIPELINES / "gc_runs.py")).run(store=str(store), n=1)
    digest = run.steps["make"].outputs["out"]
    path = store / "objects" / digest[:2] / digest
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.chmod(0o644)
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match=f"output 'out' of step 'make' of run {run.id} .*cannot be loaded: .*"
                                        "orch cache verify --repair"):
        orchestrator.load(f"{run.id}:make", store=store)


def test_an_artifact_signed_with_another_key_names_the_key_not_a_repair(store, monkeypatch):
    run = boxed.run(store=str(store))
    monkeypatch.setenv("ORCH_SIGNING_KEY", "a-teammates-key")
    with pytest.raises(UserError) as caught:
        orchestrator.load(f"{run.id}:box", store=store)
    message = str(caught.value)
    assert message.startswith(f"output 'out' of step 'box' of run {run.id} (artifact ")
    assert "is not trusted: its signature does not match" in message and "signs with the key of " \
        "$ORCH_SIGNING_KEY: if the run was made with another" in message and "verify --repair" not in message
    monkeypatch.delenv("ORCH_SIGNING_KEY")
    assert orchestrator.load(f"{run.id}:box", store=store).size == 3


def test_a_run_recorded_before_results_kept_their_shape(store, tmp_path):
    run = training.run(store=str(store))
    older = copy_store(store, tmp_path / "older")
    with sqlite3.connect(older / "metadata.db") as conn:
        conn.execute("UPDATE runs SET result=NULL")
    conn.close()
    rebuilt = orchestrator.get_run(run.id, store=older)
    with pytest.raises(UserError, match="recorded by an older orchestrator.*orchestrator.load"):
        rebuilt.output()  # its map's list has a digest of its own: it cannot be rebuilt
    assert orchestrator.load(f"{run.id}:fit", store=older) == {"coef": 15.0}
    simple = pair.run(store=str(older))
    with sqlite3.connect(older / "metadata.db") as conn:
        conn.execute("UPDATE runs SET result=NULL")
    conn.close()
    assert [len(f) for f in orchestrator.get_run(simple.id, store=older).output()] == [2, 2]  # a list now


def test_a_schema_3_store_is_migrated_and_its_runs_still_load(store):
    from orchestrator.lineage_schema import SCHEMA_VERSION

    run = pair.run(store=str(store))
    with sqlite3.connect(store / "metadata.db") as conn:  # what version 3 wrote
        conn.executescript("ALTER TABLE runs DROP COLUMN result; UPDATE meta SET value='3' WHERE key='schema_version';")
    conn.close()
    assert [len(f) for f in orchestrator.get_run(run.id, store=store).output()] == [2, 2]
    again = pair.run(store=str(store))
    assert again.steps["split"].status == "cached" and isinstance(orchestrator.load("latest", store=store), tuple)
    with sqlite3.connect(store / "metadata.db") as conn:
        assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    conn.close()


def test_an_object_of_a_pipeline_files_class_names_the_folder_to_import(store, tmp_path, monkeypatch):
    import subprocess
    import sys

    from .conftest import ROOT

    project = tmp_path / "proj"
    project.mkdir()
    (project / "client_models.py").write_text(
        "from dataclasses import dataclass\n"
        "from orchestrator import pipeline, step\n\n\n"
        "@dataclass\nclass Model:\n    w: float\n\n\n"
        "@step\ndef fit(w: float = 2.0) -> Model:\n    return Model(w)\n\n\n"
        "@pipeline\ndef models(w: float = 2.0):\n    return fit(w)\n")
    done = subprocess.run([sys.executable, "-m", "orchestrator", "--store", str(store), "run", "client_models.py"],
                          cwd=project, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    fix = rf"in the module 'client_models' of the pipeline's folder {project}, which is not importable here. " \
          rf"Put that folder on the import path first \(sys.path.insert\(0, '{project}'\)"
    run = orchestrator.get_run(store=store)
    digest = run.steps["fit"].outputs["out"]
    for attempt in (lambda: orchestrator.load("latest:fit", store=store), run.output,
                    lambda: orchestrator.load(digest[:10], store=store)):
        with pytest.raises(UserError, match=fix):
            attempt()
    monkeypatch.syspath_prepend(str(project))
    assert orchestrator.load("latest:fit", store=store).w == 2.0


@pytest.mark.parametrize("value", ["nope", '{"value": [1]}', '{"value": {"tuple": [{"step": 1}]}}', '{"x": null}'])
def test_a_damaged_result_record_is_found_by_doctor_and_named_by_get_run(store, value):
    run = pair.run(store=str(store))
    with sqlite3.connect(store / "metadata.db") as conn:
        conn.execute("UPDATE runs SET result=?", (value,))
    conn.close()
    damaged = Context.open(store).lineage.damaged_values([("runs", "result")])
    assert [(v.table, v.column, v.key) for v in damaged] == [("runs", "result", run.id)]
    with pytest.raises(orchestrator.OrchestratorError, match=f"damaged value in runs.result of run {run.id}"):
        orchestrator.get_run(run.id, store=store)  # `orch doctor` names the fix: set it to NULL
    with sqlite3.connect(store / "metadata.db") as conn:
        conn.execute("UPDATE runs SET result=NULL")
    conn.close()
    assert [len(f) for f in orchestrator.get_run(run.id, store=store).output()] == [2, 2]


def test_store_problems_met_from_python_name_the_options_as_python_spells_them(store, tmp_path):
    """A notebook told `pass --store DIR` or `pass --force` has to translate it back to `store=`."""
    from orchestrator.lineage_schema import database_error
    from orchestrator.spelling import PYTHON

    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(UserError, match=r"cannot create the store folder .*Pass store=DIR \(or metadata=PATH\) "):
        pair.run(store=str(afile / "sub"))
    (tmp_path / "folder" / "metadata.db").mkdir(parents=True)
    with pytest.raises(UserError, match=r"is a folder, not a file. Move it aside, or pass metadata=PATH "):
        pair.run(store=str(tmp_path / "folder"))
    access = database_error(tmp_path / "metadata.db", sqlite3.OperationalError("unable to open database file"),
                            PYTHON)
    assert str(access).endswith("pass store=COPY.")

    pair.run(store=str(store))
    with sqlite3.connect(store / "metadata.db") as conn:
        conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    conn.close()
    with pytest.raises(orchestrator.OrchestratorError, match=r"or use another store=DIR with this version"):
        orchestrator.get_run(store=str(store))

    emptied = tmp_path / "emptied"
    pair.run(store=str(emptied), n=20_000)  # a frame too large to be kept inside the database
    assert next(Context.open(emptied).store.iter_objects(), None), "the test needs an object file"
    for database in emptied.glob("metadata.db*"):
        database.unlink()
    with pytest.raises(UserError, match=r"or pass force=True to delete them"):
        collect_garbage(Context.open(emptied, spelling=PYTHON), keep_last=1)


def test_a_value_stored_under_another_release_of_a_package_names_that_release(store, monkeypatch):
    """A pickle made under numpy 2 names numpy._core, which numpy 1.26 lacks: "install numpy" is no fix."""
    import sys
    import types

    import numpy as np

    moved = types.ModuleType("numpy._moved_in_another_release")
    exec("class Box:\n    def __init__(self, v):\n        self.v = v\n", moved.__dict__)  # noqa: S102
    moved.Box.__module__ = moved.__name__
    monkeypatch.setitem(sys.modules, moved.__name__, moved)

    @step
    def boxed() -> object:
        return moved.Box(3)

    @pipeline
    def boxes():
        return boxed()

    run = boxes.run(store=str(store))
    monkeypatch.delitem(sys.modules, moved.__name__)  # this process has the other release
    with pytest.raises(UserError, match=rf"the module 'numpy._moved_in_another_release', which numpy "
                                        rf"{np.__version__} here does not have: it was stored under another "
                                        r"version of numpy. Install that version"):
        orchestrator.load(f"{run.id}:boxed", store=store)
    with sqlite3.connect(store / "metadata.db") as conn:  # as a run on another machine records it
        conn.execute("UPDATE runs SET packages=?", ('{"numpy": "9.1.0"}',))
    conn.close()
    with pytest.raises(UserError, match=rf"it was stored under numpy 9.1.0, and this process has numpy "
                                        rf"{np.__version__}, .*pip install 'numpy==9.1.0'"):
        orchestrator.load(f"{run.id}:boxed", store=store)


def test_an_artifact_not_trusted_where_there_is_no_key_says_so_not_names_a_key_file(store, monkeypatch, tmp_path):
    """"no signing key here (no ..., no PATH) ... This process signs with the key of PATH": a file that did not exist."""
    run = boxed.run(store=str(store))
    monkeypatch.delenv("ORCH_SIGNING_KEY", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "no-config"))
    with pytest.raises(UserError) as caught:
        orchestrator.load(f"{run.id}:box", store=store)
    message = str(caught.value)
    assert "This process has no signing key (no $ORCH_SIGNING_KEY, no " in message, message
    assert "signs with the key of" not in message
    assert not (tmp_path / "no-config").exists()  # reading creates no key
