"""Every executor gives the same keys, digests and statuses; parallel ones really overlap."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from orchestrator import pipeline, step
from orchestrator.context import Context
from orchestrator.loader import load_pipeline
from orchestrator.report import RunObserver

from .conftest import PIPELINES, edit_file, wait_for


class _Warnings(RunObserver):
    """Keeps the warnings a run says, and signals the first one."""

    def __init__(self):
        self.said, self.first = [], threading.Event()

    def warning(self, message):
        self.said.append(message)
        self.first.set()

EXECUTORS = ["sequential", "process", "dask"]


def _run(target, store, executor, **params):
    return load_pipeline(str(PIPELINES / target)).run(store=str(store), executor=executor, workers=None if executor == "sequential" else 2, **params)


@pytest.fixture(scope="module")
def runs_by_executor(tmp_path_factory):
    """The `mixed` pipeline run once per executor, each on a fresh store."""
    pytest.importorskip("distributed")
    out = {}
    for executor in EXECUTORS:
        store = tmp_path_factory.mktemp(executor)
        out[executor] = (_run("parallel.py:mixed", store, executor), store)
    return out


@pytest.mark.slow
def test_same_keys_digests_and_outputs_on_every_executor(runs_by_executor):
    def signature(run):
        return {n: (s.status, s.key, tuple(sorted(s.outputs.items()))) for n, s in run.steps.items()}

    reference = signature(runs_by_executor["sequential"][0])
    assert list(reference) == ["square", "square_2", "square_3", "frame", "combine"]
    for executor in EXECUTORS[1:]:
        run = runs_by_executor[executor][0]
        assert run.status == "succeeded", run.error
        assert signature(run) == reference, executor
        assert run.output() == {"sum": 14, "rows": 2000}


@pytest.mark.slow
def test_lineage_is_recorded_the_same_way_on_every_executor(runs_by_executor):
    from orchestrator.lineage_db import Lineage

    def edges(run, store):
        return [(s["node"], s["status"], [o["hash"] for o in s["outputs"]], [i["hash"] for i in s["inputs"]])
                for s in Lineage(store / "metadata.db").steps(run.id)]

    reference = edges(*runs_by_executor["sequential"])
    for executor in EXECUTORS[1:]:
        assert edges(*runs_by_executor[executor]) == reference


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["process", "dask"])
def test_star_args_and_positional_only_steps_get_their_arguments_in_workers(tmp_path, calls, executor):
    """The task pickled to a worker says how to call a step whose arguments are not all keywords."""
    from .test_runner import SIGNATURE_OUTPUTS

    if executor == "dask":
        pytest.importorskip("distributed")
    reference = _run("signatures.py:signatures", tmp_path / "sequential", "sequential")
    run = _run("signatures.py:signatures", tmp_path / executor, executor)
    assert run.status == "succeeded", run.error
    assert run.output() == SIGNATURE_OUTPUTS
    assert {n: s.key for n, s in run.steps.items()} == {n: s.key for n, s in reference.steps.items()}


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["process", "dask"])
def test_independent_steps_overlap(store, calls, executor):
    pytest.importorskip("distributed")
    run = _run("parallel.py:parallel", store, executor, n=2, seconds=1.0)
    assert run.status == "succeeded", run.error
    from orchestrator.context import Context

    ctx = Context.open(store)
    first, second = (ctx.load(run.steps[name].outputs["out"]) for name in ("branch", "branch_2"))
    assert first["pid"] != second["pid"]
    assert first["started"] < second["ended"] and second["started"] < first["ended"]


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["process", "dask"])
def test_worker_death_is_a_failed_attempt_then_retried(store, calls, executor):
    pytest.importorskip("distributed")
    run = _run("parallel.py:dying", store, executor)
    assert run.status == "succeeded", run.error
    assert run.steps["dies_once"].attempts == 2
    assert run.output() == 42
    from orchestrator.lineage_db import Lineage

    attempts = Lineage(store / "metadata.db").attempts(run.id, "dies_once")
    assert attempts[0]["status"] == "failed" and "WorkerDiedError" in attempts[0]["error"]
    # One short line on both: no Dask task key, advice or link.
    assert "running step 'dies_once' died" in attempts[0]["error"]
    assert "before reporting a result" in attempts[0]["error"]
    assert "orch-" not in attempts[0]["error"] and "http" not in attempts[0]["error"]


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["process", "dask"])
def test_a_dying_worker_fails_only_the_step_that_killed_it(store, calls, executor):
    """Steps queued behind it on the same worker (Dask keeps more submitted than it has threads) run as usual."""
    pytest.importorskip("distributed")
    run = load_pipeline(str(PIPELINES / "parallel.py:neighbours")).run(store=str(store), executor=executor,
                                                                       workers=1)
    assert run.steps["kills_its_worker"].status == "failed"
    assert "WorkerDiedError" in run.steps["kills_its_worker"].error
    healthy = {n: (s.status, s.attempts) for n, s in run.steps.items() if n.startswith("branch")}
    assert healthy == {"branch": ("ran", 1), "branch_2": ("ran", 1), "branch_3": ("ran", 1)}
    assert calls.counts() == {"kills_its_worker": 1, "branch0": 1, "branch1": 1, "branch2": 1}


def test_a_step_that_finished_before_its_dask_worker_died_is_not_charged_with_its_death(store, calls):
    """The next step killed the worker before it had reported the first finished: Dask failed both
    (`KilledWorker`), and the finished step was charged with the other's `exit code 3`."""
    pytest.importorskip("distributed")
    run = load_pipeline(str(PIPELINES / "parallel.py:finished_unreported")).run(store=str(store), executor="dask",
                                                                                workers=1)
    finished, killer = run.steps["finishes_unreported"], run.steps["kills_it_at_once"]
    assert (finished.status, finished.attempts, finished.error) == ("ran", 1, None)
    ctx = Context.open(store)
    try:
        assert ctx.load(finished.outputs["out"]) == 1  # what it returned, stored
    finally:
        ctx.lineage.close()
    assert killer.status == "failed" and "died (exit code 3)" in killer.error
    assert calls.counts() == {"finishes_unreported1": 1, "kills_it_at_once": 1}


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["process", "dask"])
def test_an_instance_a_worker_stored_loads_as_the_users_own_class(orch, executor):
    """Not as a copy of the class rebuilt from the pickle: `isinstance` and dataclass `==` hold in a later run."""
    if executor == "dask":
        pytest.importorskip("distributed")
    # A file name of its own: the module of another test's own_classes.py may be loaded in this process.
    file = f"own_classes_{executor}.py"
    (orch.cwd / file).write_text((orch.cwd / "own_classes.py").read_text())
    first = orch("run", file, "--executor", executor, "--workers", "1")  # another process
    assert first.returncode == 0, first.stderr
    pipeline = load_pipeline(str(orch.cwd / file))
    here = pipeline.run(store=str(orch.store), tag="b")  # `make` cached: its stored output is loaded here
    assert here.steps["make"].status == "cached"
    assert here.output() == {"isinstance": True, "equal": True, "tag": "b"}
    in_worker = pipeline.run(store=str(orch.store), executor=executor, workers=None if executor == "sequential" else 1, tag="c")
    assert in_worker.steps["make"].status == "cached"
    assert in_worker.output() == {"isinstance": True, "equal": True, "tag": "c"}


@pytest.mark.parametrize("executor", ["sequential", "process", pytest.param("dask", marks=pytest.mark.slow)])
def test_a_step_logs_at_the_level_the_pipeline_file_configured_on_every_executor(orch, executor):
    """`logging.basicConfig(level=DEBUG)` runs in the driver only; workers capture DEBUG records all the same."""
    if executor == "dask":
        pytest.importorskip("distributed")
    result = orch("run", "debug_logs.py", "--executor", executor)
    assert result.returncode == 0, result.stderr
    logs = orch("logs", "latest:diagnose").stdout
    assert "DEBUG debug_logs: checking 1 in detail" in logs and "INFO debug_logs: checked 1" in logs


@pytest.mark.parametrize("executor", ["sequential", "process", pytest.param("dask", marks=pytest.mark.slow)])
def test_a_materializer_the_pipeline_file_registers_is_used_on_every_executor(orch, executor):
    """`register_materializer(...)` at the top of the file runs in the driver only; workers store and
    load with it all the same (they stored such values with pickle, and could not load them)."""
    if executor == "dask":
        pytest.importorskip("distributed")
    first = orch("run", "own_materializer.py", "--executor", executor, "--workers", "1")
    assert first.returncode == 0, first.stderr
    listed = json.loads(orch("cache", "ls", "--json").stdout)
    assert sorted(entry["materializer"] for entry in listed) == ["json", "test.vocab"]
    again = orch("run", "own_materializer.py", "--executor", executor, "--workers", "1", "--rerun", "count")
    assert again.returncode == 0, again.stderr  # a worker loads the input in that format


@pytest.mark.parametrize("executor", ["sequential", "process"])
def test_an_input_no_materializer_can_load_fails_its_step_not_the_worker(orch, project, executor):
    """Loading an input whose materializer is not registered failed outside the step: a pool
    worker died of it (`WorkerDiedError ... exit code -9`), and the reason was lost."""
    assert orch("run", "own_materializer.py").returncode == 0
    edit_file(project, "own_materializer.py", "register_materializer(VocabMaterializer())", "")
    result = orch("run", "own_materializer.py", "--executor", executor, "--rerun", "count")
    assert result.returncode == 1, result.stderr
    assert "step 'count' failed after 1 attempt: StoreError: no materializer named 'test.vocab'" in result.stderr
    assert "WorkerDied" not in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("executor", ["sequential", "process", pytest.param("dask", marks=pytest.mark.slow)])
def test_a_step_may_start_a_multiprocessing_pool_on_every_executor(store, executor):
    """Workers and a timed step's child are daemonic processes, which multiprocessing refuses children to."""
    if executor == "dask":
        pytest.importorskip("distributed")
    run = load_pipeline(str(PIPELINES / "pools.py")).run(store=str(store), executor=executor, workers=None if executor == "sequential" else 1)
    assert run.status == "succeeded", run.error
    assert run.output() == ([3, 2, 1], [3, 2, 1])


@pytest.mark.parametrize("executor", ["sequential", "process", pytest.param("dask", marks=pytest.mark.slow)])
def test_metrics_a_worker_returned_are_recorded_on_every_executor(store, executor):
    """A worker sends back no value: the driver loads the small (inline) Metrics by its record, still queued."""
    if executor == "dask":
        pytest.importorskip("distributed")
    run = _run("scored.py", store, executor)
    assert run.status == "succeeded", run.error
    assert run.metrics == {"accuracy": 0.6, "depth": 3}
    again = _run("scored.py", store, executor)
    assert again.steps["evaluate"].status == "cached" and again.metrics == {"accuracy": 0.6, "depth": 3}


def test_the_process_pool_starts_workers_only_as_steps_need_them(store, calls, monkeypatch):
    from orchestrator.executors.process import ProcessExecutor

    spawned = []
    spawn = ProcessExecutor._spawn
    monkeypatch.setattr(ProcessExecutor, "_spawn", lambda self: spawned.append(1) or spawn(self))
    parallel = load_pipeline(str(PIPELINES / "parallel.py:parallel"))
    run = parallel.run(store=str(store), executor="process", workers=6, n=2, seconds=0.3)
    assert run.status == "succeeded", run.error
    assert len(spawned) == 2  # two branches at once; `gather` reuses an idle worker
    spawned.clear()
    again = parallel.run(store=str(store), executor="process", workers=6, n=2, seconds=0.3)
    assert {s.status for s in again.steps.values()} == {"cached"}
    assert spawned == []


@pytest.mark.slow
def test_a_cached_run_on_dask_starts_no_local_cluster(store, calls, monkeypatch):
    distributed = pytest.importorskip("distributed")
    started = []
    local_cluster = distributed.LocalCluster
    monkeypatch.setattr(distributed, "LocalCluster", lambda **kw: started.append(1) or local_cluster(**kw))
    first = _run("parallel.py:mixed", store, "dask")
    assert first.status == "succeeded", first.error
    assert started == [1]
    again = _run("parallel.py:mixed", store, "dask")
    assert {s.status for s in again.steps.values()} == {"cached"}
    assert started == [1]


@pytest.mark.slow
def test_a_local_cluster_has_no_more_workers_than_the_run_has_steps(store, calls, monkeypatch):
    distributed = pytest.importorskip("distributed")
    sizes = []
    local_cluster = distributed.LocalCluster
    monkeypatch.setattr(distributed, "LocalCluster", lambda **kw: sizes.append(kw["n_workers"]) or local_cluster(**kw))
    run = load_pipeline(str(PIPELINES / "slow.py")).run(store=str(store), executor="dask", workers=8, n=10, seconds=0.0)
    assert run.status == "succeeded", run.error
    assert sizes == [2]  # two steps: `produce`, then `wait`


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["process", "dask"])
def test_timeout_kills_the_worker_and_the_pool_goes_on(store, calls, executor):
    if executor == "dask":
        pytest.importorskip("distributed")
    run = load_pipeline(str(PIPELINES / "flaky.py:timeouts")).run(store=str(store), executor=executor,
                                                                  seconds=30.0)
    assert run.status == "failed"
    assert run.steps["hangs"].attempts == 2
    assert "timeout" in run.steps["hangs"].error
    # What the attempt printed and logged before it was killed is kept: that is what explains a hang.
    attempts = Context.open(store).lineage.attempts(run.id, "hangs")
    assert all("waiting for the slow service" in a["stdout"] and "still waiting" in a["logs"] for a in attempts)


@pytest.mark.slow
def test_failure_on_process_executor_skips_downstream_only(store, calls, monkeypatch):
    monkeypatch.delenv("ORCH_TEST_FIX", raising=False)
    run = _run("branches.py", store, "process")
    assert {n: s.status for n, s in run.steps.items()} == {
        "source": "ran", "good": "ran", "good_after": "ran", "bad": "failed", "after_bad": "skipped"}


@pytest.mark.parametrize("workers", ["2", 0, 2.5, True])
def test_a_wrong_number_of_workers_from_python_is_one_clear_error(tmp_path, workers):
    from orchestrator.errors import UserError

    with pytest.raises(UserError, match=r"workers=.*give a whole number of worker processes, 1 or more"):
        load_pipeline(str(PIPELINES / "parallel.py:parallel")).run(store=str(tmp_path / "store"),
                                                                     executor="process", workers=workers)
    assert not (tmp_path / "store").exists()


def test_cli_executor_options(orch, calls):
    bad = orch("run", "edits.py", "--executor", "process", "--workers", "0")
    assert bad.returncode == 2
    wrong = orch("run", "edits.py", "--address", "tcp://127.0.0.1:1")
    assert wrong.returncode == 2 and "--executor dask" in wrong.stderr
    # --workers alone would be ignored: the run is sequential. Said before anything runs.
    alone = orch("run", "edits.py", "--workers", "4")
    assert alone.returncode == 2 and "add --executor process (or dask)" in alone.stderr
    assert len(alone.stderr.splitlines()) == 1 and not calls.ran(), alone.stderr
    # Named, the sequential executor runs (a script may pass it from a variable), saying --workers is unused.
    named = orch("run", "edits.py", "--executor", "sequential", "--workers", "4")
    assert named.returncode == 0, named.stderr
    assert named.stderr.startswith("warning: --workers 4 is unused: --executor sequential runs steps one at a "
                                   "time; use --executor process"), named.stderr
    malformed = orch("run", "edits.py", "--executor", "dask", "--address", "foo")
    assert malformed.returncode == 2 and malformed.stderr.startswith("error: --address 'foo' is not")
    assert len(malformed.stderr.splitlines()) == 1, malformed.stderr
    ok = orch("run", "edits.py", "--executor", "process", "--workers", "2", "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["status"] == "succeeded"


UNGUARDED_SCRIPT = '''
import os
from pathlib import Path
from orchestrator import step, pipeline

@step(retries=2)
def dies_once(x: int) -> int:
    marker = Path(os.environ["MARKER"])
    if not marker.exists():
        marker.write_text("1")
        os._exit(9)  # the worker dies; a replacement worker is started
    return x * 2

@pipeline
def dying(x: int = 21):
    return dies_once(x)

# No `if __name__ == "__main__":` guard: workers must not run this again.
run = dying.run(store=os.environ["STORE"], executor=os.environ["EXECUTOR"], workers=2)
print("RESULT", run.status, run.output(), run.steps["dies_once"].attempts)
'''


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["process", "dask"])
def test_a_script_without_a_main_guard_runs_once(tmp_path, executor):
    """Spawned workers (and replacements for dead ones) do not re-import the user's script."""
    from orchestrator.lineage_db import Lineage

    if executor == "dask":
        pytest.importorskip("distributed")
    script = tmp_path / "train.py"
    script.write_text(UNGUARDED_SCRIPT)
    env = {**os.environ, "STORE": str(tmp_path / "store"), "EXECUTOR": executor,
           "MARKER": str(tmp_path / "died")}
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "RESULT succeeded 42 2" in done.stdout
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert len(Lineage(tmp_path / "store" / "metadata.db").runs()) == 1


ODD_FAILURES = {"custom": "DataError: 3 bad values in column age", "locked": "LockedError: the resource is locked",
                "exit": "SystemExit: 3", "cancelled": "Cancelled: the job was cancelled"}


@pytest.mark.slow
@pytest.mark.parametrize("executor", EXECUTORS)
def test_awkward_exceptions_fail_the_step_cleanly_on_every_executor(tmp_path, executor):
    """An exception that will not cross processes, or sys.exit() in a step, is that step's failure."""
    if executor == "dask":
        pytest.importorskip("distributed")
    for kind, summary in ODD_FAILURES.items():
        run = _run("odd_failures.py:odd", tmp_path / kind, executor, kind=kind)
        assert run.status == "failed"
        assert run.steps["check"].status == "failed" and run.steps["after"].status == "skipped"
        assert summary in run.error, (kind, run.error)
        assert "WorkerDied" not in run.error


def test_a_base_exception_of_a_step_is_its_failure_not_a_crash(tmp_path):
    """Not only Exception and SystemExit: a step's own BaseException fails that step, with no
    traceback out of the run (on Dask the run waited for ever)."""
    run = _run("odd_failures.py:odd", tmp_path, "sequential", kind="cancelled")
    assert run.status == "failed"
    assert run.steps["check"].status == "failed" and run.steps["after"].status == "skipped"
    assert "Cancelled: the job was cancelled" in run.error


@pytest.mark.slow
def test_a_keyboard_interrupt_raised_by_a_step_in_a_pool_worker_is_its_failure(tmp_path):
    """Workers ignore Ctrl-C (the driver stops them), so there it is the step's own raise: a failed
    attempt naming it, not a worker that died."""
    run = _run("odd_failures.py:odd", tmp_path, "process", kind="interrupt")
    assert run.status == "failed" and run.steps["check"].attempts == 1
    assert "KeyboardInterrupt: stopped by the step" in run.error and "WorkerDied" not in run.error


@pytest.mark.parametrize("kind", sorted(ODD_FAILURES))
def test_awkward_exceptions_from_a_timed_child_process(tmp_path, kind):
    run = _run("odd_failures.py:odd_in_child", tmp_path, "sequential", kind=kind)
    assert run.status == "failed" and ODD_FAILURES[kind] in run.error, run.error


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["process", "dask"])
def test_worker_tracebacks_name_the_real_file_and_line(tmp_path, executor):
    """Code travels to workers by value; its tracebacks still point at the user's file."""
    from orchestrator.lineage_db import Lineage

    if executor == "dask":
        pytest.importorskip("distributed")
    run = _run("odd_failures.py:odd", tmp_path, executor, kind="custom")
    [attempt] = Lineage(tmp_path / "metadata.db").attempts(run.id, "check")
    assert str(PIPELINES / "odd_failures.py") in attempt["traceback"]
    assert 'raise DataError("age", 3)' in attempt["traceback"]
    assert "<dynamic-code>" not in attempt["traceback"]


@pytest.mark.parametrize("executor", ["sequential", "process"])
def test_a_timeout_names_the_map_item_that_ran_out_of_time(tmp_path, executor):
    """`orch show` lists naps_2: its error must say naps_2, not the step every item shares."""
    workers = {"workers": 2} if executor == "process" else {}
    run = load_pipeline(str(PIPELINES / "timed.py:mapped_naps")).run(store=str(tmp_path), executor=executor,
                                                                     **workers)
    assert run.steps["naps"].status == "ran"
    assert run.steps["naps_2"].status == "failed"
    assert "step 'naps_2' did not finish within its timeout of 0.5 s" in (run.steps["naps_2"].error or "")


def _run_timed_pipeline(target: str, store: str, queue) -> None:
    run = load_pipeline(str(PIPELINES / target)).run(store=store)
    queue.put({name: (s.status, s.error) for name, s in run.steps.items()})


def _start_daemonic(target: str, store):
    """Run a pipeline in a daemonic process, as a Dask worker is one (spawned: this process may have threads).

    Returns the process and the queue that receives ``{node: (status, error)}``.
    """
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_run_timed_pipeline, args=(target, str(store), queue), daemon=True)
    proc.start()
    return proc, queue


def test_timed_steps_run_inside_a_daemonic_process(tmp_path):
    """multiprocessing refuses children to daemonic processes; a step's timeout child is started anyway."""
    proc, queue = _start_daemonic("timed.py:timed", tmp_path)
    steps = queue.get(timeout=60)
    proc.join(timeout=10)
    assert steps["quick"] == ("ran", None)
    assert steps["hangs"][0] == "failed" and "StepTimeoutError" in steps["hangs"][1]


@pytest.mark.skipif(sys.platform != "linux", reason="the child asks Linux to kill it with its parent")
def test_a_timed_child_dies_with_its_daemonic_parent(tmp_path, calls):
    from pathlib import Path

    proc, _ = _start_daemonic("timed.py:waiting", tmp_path)
    pid_file = Path(f"{calls.path}.pid")
    wait_for(lambda: pid_file.exists() and pid_file.read_text() != "")
    child = int(pid_file.read_text())
    proc.kill()
    proc.join()

    def gone() -> bool:  # no process, or a zombie nobody reaps (a container's init may not)
        stat = Path(f"/proc/{child}/stat")
        return not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"

    wait_for(gone, timeout=10)


@pytest.fixture(scope="module")
def users_cluster():
    """A cluster like one started with `dask scheduler` and `dask worker`: its workers are daemonic."""
    import logging

    distributed = pytest.importorskip("distributed")
    environ = dict(os.environ)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=True, host="127.0.0.1",
                                  dashboard_address="127.0.0.1:0", silence_logs=logging.CRITICAL) as cluster:
        yield cluster.scheduler_address
    # Its nanny set Dask's worker environment (PYTHONHASHSEED, OMP_NUM_THREADS=1, ...) in this process:
    # left there, every later `orch` command of the tests would differ from the fork server's.
    os.environ.clear()
    os.environ.update(environ)


@pytest.mark.slow
def test_timed_steps_on_a_users_dask_cluster(users_cluster, tmp_path):
    run = load_pipeline(str(PIPELINES / "timed.py:timed")).run(store=str(tmp_path), executor="dask",
                                                               address=users_cluster)
    assert run.steps["quick"].status == "ran"
    assert run.steps["hangs"].status == "failed" and "StepTimeoutError" in run.steps["hangs"].error
    # The worker keeps the killed attempt's output in a folder of its own, and removes it after.
    assert "sleeping past the timeout" in Context.open(tmp_path).lineage.attempts(run.id, "hangs")[0]["stdout"]


def _ctrl_c(orch, started, *args: str, again: float | None = None) -> tuple[int, str, float]:
    """`orch run ARGS` in a process group of its own, Ctrl-C'd like a terminal does once `started()`.

    ``again``: Ctrl-C is pressed a second time, that many seconds after the first.
    Returns the exit code, stderr, and the seconds it took to exit after Ctrl-C.
    """
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "--store", str(orch.store), "run", *args],
                            cwd=orch.cwd, env=orch.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        wait_for(started)
        time.sleep(0.5)
        pressed = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        if again is not None:
            time.sleep(again)
            os.killpg(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
        return proc.returncode, stderr, time.monotonic() - pressed
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.slow
def test_ctrl_c_on_a_users_dask_cluster_prints_no_traceback(users_cluster, orch):
    import distributed

    with distributed.Client(users_cluster, set_as_default=False) as client:
        code, stderr, _ = _ctrl_c(orch, lambda: any(client.processing().values()), "slow.py", "-p", "n=1000",
                                  "-p", "seconds=3", "--executor", "dask", "--address", users_cluster)
    assert code == 130, stderr
    assert "Traceback" not in stderr and "Error in callback" not in stderr, stderr


@pytest.mark.slow
def test_ctrl_c_on_our_local_cluster_is_quiet_and_quick(orch, calls):
    """Workers leave Ctrl-C to the driver, which kills them at once instead of waiting for their tasks."""
    pytest.importorskip("distributed")
    code, stderr, seconds = _ctrl_c(orch, lambda: "wait" in calls.ran(), "slow.py", "-p", "n=1000",
                                    "--executor", "dask", "--workers", "1")
    assert code == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert seconds < 3, seconds  # a nanny gives a busy worker 4 s before killing it


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["process", "dask"])
def test_ctrl_c_during_a_timed_step_on_a_worker_keeps_what_it_printed_and_leaves_no_temp_folders(orch, calls,
                                                                                                 executor):
    """A timed attempt's output goes to a spill folder too. The pool and the LocalCluster removed it when Ctrl-C
    killed the worker, and `orch logs` said 'what it printed was lost', where the sequential executor kept it."""
    if executor == "dask":
        pytest.importorskip("distributed")
    temp = orch.store.parent / "temp"
    temp.mkdir()
    orch.env["TMPDIR"] = str(temp)
    pid_file = Path(str(calls.path) + ".pid")
    code, stderr, _ = _ctrl_c(orch, pid_file.exists, "timed.py:waiting", "--executor", executor, "--workers", "1")
    assert code == 130, stderr
    assert [p.name for p in temp.iterdir() if "orch" in p.name] == []
    logs = orch("logs", "latest:waits")
    assert logs.stdout.splitlines()[:3] == ["=== waits attempt 1 (interrupted) ===", "--- stdout ---",
                                            "waiting for the lock"], logs.stdout
    assert "interrupted by the user" in logs.stdout


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["process", "dask"])
def test_ctrl_c_keeps_what_a_step_on_a_worker_had_printed_and_logged(orch, calls, executor):
    """The sequential executor kept an interrupted step's output; the pool and the LocalCluster killed the worker
    with it, and `orch logs` said 'what it printed was lost'. The driver asks the workers for it first."""
    if executor == "dask":
        pytest.importorskip("distributed")
    code, stderr, _ = _ctrl_c(orch, lambda: "chatty_wait" in calls.ran(), "printing_wait.py",
                              "--executor", executor, "--workers", "1")
    assert code == 130, stderr
    logs = orch("logs", "latest:chatty_wait").stdout
    assert logs.splitlines()[:3] == ["=== chatty_wait attempt 1 (interrupted) ===", "--- stdout ---", "waiting 60 s"]
    assert "WARNING slow: still waiting" in logs and "interrupted by the user" in logs


@pytest.mark.slow
@pytest.mark.parametrize(("target", "running", "gap"), [
    ("printing_wait.py", "chatty_wait", 0.01),  # a terminal's Ctrl-C pressed twice
    # The second one arrives while the driver waits for the busy worker to say what its step printed.
    ("held_interpreter.py", "crunch", 0.3),
], ids=["10ms-apart", "while-the-pool-stops"])
def test_ctrl_c_pressed_twice_stops_a_pool_run_as_once_does(orch, calls, target, running, gap):
    """The second Ctrl-C cut the first one's cleanup short: the step stayed `running` for good, the summary
    said 'no step started', and a worker stopped (SIGSTOP) to be killed was left stopped: `orch` hung at exit."""
    code, stderr, _ = _ctrl_c(orch, lambda: running in calls.ran(), target, "--executor", "process",
                              "--workers", "1", again=gap)
    assert code == 130, stderr
    assert "no step started" not in stderr and "Traceback" not in stderr, stderr
    shown = json.loads(orch("show", "latest", "--json").stdout)
    assert shown["status"] == "interrupted"
    assert [(s["name"], s["status"]) for s in shown["steps"]] == [(running, "interrupted")]
    if running == "chatty_wait":  # the other one's worker holds the interpreter: it cannot say what it printed
        assert "waiting 60 s" in orch("logs", "latest:chatty_wait").stdout


def test_ctrl_c_during_a_timed_step_keeps_what_it_printed_on_the_sequential_executor(orch, calls):
    """Its child is killed, but what it printed is read back from its spill folder, as for an untimed step."""
    temp = orch.store.parent / "temp"
    temp.mkdir()
    orch.env["TMPDIR"] = str(temp)
    pid_file = Path(str(calls.path) + ".pid")
    code, stderr, _ = _ctrl_c(orch, pid_file.exists, "timed.py:waiting")
    assert code == 130, stderr
    logs = orch("logs", "latest:waits")
    assert logs.stdout.splitlines()[:3] == ["=== waits attempt 1 (interrupted) ===", "--- stdout ---",
                                            "waiting for the lock"], logs.stdout
    assert [p.name for p in temp.iterdir() if "orch" in p.name] == []  # the spill folder was read and removed


CTRL_C_FROM_A_TIMED_STEP = '''
import os, signal, time
from orchestrator import pipeline, step

@step(timeout=60)
def waits() -> int:
    print("waiting for the lock", flush=True)
    # Ctrl-C at the terminal reaches the whole process group: this child first, then the driver.
    os.kill(os.getpid(), signal.SIGINT)
    os.kill(os.getppid(), signal.SIGINT)
    time.sleep(60)
    return 3

@pipeline
def waiting():
    return waits()
'''


def test_ctrl_c_that_reaches_a_timed_steps_child_first_keeps_what_it_printed(orch):
    """The child running a timed step took Ctrl-C as its own: it ended its capture, which removed the spill
    folder the driver reads back, and `orch logs` showed the interrupted attempt without its output (or,
    when the driver's Ctrl-C came later, the child's death as a failed step)."""
    (orch.cwd / "ctrl_c.py").write_text(CTRL_C_FROM_A_TIMED_STEP)
    done = subprocess.run([sys.executable, "-m", "orchestrator", "--store", str(orch.store), "run", "ctrl_c.py"],
                          cwd=orch.cwd, env=orch.env, capture_output=True, text=True, timeout=120,
                          start_new_session=True)
    assert done.returncode == 130, done.stderr
    logs = orch("logs", "latest:waits")
    assert logs.stdout.splitlines()[:3] == ["=== waits attempt 1 (interrupted) ===", "--- stdout ---",
                                            "waiting for the lock"], logs.stdout


@pytest.mark.parametrize(("address", "problem"), [
    ("foo", "is not a Dask scheduler address"), ("tcp://127.0.0.1", "is not a Dask scheduler address"),
    ("http://127.0.0.1:8787", "Dask has no scheme 'http'"), ("127.0.0.1:99999", "port 99999 is out of range")])
def test_malformed_dask_addresses_are_refused_up_front(address, problem):
    pytest.importorskip("distributed")
    from orchestrator.errors import UserError
    from orchestrator.executors.dask import check_address

    with pytest.raises(UserError, match=re.escape(problem)):
        check_address(address)


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:8786", "127.0.0.1:8786", "tls://sched.example:8786",
                                     "tcp://[::1]:8786", "localhost:8786"])
def test_well_formed_dask_addresses_pass(address):
    pytest.importorskip("distributed")
    from orchestrator.executors.dask import check_address

    check_address(address)


@pytest.mark.slow
def test_local_dask_workers_run_blas_with_the_drivers_threads(tmp_path, monkeypatch):
    # Dask's default of one BLAS thread per worker changes a fitted model's last bits, and so
    # its digest, against the same step run sequentially or in the process pool.
    pytest.importorskip("distributed")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    expected = {"OMP_NUM_THREADS": None, "MKL_NUM_THREADS": None, "OPENBLAS_NUM_THREADS": "2"}
    for executor in EXECUTORS:
        run = _run("blas_threads.py", tmp_path / executor, executor)
        assert run.output() == expected, executor
    assert "OMP_NUM_THREADS" not in os.environ  # nor set in the driver by the cluster's nannies


SPAWNING_STEP = '''
import subprocess, time
from pathlib import Path
from orchestrator import pipeline, step

@step(timeout=1)
def spawns() -> int:
    child = subprocess.Popen(["sleep", "60"])
    Path(__file__).with_name("grandchild.pid").write_text(str(child.pid))
    time.sleep(60)
    return 1

@pipeline
def spawning():
    return spawns()
'''


# A program that puts a worker in the background and returns (`(train &)`, a daemon): the worker's
# parent is gone, so it is no longer below the step's process when the timeout stops the step.
DETACHING_STEP = SPAWNING_STEP.replace(
    'child = subprocess.Popen(["sleep", "60"])\n'
    '    Path(__file__).with_name("grandchild.pid").write_text(str(child.pid))',
    'pid_file = Path(__file__).with_name("grandchild.pid")\n'
    '    subprocess.run(["bash", "-c", f"(sleep 60 & echo $! > {pid_file})"], check=True)')


@pytest.mark.parametrize("executor,program", [
    ("sequential", SPAWNING_STEP), ("process", SPAWNING_STEP),
    pytest.param("dask", SPAWNING_STEP, marks=pytest.mark.slow),
    ("sequential", DETACHING_STEP), ("process", DETACHING_STEP)])
def test_a_timeout_also_kills_the_processes_the_step_started(tmp_path, executor, program):
    """A step that started `train.sh` and timed out must not leave it running, holding CPU or GPU."""
    from orchestrator.files import zombie

    (tmp_path / "spawning.py").write_text(program)
    run = load_pipeline(str(tmp_path / "spawning.py")).run(store=str(tmp_path / "store"), executor=executor)
    assert run.steps["spawns"].status == "failed" and "StepTimeoutError" in run.steps["spawns"].error
    pid = int((tmp_path / "grandchild.pid").read_text())

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return zombie(pid)

    try:
        wait_for(gone, timeout=5)
    finally:
        if not gone():
            os.kill(pid, signal.SIGKILL)


BROKEN_STR_STEP = '''
from orchestrator import pipeline, step

class ApiError(Exception):
    """Formats an attribute that raising it with a plain message leaves unset, as some HTTP clients do."""
    def __str__(self):
        return f"HTTP {self.response.status_code}"

@step(retries=1, retry_on=(ApiError,))
def call() -> int:
    raise ApiError("service unavailable")

@pipeline
def calling():
    return call()
'''


@pytest.mark.parametrize("executor", ["sequential", "process"])
def test_an_exception_whose_str_fails_is_a_failed_attempt_not_a_crash(tmp_path, executor):
    (tmp_path / "calling.py").write_text(BROKEN_STR_STEP)
    run = load_pipeline(str(tmp_path / "calling.py")).run(store=str(tmp_path / "store"), executor=executor)
    step_run = run.steps["call"]
    assert (step_run.status, step_run.attempts) == ("failed", 2)  # retried by its class, as any failure
    assert step_run.error == ("ApiError: 'service unavailable' (its str() failed: AttributeError: "
                              "'ApiError' object has no attribute 'response')")


SLOW_TO_START = '''
import time
from orchestrator import pipeline, step

def _load_settings():
    time.sleep(1.5)  # stands for a worker that takes long to start: a busy machine, heavy imports
    return Settings()

class Settings:
    def __reduce__(self):
        return (_load_settings, ())

SETTINGS = Settings()

@step(timeout=1)
def quick() -> str:
    return type(SETTINGS).__name__

@pipeline
def starting():
    return quick()
'''


def test_a_pool_timeout_counts_from_when_the_attempt_starts_not_from_the_workers_start(tmp_path):
    """`timeout=1` is the step's second, not also the time a new worker takes to start and receive it."""
    (tmp_path / "starting.py").write_text(SLOW_TO_START)
    run = load_pipeline(str(tmp_path / "starting.py")).run(store=str(tmp_path / "store"), executor="process")
    assert run.steps["quick"].status == "ran", run.steps["quick"].error
    assert run.output() == "Settings"


def _double(x: int) -> int:
    return 2 * x


def test_a_worker_that_cannot_see_the_store_folder_fails_the_step_naming_it(tmp_path):
    """A Dask worker on another machine (or in another mount namespace) has no such folder.

    Making it there would put the outputs where the driver never looks: the run succeeded
    and `orch cache verify` then found every output missing.
    """
    from orchestrator.task import TaskSpec, run_task

    missing = tmp_path / "team" / "store"
    spec = TaskSpec(node="double", step_name="double", fn=_double, arguments={"x": 21},
                    output_names=("out",), store_root=str(missing))
    result = run_task(spec)
    assert result.failure is not None and result.failure.type_name == "StoreUnreachableError"
    assert f"the store folder {missing} does not exist on " in result.failure.message
    assert "where step 'double' ran" in result.failure.message and "s3://" in result.failure.message
    assert not missing.exists() and result.outputs == []


@pytest.mark.parametrize("executor", ["sequential", "process"])
def test_a_run_makes_its_store_folder_before_any_worker_looks_for_it(tmp_path, executor):
    """A task refuses a store folder that does not exist: a run's own, new one exists before its first task.

    Also with the metadata database elsewhere, where no database file makes the folder.
    """
    store = tmp_path / "objects-here"
    run = load_pipeline(str(PIPELINES / "parallel.py:mixed")).run(store=str(store), metadata=str(tmp_path / "meta"),
                                                                  executor=executor)
    assert run.status == "succeeded", [s.error for s in run.steps.values()]
    assert (store / "objects").is_dir()


def _within(seconds: float, call):
    """``call()``'s result or exception, failing the test if it has neither after ``seconds`` (a hang)."""
    import threading

    outcome: list = []

    def target():
        try:
            outcome.append(("ok", call()))
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            outcome.append(("raised", exc))

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"still waiting after {seconds} s"
    return outcome[0]


@pytest.fixture
def not_a_scheduler():
    """A server on loopback that accepts connections and answers like `answer` (None: says nothing)."""
    import contextlib
    import socket
    import threading

    servers = []
    threads: list[threading.Thread] = []

    def start(answer: bytes | None):
        server = socket.create_server(("127.0.0.1", 0))
        servers.append(server)

        def serve():
            while True:
                try:
                    conn, _ = server.accept()
                except OSError:
                    return
                if answer is not None:
                    conn.recv(1024)
                    conn.sendall(answer)
                    conn.close()
                else:
                    servers.append(conn)  # kept open, silent, like an HTTP server waiting for a request

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        threads.append(thread)
        return f"tcp://127.0.0.1:{server.getsockname()[1]}"

    yield start
    for s in servers:
        # close() alone does not wake an accept() blocked in another thread: shutdown() does, and the
        # serving thread ends rather than outlive the test.
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)
        s.close()
    for thread in threads:
        thread.join(timeout=10)
        assert not thread.is_alive()


@pytest.mark.parametrize(("answer", "problem"), [
    (None, "accepts connections but does not answer as a Dask scheduler (the dashboard's port?)"),
    (b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", "answers, but not as a Dask scheduler"),
])
def test_an_address_where_something_else_listens_is_refused_not_waited_on(not_a_scheduler, monkeypatch, tmp_path,
                                                                           answer, problem):
    """The dashboard's port (8787) copied for the scheduler's: Dask's client waited for ever."""
    pytest.importorskip("distributed")
    from orchestrator.errors import UserError
    from orchestrator.executors import dask as dask_executor

    monkeypatch.setattr(dask_executor, "_HANDSHAKE_SECONDS", 0.5)
    address = not_a_scheduler(answer)
    pipeline = load_pipeline(str(PIPELINES / "parallel.py:mixed"))
    kind, outcome = _within(20, lambda: pipeline.run(store=str(tmp_path), executor="dask", address=address))
    assert kind == "raised" and isinstance(outcome, UserError), outcome
    assert str(outcome) == (f"address='{address}' {problem}. Give the scheduler's own address, the `Scheduler at:` "
                            "line of its log (port 8786 by default).")


def test_a_scheduler_host_that_does_not_resolve_is_refused_at_once():
    pytest.importorskip("distributed")
    from orchestrator.errors import UserError
    from orchestrator.executors.dask import check_scheduler_answers

    kind, outcome = _within(8, lambda: check_scheduler_answers("tcp://sched.invalid:8786"))
    assert kind == "raised" and isinstance(outcome, UserError), outcome
    assert str(outcome).startswith("--address 'tcp://sched.invalid:8786': the host 'sched.invalid' is not known")


@pytest.mark.slow
def test_a_lost_scheduler_fails_the_running_and_later_attempts_at_once_without_retries(tmp_path, capfd):
    """The scheduler was killed mid-run: each attempt was a `WorkerDiedError ... FutureCancelledError`, retried
    against the dead scheduler for 10 s, and then Dask's client logged a traceback of its own."""
    import functools

    pytest.importorskip("distributed")
    from orchestrator.executors.dask import DaskExecutor
    from orchestrator.retry import RetryPolicy
    from orchestrator.task import TaskSpec

    spec = TaskSpec(node="nap", step_name="nap", fn=functools.partial(time.sleep, 3), arguments={},
                    output_names=("out",), store_root=str(tmp_path))
    file = tmp_path / "scheduler.json"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    scheduler = subprocess.Popen([sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", "0",
                                  "--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(file)], **quiet)
    worker = None
    try:
        wait_for(file.exists, timeout=30)
        worker = subprocess.Popen([sys.executable, "-m", "dask", "worker", "--scheduler-file", str(file),
                                   "--nthreads", "1", "--no-nanny", "--no-dashboard"], **quiet)
        address = json.loads(file.read_text())["address"]
        executor = DaskExecutor(address=address)
        try:
            executor.client.wait_for_workers(1, timeout=30)
            running = executor.submit(spec)
            wait_for(lambda: any(executor.client.processing().values()), timeout=20)
            scheduler.kill()
            lost = running.result(timeout=20)
            again = executor.submit(spec).result(timeout=1)  # not sent: it would wait for Dask to reconnect
        finally:
            executor.shutdown()
    finally:
        for process in (worker, scheduler):
            if process is not None:
                process.kill()
                process.wait()
    for result in (lost, again):
        assert result.failure is not None and result.failure.type_name == "SchedulerLostError"
        assert result.failure.message.startswith(f"the connection to the Dask scheduler at {address} was lost")
    assert not RetryPolicy(retries=3).should_retry(lost.failure, 1)
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.slow
def test_ctrl_c_on_the_local_dask_cluster_kills_busy_workers_and_leaves_their_nannies_closed(tmp_path):
    """Under distributed 2024.4 a nanny closed with a short timeout raised TimeoutError and stayed
    `closing`: `orch run --executor dask` then hung for good on Ctrl-C, closing the cluster."""
    import functools

    pytest.importorskip("distributed")
    from orchestrator.executors.dask import DaskExecutor, _kill_workers
    from orchestrator.task import TaskSpec

    spec = TaskSpec(node="nap", step_name="nap", fn=functools.partial(time.sleep, 60), arguments={},
                    output_names=("out",), store_root=str(tmp_path))
    executor = DaskExecutor(workers=1)
    try:
        executor.submit(spec)
        wait_for(lambda: any(executor.client.processing().values()), timeout=30)
        nannies = list(executor._cluster.workers.values())
        pids = [nanny.pid for nanny in nannies]
        executor._cluster.sync(_kill_workers, nannies)
        assert [str(nanny.status) for nanny in nannies] == ["Status.closed"]
        for pid in pids:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
    finally:
        # The client first, as shutdown() closes them: a cluster closed under an open client left the
        # client's IO loop thread running for the rest of the session.
        executor.client.close()
        executor._cluster.close(timeout=20)  # not waited on forever if a nanny was left closing
        executor.shutdown()


def test_a_bare_cancelled_error_counts_as_a_lost_scheduler_when_the_client_is_reconnecting():
    """Before distributed 2024.8 (the floor is 2024.4) Dask cancelled the client's futures with a bare
    `CancelledError`, not `FutureCancelledError`: every later attempt then waited for the reconnection
    to give up, and burnt the step's retries meanwhile."""
    from concurrent.futures import CancelledError
    from types import SimpleNamespace

    pytest.importorskip("distributed")
    from orchestrator.executors.dask import _scheduler_lost

    for status in ("connecting", "closing", "closed"):
        assert _scheduler_lost(CancelledError("orch-nap-1"), SimpleNamespace(status=status))
    assert not _scheduler_lost(CancelledError("orch-nap-1"), SimpleNamespace(status="running"))  # cancelled by us
    assert not _scheduler_lost(RuntimeError("boom"), SimpleNamespace(status="connecting"))


READS_RELATIVE_PATHS = '''
from pathlib import Path
from orchestrator import step, pipeline

@step
def read(path: Path) -> str:
    return path.read_text() + "+" + open("notes.txt").read()

@step(timeout=60)
def read_in_time(path: Path) -> str:
    return path.read_text() + "+" + open("notes.txt").read()

@pipeline
def reading(path: Path = Path("data.txt")):
    return read(path), read_in_time(path)
'''


@pytest.mark.slow
def test_relative_paths_in_steps_mean_the_drivers_folder_on_a_users_dask_cluster(users_cluster, tmp_path,
                                                                                  monkeypatch):
    """Workers of `dask worker` run in the folder they were started in: a `Path("data.txt")` default (the
    README's pipeline) failed there with FileNotFoundError, though `orch` hashed the file it names."""
    import distributed

    project = tmp_path / "project"
    project.mkdir()
    (project / "pipe.py").write_text(READS_RELATIVE_PATHS)
    (project / "data.txt").write_text("rows")
    (project / "notes.txt").write_text("notes")
    with distributed.Client(users_cluster, set_as_default=False) as client:
        (worker_folder,) = set(client.run(os.getcwd).values())
        assert worker_folder != str(project)
        monkeypatch.chdir(project)
        run = load_pipeline("pipe.py").run(store=str(tmp_path / "store"), executor="dask", address=users_cluster)
        assert run.status == "succeeded", [s.error for s in run.steps.values()]
        assert run.output() == ("rows+notes", "rows+notes")
        assert set(client.run(os.getcwd).values()) == {worker_folder}  # the worker is back where it was


def test_steps_of_two_folders_never_share_a_workers_working_folder(tmp_path, monkeypatch):
    """Threads of one Dask worker run steps of several runs: the working folder is the whole process's."""
    import threading

    from orchestrator.process_state import in_folder

    home, first, second = (tmp_path / n for n in ("home", "first", "second"))
    for folder in (home, first, second):
        folder.mkdir()
    monkeypatch.chdir(home)
    inside, release, seen = threading.Event(), threading.Event(), {}

    def hold_first():
        with in_folder(str(first)):
            inside.set()
            release.wait(10)
            seen["first, at its end"] = os.getcwd()

    def use_second():
        with in_folder(str(second)):
            seen["second"] = os.getcwd()

    holder = threading.Thread(target=hold_first)
    holder.start()
    inside.wait(10)
    with in_folder(str(first)):  # the same folder: shared at once, not waited for
        assert os.getcwd() == str(first)
    other = threading.Thread(target=use_second)
    other.start()  # waits until the first folder's step is done
    release.set()
    holder.join(10)
    other.join(10)
    assert seen == {"first, at its end": str(first), "second": str(second)}
    assert os.getcwd() == str(home)
    with in_folder(str(tmp_path / "not-on-this-machine")):
        assert os.getcwd() == str(home)


IMPORTS_AS_IT_RUNS = '''
from orchestrator import step, pipeline

@step
def uses_a_helper(x: int) -> int:
    import lazy_helpers_of_mine
    return lazy_helpers_of_mine.double(x)

@pipeline
def lazy(x: int = 2):
    return uses_a_helper(x)
'''


@pytest.mark.slow
def test_a_step_importing_the_users_module_as_it_runs_on_a_users_cluster_says_how_to_fix_it(users_cluster, tmp_path,
                                                                                             monkeypatch):
    project = tmp_path / "project"
    project.mkdir()
    (project / "lazy_pipe.py").write_text(IMPORTS_AS_IT_RUNS)
    (project / "lazy_helpers_of_mine.py").write_text("def double(x):\n    return 2 * x\n")
    monkeypatch.chdir(project)
    run = load_pipeline("lazy_pipe.py").run(store=str(tmp_path / "store"), executor="dask", address=users_cluster)
    error = run.steps["uses_a_helper"].error
    assert error.startswith("ModuleNotFoundError: No module named 'lazy_helpers_of_mine' (your module "
                            "'lazy_helpers_of_mine' cannot be imported on the Dask workers"), error
    assert "import it at the top of the step's file, not inside the step" in error


@pytest.mark.slow
def test_a_users_scheduler_without_workers_is_said_once_and_the_run_goes_on_when_one_joins(tmp_path):
    """Nothing ran and nothing was said: the run looked hung."""
    import logging
    import threading

    distributed = pytest.importorskip("distributed")
    from orchestrator.runner import run_pipeline

    observer = _Warnings()
    with distributed.LocalCluster(n_workers=0, processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0",
                                  silence_logs=logging.CRITICAL) as cluster:
        address = cluster.scheduler_address
        pipeline = load_pipeline(str(PIPELINES / "parallel.py:mixed"))
        outcome: list = []
        running = threading.Thread(target=lambda: outcome.append(run_pipeline(
            pipeline, {}, store=str(tmp_path), executor="dask", address=address, progress=observer)), daemon=True)
        running.start()
        assert observer.first.wait(30), "no word of the missing workers"
        cluster.scale(1)
        running.join(60)
    assert outcome and outcome[0].status == "succeeded", outcome
    assert observer.said == [f"the Dask scheduler at {address} has no workers yet: steps wait until one joins "
                             f"(start one with `dask worker {address}`)"]


def test_workers_with_the_address_of_a_users_cluster_is_refused_not_ignored(orch, calls, tmp_path):
    """The cluster's workers are the ones `dask worker` started there: --workers 8 did nothing, silently."""
    pytest.importorskip("distributed")
    given = orch("run", "edits.py", "--executor", "dask", "--address", "tcp://127.0.0.1:1", "--workers", "8")
    assert given.returncode == 2 and not calls.ran(), given.stderr
    assert given.stderr == ("error: --workers 8 sizes the LocalCluster that --executor dask starts without --address; "
                            "the cluster at tcp://127.0.0.1:1 has the workers that `dask worker` started there. "
                            "Drop --workers, or --address for a LocalCluster.\n")
    from orchestrator.errors import UserError

    with pytest.raises(UserError, match=r"^workers=8 sizes the LocalCluster that executor=\"dask\" starts"):
        load_pipeline(str(PIPELINES / "parallel.py:mixed")).run(store=str(tmp_path / "store"), executor="dask",
                                                                address="tcp://127.0.0.1:1", workers=8)


NAPS = '''
import time
from orchestrator import step, pipeline

@step
def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds

@pipeline
def napping(seconds: float = 3.0):
    return nap(seconds)
'''


@pytest.mark.slow
def test_a_users_cluster_that_loses_its_last_worker_mid_run_is_said_and_the_run_goes_on_when_one_joins(
        tmp_path, monkeypatch):
    """`dask worker --no-nanny` killed: Dask keeps the step for a new worker, and the run waited without a word."""
    import threading

    pytest.importorskip("distributed")
    import distributed

    from orchestrator.executors import dask as dask_executor
    from orchestrator.runner import run_pipeline

    monkeypatch.setattr(dask_executor, "_POLL_SECONDS", 0.2)

    (tmp_path / "naps.py").write_text(NAPS)
    file = tmp_path / "scheduler.json"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    worker = [sys.executable, "-m", "dask", "worker", "--scheduler-file", str(file), "--nthreads", "1", "--no-nanny",
              "--no-dashboard"]
    processes = [subprocess.Popen([sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", "0",
                                   "--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(file)], **quiet)]
    try:
        wait_for(file.exists, timeout=30)
        processes.append(subprocess.Popen(worker, **quiet))
        address = json.loads(file.read_text())["address"]
        observer, outcome = _Warnings(), []
        with distributed.Client(address, set_as_default=False) as client:
            client.wait_for_workers(1, timeout=30)
            running = threading.Thread(target=lambda: outcome.append(run_pipeline(
                load_pipeline(str(tmp_path / "naps.py")), {}, store=str(tmp_path / "store"), executor="dask",
                address=address, progress=observer)), daemon=True)
            running.start()
            wait_for(lambda: any(client.processing().values()), timeout=30)
            processes[1].kill()
            assert observer.first.wait(30), "no word of the lost workers"
            processes.append(subprocess.Popen(worker, **quiet))
            running.join(60)
    finally:
        for process in processes:
            process.kill()
            process.wait()
    assert outcome and outcome[0].status == "succeeded", outcome
    assert observer.said == [f"the Dask cluster at {address} has no workers left: steps wait until one joins "
                             f"(start one with `dask worker {address}`)"]


@pytest.mark.parametrize("executor,timeout", [("process", None), ("sequential", 60)])
def test_a_step_killed_like_the_out_of_memory_killer_names_the_likely_cause_and_the_fix(store, executor, timeout):
    """A worker (or a timed step's child) killed by SIGKILL, as the OOM killer kills, said only
    `died (exit code -9)`: the user could not tell a memory problem from a bug."""
    @step(timeout=timeout)
    def greedy(n: int) -> int:
        os.kill(os.getpid(), signal.SIGKILL)
        return n

    @pipeline
    def killed(n: int = 1):
        return greedy(n)

    run = killed.run(store=str(store), executor=executor, workers=1 if executor == "process" else None)
    assert run.status == "failed"
    error = run.steps["greedy"].error
    assert error.startswith("WorkerDiedError: the ") and "step 'greedy' died (exit code -9: killed by SIGKILL" in error
    assert "out-of-memory killer" in error and "give it less data at a time" in error


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["process", "dask"])
def test_steps_that_finished_on_a_worker_a_later_step_kills_do_not_run_again(store, calls, executor):
    """Dask keeps the result of every task whose future the client holds, and runs such a task again when
    the worker holding its result dies: each finished step of that worker ran a second time, unrecorded."""
    pytest.importorskip("distributed")
    run = load_pipeline(str(PIPELINES / "parallel.py:finished_then_killed")).run(store=str(store),
                                                                                 executor=executor, workers=1)
    assert run.status == "succeeded", run.error
    assert run.output() == 3 and run.steps["dies_once_after"].attempts == 2
    assert calls.counts() == {"branch0": 1, "branch1": 1, "branch2": 1, "dies_once_after": 2}


def test_a_run_on_a_local_dask_cluster_leaves_the_callers_environment_as_it_was(store, monkeypatch):
    """Dask's nannies set PYTHONHASHSEED and MALLOC_TRIM_THRESHOLD_ in the driver's os.environ to spawn
    their workers: a notebook that ran a pipeline on Dask passed them on to every process it started after."""
    pytest.importorskip("distributed")
    for name in ("PYTHONHASHSEED", "MALLOC_TRIM_THRESHOLD_", "__DASK_PARENT_PID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    before = dict(os.environ)

    @step
    def seeded() -> str:
        return os.environ.get("PYTHONHASHSEED", "")

    @pipeline
    def worker_seed():
        return seeded()

    run = worker_seed.run(store=str(store), executor="dask", workers=1)
    assert run.status == "succeeded", run.error
    assert run.output() == "6640"  # the worker has Dask's environment
    assert dict(os.environ) == before


@pytest.mark.slow
def test_a_large_argument_reaches_the_dask_worker_by_itself_not_inside_the_task(store, monkeypatch):
    """A frame passed as a value travelled inside the task, through the scheduler, which kept copies of it:
    a 320 MB frame held 3.5 GB in the driver (1 GB on the process pool) and took seconds more per step."""
    distributed = pytest.importorskip("distributed")
    scattered: list[int] = []
    scatter = distributed.Client.scatter

    def counting(self, data, *args, **kwargs):
        scattered.append(len(data))
        return scatter(self, data, *args, **kwargs)

    monkeypatch.setattr(distributed.Client, "scatter", counting)
    big, small = bytes(range(256)) * 8192, b"x" * 100  # 2 MB and 100 bytes

    @step
    def size(blob: bytes, extra: int) -> int:
        return len(blob) + extra

    @pipeline
    def sizes():
        return size(big, 1), size.alias("small")(small, 2)

    run = sizes.run(store=str(store), executor="dask", workers=1)
    assert run.status == "succeeded", run.error
    assert run.output() == (len(big) + 1, 102)
    assert len(scattered) == 1 and scattered[0] > len(big)  # only the large task, its pickled payload


def test_a_dask_task_run_again_returns_its_kept_result_instead_of_running_the_step_again(tmp_path, calls):
    """Dask runs a finished task again when its worker dies before the driver fetched the result: the step ran
    twice (a timed one failed, its spill folder gone). Run again, the task returns what it returned."""
    from orchestrator.executors.worker import decode_result, dumps_with_user_code, run_pickled
    from orchestrator.task import TaskSpec

    from .pipelines.recorder import record

    def counted(x: int) -> int:
        record("counted")
        return x + 1

    (tmp_path / "store").mkdir()
    spec = TaskSpec(node="counted", step_name="counted", fn=counted, arguments={"x": 1}, output_names=("out",),
                    store_root=str(tmp_path / "store"), attempt=1)
    payload, marker = dumps_with_user_code(spec), str(tmp_path / "orch-counted-1")
    first = run_pickled(payload, marker)
    assert decode_result(first, spec).ok
    assert run_pickled(payload, marker) == first
    assert calls.counts() == {"counted": 1}


def test_the_process_pool_starts_no_more_workers_at_once_than_there_are_cpus(store, calls, monkeypatch):
    """`--workers 64` on two CPUs and a map of forty short steps started forty workers at once, each
    a CPU-second of Python and imports (23 s, where two workers took 3 s); an attempt now waits for a
    worker that finishes or one that has started, and no more start at once than there are CPUs."""
    from orchestrator.executors.process import ProcessExecutor

    spawned = []
    spawn = ProcessExecutor._spawn
    monkeypatch.setattr(ProcessExecutor, "_spawn", lambda self: spawned.append(1) or spawn(self))
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    run = load_pipeline(str(PIPELINES / "fanout.py:fanout")).run(store=str(store), executor="process", workers=40,
                                                              n=40)
    assert run.status == "succeeded", run.error
    assert run.output() == sum(i * i for i in range(40))
    assert calls.counts()["total"] == 1 and len([c for c in calls.counts() if c.startswith("square:")]) == 40
    assert 1 <= len(spawned) <= 8  # about 30 before, one per item that found none idle; 2 now


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["process", "dask"])
def test_a_step_that_ends_its_worker_says_how_it_ended_on_the_pool_and_the_local_dask_cluster(store, executor):
    """On the LocalCluster a step's `os._exit(3)` said only `died before reporting a result (tcp://...; its log
    may say why; if it ran out of memory ...)`: the worker's log is silenced, and memory was not the cause.
    The pool said `(exit code 3)`. A replacement worker's death is told the same way (the retry)."""
    pytest.importorskip("distributed")

    @step(retries=1)
    def quits(n: int) -> int:
        os._exit(n)

    @pipeline
    def quitting(n: int = 3):
        return quits(n)

    run = quitting.run(store=str(store), executor=executor, workers=1)
    assert run.status == "failed" and run.steps["quits"].attempts == 2
    errors = [a["error"] for a in Context.open(store).lineage.attempts(run.id, "quits")]
    for error in errors:
        assert error.startswith("WorkerDiedError: the ") and "step 'quits' died (exit code 3) before reporting" in error
        assert "memory" not in error and "log" not in error


def test_how_a_dead_step_process_ended_is_said_in_words():
    from orchestrator.executors.deaths import died_because

    assert died_because(3) == "(exit code 3)" and died_because(None) == "(exit code None)"
    assert died_because(-signal.SIGSEGV).startswith("(exit code -11: SIGSEGV, a crash in native code")
    assert died_because(-signal.SIGTERM) == "(exit code -15: killed by SIGTERM)"
    assert died_because(-200) == "(exit code -200)"  # no such signal


@pytest.mark.slow
def test_a_local_dask_worker_its_nanny_stops_for_memory_says_so(store):
    """A LocalCluster worker past its share of the machine's memory is ended by its nanny with SIGTERM,
    which the step's error gave as `died (exit code -15: killed by SIGTERM)`, naming neither the memory
    nor the limit; the other items of the map finish."""
    pytest.importorskip("distributed")
    import logging

    import dask
    from distributed.worker_memory import parse_memory_limit

    limit = parse_memory_limit("auto", 1, 2, logger=logging.getLogger("test"))  # each of 2 LocalCluster workers
    settings = {"distributed.worker.memory.terminate": 300 * 2**20 / limit, "distributed.worker.memory.pause": False,
                "distributed.worker.memory.spill": False, "distributed.worker.memory.target": False}
    with dask.config.set(settings):
        run = load_pipeline(str(PIPELINES / "memory_hog.py")).run(store=str(store), executor="dask", workers=2)
    assert run.status == "failed"
    assert [name for name, s in run.steps.items() if s.status == "ran"] == ["fold", "fold_3"]
    error = run.steps["fold_2"].error
    assert "WorkerDiedError: the Dask worker running step 'fold_2' was stopped by its nanny (exit code -15) for " \
           f"using more than {settings['distributed.worker.memory.terminate']:.0%} of its memory limit of " in error
    assert "run it on fewer workers" in error and "the process executor" in error


@pytest.mark.slow
def test_a_step_queued_behind_another_on_a_dask_worker_is_timed_from_its_own_start(store):
    """The LocalCluster is sent twice as many tasks as it has threads; a step that waited there for
    another to finish was recorded as started when it was sent, so its time included the other's."""
    pytest.importorskip("distributed")

    @step
    def nap(i: int) -> int:
        print("napping")  # an attempt with output is recorded with the worker's own start and end
        time.sleep(0.5)
        return i

    @pipeline
    def naps():
        return nap(1), nap(2)

    run = naps.run(store=str(store), executor="dask", workers=1)
    assert run.status == "succeeded", run.error
    lineage = Context.open(store).lineage
    one, two = sorted(lineage.steps(run.id), key=lambda s: s["started"])
    first_done = lineage.attempts(run.id, one["node"])[0]["ended"]  # as the worker's clock says it
    assert two["started"] >= first_done, "one worker thread ran them one after the other"


def _blob_size(blob: bytes, go: str) -> int:
    """The blob's size, once the file ``go`` exists: no worker is free before the test says so."""
    deadline = time.monotonic() + 60
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.02)
    return len(blob)


def test_a_large_task_is_not_kept_waiting_for_a_worker(tmp_path, monkeypatch):
    """A waiting attempt's task is held by the driver: a large value written in the body (a frame) would be
    held once per waiting attempt, so a task of more than 1 MB goes to a worker of its own at once."""
    from orchestrator.executors.process import ProcessExecutor
    from orchestrator.task import TaskSpec

    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    (tmp_path / "store").mkdir()
    go = str(tmp_path / "go")  # the large tasks hold their workers until it exists, however slow the machine
    pool = ProcessExecutor(workers=4)
    try:
        futures = [pool.submit(TaskSpec(node=f"size_{i}", step_name="size", fn=_blob_size,
                                        arguments={"blob": b"x" * (2 << 20), "go": go}, output_names=("out",),
                                        store_root=str(tmp_path / "store"))) for i in range(3)]
        assert not pool.unstarted()  # each was sent to a worker as it was submitted, none kept waiting
        small = pool.submit(TaskSpec(node="small", step_name="size", fn=_blob_size,
                                     arguments={"blob": b"x", "go": go},
                                     output_names=("out",), store_root=str(tmp_path / "store")))
        assert pool.unstarted() == {("small", 1)}  # a small one waits for a worker, none starting more
        (tmp_path / "go").touch()
        assert all(f.result(timeout=60).ok for f in [*futures, small])
    finally:
        pool.shutdown()


def _dies_starting(*args):
    os._exit(7)


def test_a_pool_whose_workers_die_starting_fails_the_waiting_steps_instead_of_starting_workers_for_ever(
        store, monkeypatch):
    """Attempts wait for a worker to say it has started; one that dies first takes the attempt that
    waited longest with it, so the steps' retries end the run."""
    import orchestrator.executors.process as process

    monkeypatch.setattr(process, "serve_pipe", _dies_starting)

    @step(retries=1)
    def one(i: int) -> int:
        return i

    @pipeline
    def two():
        return one(1), one(2)

    run = two.run(store=str(store), executor="process", workers=2)
    assert run.status == "failed"
    for name in ("one", "one_2"):
        assert run.steps[name].attempts == 2
        assert "died (exit code 7) before reporting a result" in run.steps[name].error


@pytest.mark.parametrize("executor", ["sequential", "process"])
def test_a_step_out_of_memory_says_what_to_do(store, executor):
    """Under `ulimit -v` or a container's limit an allocation raises a bare MemoryError, and the step's
    error read `MemoryError` and nothing else."""

    @step
    def grow(n: int) -> int:
        raise MemoryError()

    @step
    def fine(n: int) -> int:
        return n

    @pipeline
    def growing():
        return grow(1), fine(2)

    run = growing.run(store=str(store), executor=executor, workers=None if executor == "sequential" else 2)
    assert run.status == "failed" and run.steps["fine"].status == "ran"
    assert run.steps["grow"].error.startswith("MemoryError (if it ran out of memory, give it less data at a time")


def test_a_local_cluster_of_more_workers_than_cpus_says_what_it_costs(monkeypatch):
    """--workers 64 on two CPUs and a map of forty steps started forty-one Dask workers, each a process with
    a nanny, before the first task (a minute, where two ran the map in 4 s), each with 1/41 of the memory."""
    pytest.importorskip("distributed")
    from orchestrator.executors.dask import DaskExecutor
    from orchestrator.spelling import PYTHON

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert DaskExecutor(workers=64, most=41).notice == (
        "--workers 64 starts 41 Dask workers on 2 CPUs: each takes seconds of CPU to start, and each step may "
        "use 1/41 of this machine's memory before its worker is stopped; for steps that compute, --workers 2 "
        "is as fast")
    assert DaskExecutor(workers=64, most=41, spelling=PYTHON).notice.startswith("workers=64 starts 41 Dask")
    assert DaskExecutor(workers=64, most=2).notice is None  # no more workers than CPUs: nothing to say
    assert DaskExecutor(workers=2).notice is None


NESTED_CLASS = '''
from orchestrator import pipeline, step


class Outer:
    class Inner:
        def __init__(self, v):
            self.v = v


@step
def make() -> object:
    return Outer.Inner(3)


@step
def check(x: object) -> bool:
    return isinstance(x, Outer.Inner)


@pipeline
def nested():
    return check(make())
'''


def test_an_instance_of_a_nested_class_has_one_digest_on_every_executor(tmp_path):
    """cloudpickle rebuilt `Outer.Inner` as `Inner` on a worker: another digest on the process pool than in
    the driver, so switching executors re-ran everything downstream, and the stored object loaded as a copy."""
    (tmp_path / "nested.py").write_text(NESTED_CLASS)
    digests = set()
    for executor in ("sequential", "process"):
        run = load_pipeline(str(tmp_path / "nested.py")).run(store=str(tmp_path / f"store-{executor}"),
                                                              executor=executor)
        assert run.status == "succeeded" and run.output() is True, (executor, run.error)
        digests.add(run.steps["make"].outputs["out"])
    assert len(digests) == 1, digests


GENERATED = ["plain", "point", "frozen_point", "split", "pair", "color", "perm", "slotted"]


@pytest.fixture(scope="module", params=["process", pytest.param("dask", marks=pytest.mark.slow)])
def generated_runs(request, tmp_path_factory):
    """generated_methods.py run sequentially and on a parallel executor, each on a store of its own."""
    executor = request.param
    if executor == "dask":
        pytest.importorskip("distributed")
    folder = tmp_path_factory.mktemp(executor)
    pipe = load_pipeline(str(PIPELINES / "generated_methods.py"))
    reference = pipe.run(store=str(folder / "sequential"))
    run = pipe.run(store=str(folder / executor), executor=executor, workers=2)
    assert reference.status == run.status == "succeeded", (reference.error, run.error)
    return pipe, reference, run, folder / executor


def test_instances_of_classes_with_generated_methods_have_one_digest_on_every_executor(generated_runs):
    """Classes whose methods dataclass, enum and namedtuple wrote travel to workers by value. namedtuple's
    `_make`, `_replace`... counted by their bytecode there and by name in the driver: another digest on
    the process pool, so switching executors re-ran the steps that take such a value."""
    _, reference, run, _ = generated_runs
    assert {n: run.steps[n].outputs for n in GENERATED} == {n: reference.steps[n].outputs for n in GENERATED}
    assert run.steps["check"].key == reference.steps["check"].key


def test_instances_a_worker_made_of_classes_with_generated_methods_load_as_the_class_defined(generated_runs):
    """A slotted dataclass came to a worker without its slots, so the instance the worker stored held a
    `__dict__` that the class the pipeline file defines cannot take: it failed to load in the driver
    (`run.output()`, `orch.load`) and in a later run of the steps that take it."""
    pipe, reference, run, store = generated_runs
    every = [reference.steps[n].output().__class__.__qualname__ for n in GENERATED]
    assert run.output() == {"tag": "a", "same": every}
    for name in GENERATED:  # what a worker stored, loaded here as the class the driver defined
        mine, theirs = reference.steps[name].output(), run.steps[name].output()
        assert type(theirs) is type(mine) and theirs == mine, name
    again = pipe.run(store=str(store), tag="b")  # `check` runs here, on what the workers stored
    assert again.status == "succeeded", again.error
    assert [again.steps[n].status for n in GENERATED] == ["cached"] * len(GENERATED)
    assert again.output() == {"tag": "b", "same": every}


@pytest.mark.parametrize("exits", [False, True], ids=["raises", "exits"])
@pytest.mark.parametrize("executor", ["process", pytest.param("dask", marks=pytest.mark.slow)])
def test_an_argument_a_worker_cannot_unpickle_fails_its_step_saying_so(tmp_path, executor, exits):
    """The worker died of it, and the attempt read "killed by SIGKILL, as the out-of-memory killer kills";
    a SystemExit from it hung a Dask run (each replacement worker died of the task again)."""
    if executor == "dask":
        pytest.importorskip("distributed")
    run = _run("unrebuildable.py", tmp_path / "store", executor, exits=exits)
    assert run.status == "failed"
    error = run.steps["use"].error
    kind = "SystemExit" if exits else "RuntimeError"
    assert error.startswith(f"{kind}: its arguments could not be unpickled in the worker: cannot rebuild "
                            "Unrebuildable here"), error
    assert "WorkerDied" not in error and "SIGKILL" not in error


@pytest.mark.parametrize("executor", ["process", "dask"])
def test_more_workers_than_this_machine_holds_is_refused_before_anything_starts(orch, calls, executor):
    """`--workers 99999999999999999999` (a typo) passed the check and a LocalCluster of 2**63 workers grew the
    driver to all the machine's memory, until the out-of-memory killer ended it."""
    from orchestrator.executors import local_worker_limit

    limit = local_worker_limit()
    bad = orch("run", "edits.py", "--executor", executor, "--workers", "99999999999999999999")
    assert bad.returncode == 2 and not calls.ran(), bad.stderr
    assert bad.stderr.startswith(f"error: --workers 99999999999999999999 is more worker processes than this "
                                 f"machine holds (at most {limit}: "), bad.stderr
    assert len(bad.stderr.splitlines()) == 1 and "Traceback" not in bad.stderr
    assert orch("run", "edits.py", "--executor", executor, "--workers", str(limit + 1)).returncode == 2
    assert 4 * (os.cpu_count() or 1) <= limit


def test_ctrl_c_reaching_a_pool_worker_still_starting_python_is_dropped_not_a_traceback():
    """Ctrl-C reaches the whole process group; a pool worker still importing (before it ignores SIGINT) died
    of it with a `KeyboardInterrupt` traceback on the terminal. It starts with SIGINT held until then."""
    from orchestrator.executors.process import ProcessExecutor
    from orchestrator.executors.worker import READY

    pool = ProcessExecutor(1)
    worker = pool._spawn()
    try:
        os.kill(worker.process.pid, signal.SIGINT)  # at once: the worker is still starting Python
        assert worker.conn.poll(60), "the worker never said it was ready"
        assert worker.conn.recv_bytes() == READY and worker.process.is_alive()
    finally:
        worker.conn.close()
        worker.process.join(10)
        if worker.process.is_alive():
            worker.process.kill()
