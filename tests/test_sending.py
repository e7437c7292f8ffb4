"""Steps whose code or arguments hold what will not pickle, on the executors that send tasks to other processes."""

from __future__ import annotations

import pickle
import sqlite3
import threading

import pytest

from orchestrator.executors.sending import dumps
from orchestrator.loader import load_pipeline

from .conftest import PIPELINES

SENDING = ["process", pytest.param("dask", marks=pytest.mark.slow)]


def _run(target, store, executor, **params):
    if executor == "dask":
        pytest.importorskip("distributed")
    workers = None if executor == "sequential" else 2
    return load_pipeline(str(PIPELINES / target)).run(store=str(store), executor=executor, workers=workers, **params)


def test_a_lock_travels_as_a_new_unlocked_lock():
    held = threading.Lock()
    held.acquire()
    rlock, event = threading.RLock(), threading.Event()
    event.set()
    lock2, rlock2, event2 = pickle.loads(dumps((held, rlock, event)))
    assert lock2.acquire(blocking=False)  # a new lock: the driver's being held does not travel
    assert rlock2.acquire(blocking=False)
    assert event2.is_set()


@pytest.mark.parametrize("executor", SENDING)
def test_a_step_using_a_module_level_lock_runs_on_workers(tmp_path, executor):
    run = _run("unpicklable.py:locked", tmp_path / "store", executor)
    assert run.status == "succeeded", run.error
    assert run.output() == 12


@pytest.mark.parametrize("executor", SENDING)
def test_an_argument_that_cannot_be_pickled_fails_its_step_naming_it(tmp_path, executor):
    run = _run("unpicklable.py:connected", tmp_path / "store", executor)
    assert run.status == "failed"
    step = run.steps["apply"]
    assert step.status == "failed"
    assert step.attempts == 1  # retries=2, but another attempt would pickle the same value
    assert "UnpicklableStepError: step 'apply' cannot be sent to" in run.error
    assert "its argument 'fn' (a function) cannot be pickled" in run.error
    assert "sqlite3.Connection" in run.error
    assert run.steps["plain"].status == "ran"  # the independent branch finishes


def test_orch_run_says_it_in_one_line_without_a_traceback(orch):
    result = orch("run", "unpicklable.py:connected", "--executor", "process", "--workers", "2")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "its argument 'fn' (a function) cannot be pickled" in errors[0]


def test_a_timed_step_whose_argument_cannot_be_pickled_fails_that_attempt(tmp_path):
    from orchestrator.executors.child import run_in_child
    from orchestrator.task import TaskSpec

    conn = sqlite3.connect(":memory:")
    spec = TaskSpec(node="fit", step_name="fit", fn=lambda db: db, arguments={"db": conn},
                    output_names=("out",), store_root=str(tmp_path), timeout=5.0)
    result = run_in_child(spec, 5.0)
    assert result.failure is not None and result.failure.type_name == "UnpicklableStepError"
    assert "step 'fit' cannot be sent to the child process that runs a timed step: its argument 'db' " \
           "(a Connection) cannot be pickled" in result.failure.message


@pytest.mark.parametrize("executor", ["sequential", "process"])
def test_a_mapped_step_using_a_module_level_connection_is_refused_in_one_line(tmp_path, executor):
    """Each item of the map said it again, and each its consumer's 'comes from step ..., which failed
    to build': twelve lines for six items, where one names the step and the value to fix."""
    from orchestrator.errors import PipelineDefinitionError

    with pytest.raises(PipelineDefinitionError) as refused:
        _run("unpicklable.py:looked_up", tmp_path / "store", executor)
    assert len(refused.value.problems) == 1
    assert refused.value.problems[0].startswith("step 'lookup' (")
    assert "module-level value 'CONN' used by 'lookup' cannot be hashed" in refused.value.problems[0]


def _draws() -> int:
    import numpy as np

    print(np.random.randint(0, 2**31, size=4).tolist())
    return 0


def test_each_timed_attempt_draws_other_numpy_random_numbers(tmp_path):
    """A timed attempt runs in a child forked from its worker, whose numpy random state never moves on (on
    Dask every draw happened in such children): each retry and each map item drew the same numbers, so a
    retry of a bad random start failed the same way, and a bootstrap map returned one resample."""
    np = pytest.importorskip("numpy")
    from orchestrator.executors.child import run_in_child
    from orchestrator.task import TaskSpec

    np.random.seed(7)  # the worker's state, as every child forked from it inherits it
    printed = []
    for attempt in (1, 2):
        spec = TaskSpec(node="draw", step_name="draw", fn=_draws, arguments={}, output_names=("out",),
                        store_root=str(tmp_path), timeout=30.0, attempt=attempt)
        result = run_in_child(spec, 30.0)
        assert result.failure is None, result.failure
        printed.append(result.stdout)
    assert printed[0] != printed[1], printed
