"""A run killed with SIGKILL loses only the running step; the store stays sound."""

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

from .conftest import wait_for


def _start(orch, *args):
    return subprocess.Popen([sys.executable, "-m", "orchestrator", "--store", str(orch.store), "run", *args],
                            cwd=orch.cwd, env=orch.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _recorded_running(store: Path, step: str = "wait") -> bool:
    """Whether the database holds ``step``'s row as running, with its inputs: committed, what a kill leaves.

    A kill before that commit (the commit watcher's, within 0.25 s of the step starting) would
    find the step not yet recorded; the tests kill a step that is known to be recorded.
    """
    import sqlite3

    database = store / "metadata.db"
    if not database.exists():
        return False
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        return conn.execute(
            "SELECT 1 FROM steps s JOIN edges e ON e.run_id=s.run_id AND e.node=s.node AND e.direction='in' "
            "WHERE s.step=? AND s.status='running'", (step,)).fetchone() is not None
    except sqlite3.OperationalError:  # the schema is being made
        return False
    finally:
        conn.close()


@pytest.mark.slow
def test_kill_during_step_then_resume(orch, calls):
    proc = _start(orch, "slow.py")
    wait_for(lambda: _recorded_running(orch.store))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    runs = json.loads(orch("runs", "--json").stdout)
    assert runs[0]["status"] == "interrupted"
    shown = json.loads(orch("show", runs[0]["run_id"], "--json").stdout)
    statuses = {s["name"]: s["status"] for s in shown["steps"]}
    assert statuses == {"produce": "ran", "wait": "interrupted"}
    assert orch("cache", "verify").returncode == 0
    calls.clear()
    resumed = orch("run", "slow.py", "-p", "seconds=0")
    assert resumed.returncode == 0, resumed.stderr
    assert calls.ran() == {"wait"}


def test_a_step_killed_while_running_keeps_the_inputs_it_was_reading(orch, calls):
    """`orch lineage RUN:wait` of a killed run showed the step alone, and `orch show --json` its inputs as
    []: "which data was it training on when it died?" had an answer for Ctrl-C and none for SIGKILL."""
    proc = _start(orch, "slow.py", "-p", "n=1000")
    wait_for(lambda: _recorded_running(orch.store))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    shown = json.loads(orch("show", "latest", "--json").stdout)
    steps = {s["name"]: s for s in shown["steps"]}
    assert steps["wait"]["status"] == "interrupted"
    made = steps["produce"]["outputs"][0]["hash"]
    assert [(i["name"], i["hash"]) for i in steps["wait"]["inputs"]] == [("data", made)]
    up = json.loads(orch("lineage", f"{shown['run_id']}:wait", "--format", "json").stdout)
    assert {n["id"] for n in up["nodes"]} >= {f"step:{shown['run_id']}:produce"}
    down = orch("lineage", made, "--downstream")
    assert f"read by: wait (run {shown['run_id']}, interrupted)" in down.stdout, down.stdout


@pytest.mark.slow
def test_kill_at_random_moments_never_leaves_a_readable_partial_object(orch, calls, store):
    import random

    rng = random.Random(7)
    for i in range(4):
        proc = _start(orch, "slow.py", "-p", f"n={30_000_000 + i}", "-p", "seconds=0")
        time.sleep(rng.uniform(0.2, 1.2))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        objects = store / "objects"
        if objects.exists():
            verify = orch("cache", "verify")
            assert verify.returncode == 0, verify.stdout
    calls.clear()
    final = orch("run", "slow.py", "-p", "n=30000003", "-p", "seconds=0")
    assert final.returncode == 0, final.stderr
    assert orch("cache", "verify").returncode == 0


@pytest.mark.slow
def test_gc_during_a_run_removes_nothing_it_uses(orch, calls):
    assert orch("run", "slow.py", "-p", "n=5000000", "-p", "seconds=0").returncode == 0
    time.sleep(1.5)  # gc spares what was written within a second of a running run's start
    proc = _start(orch, "slow.py", "-p", "n=6000000", "-p", "seconds=2")
    wait_for(lambda: calls.counts()["wait"] >= 2)
    gc = orch("cache", "gc", "--keep-last", "0")
    assert gc.returncode == 0, gc.stderr
    assert "removed 2 artifacts" in gc.stdout  # only the first run's outputs (5 MB of bytes, an int)
    assert proc.wait(timeout=60) == 0
    assert orch("cache", "verify").returncode == 0
    calls.clear()
    again = orch("run", "slow.py", "-p", "n=6000000", "-p", "seconds=2")
    assert again.returncode == 0 and calls.ran() == set()


@pytest.mark.parametrize("second", [signal.SIGTERM, signal.SIGINT], ids=["then-sigterm", "then-ctrl-c"])
def test_a_second_stop_signal_after_the_interrupted_run_is_recorded_still_exits_130(orch, calls, second):
    """Ctrl-C, then a SIGTERM (or Ctrl-C) 50 ms later, as a job runner or an impatient user sends: it landed after
    the run was recorded and the handlers given back, and orch died of it (-15, -2) instead of exiting 130."""
    for pause in (0.05, 0.15, 0.3):
        proc = _start(orch, "slow.py", "-p", "n=1000")
        wait_for(lambda: "wait" in calls.ran())
        proc.send_signal(signal.SIGINT)
        time.sleep(pause)
        if proc.poll() is None:
            proc.send_signal(second)
        assert proc.wait(timeout=30) == 130, pause
        calls.clear()


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["sequential", "process", "dask"])
def test_ctrl_c_records_interrupted_and_resumes(orch, calls, executor):
    proc = _start(orch, "slow.py", "-p", "n=1000", "--executor", executor, "--workers", "1")
    wait_for(lambda: "wait" in calls.ran())
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 130
    runs = json.loads(orch("runs", "--json").stdout)
    assert runs[0]["status"] == "interrupted"
    shown = json.loads(orch("show", runs[0]["run_id"], "--json").stdout)
    assert {s["name"]: s["status"] for s in shown["steps"]} == {"produce": "ran", "wait": "interrupted"}
    calls.clear()
    resumed = orch("run", "slow.py", "-p", "n=1000", "-p", "seconds=0", "--executor", executor)
    assert resumed.returncode == 0, resumed.stderr
    assert calls.ran() == {"wait"}


@pytest.mark.slow
def test_a_step_only_queued_on_dask_when_interrupted_is_not_shown_as_interrupted(orch, calls, project):
    """Dask keeps twice its threads submitted: a step waiting behind another never ran, as on other executors."""
    (project / "queued.py").write_text(
        "import time\nfrom recorder import record\nfrom orchestrator import pipeline, step\n\n"
        "@step\ndef hold(i: int, seconds: float) -> int:\n    record(f'hold{i}')\n    time.sleep(seconds)\n"
        "    return i\n\n@pipeline\ndef queued(seconds: float = 60.0):\n"
        "    return [hold(i, seconds) for i in range(2)]\n")
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "--store", str(orch.store), "run", "queued.py",
                             "--executor", "dask", "--workers", "1"],
                            cwd=orch.cwd, env=orch.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: calls.ran() == {"hold0"})
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert calls.ran() == {"hold0"}  # the second one was queued on the only worker, behind the first
    assert "interrupted (1 interrupted)" in stderr and "hold_2  interrupted" not in stderr
    shown = json.loads(orch("show", "latest", "--json").stdout)
    assert [(s["name"], s["status"], s["attempts"]) for s in shown["steps"]] == [("hold", "interrupted", 1)]
    assert "hold_2" not in orch("show", "latest").stdout
    calls.clear()
    resumed = orch("run", "queued.py", "-p", "seconds=0", "--executor", "dask", "--workers", "1")
    assert resumed.returncode == 0, resumed.stderr
    assert calls.ran() == {"hold0", "hold1"}


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the cluster's processes are found from /proc")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_run_stopped_while_its_local_dask_cluster_starts_stops_in_one_line(orch, calls, signum):
    """Ctrl-C as the LocalCluster's workers were starting: Dask's tracebacks followed the summary
    (`AssertionError: Status.init` in an atexit callback, `Nanny failed to start`, a worker's
    `KeyboardInterrupt`), and the step that had not started was shown interrupted, with 1 attempt."""
    pytest.importorskip("distributed")
    # A session of its own: Ctrl-C in a terminal reaches the whole process group, workers included.
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "--store", str(orch.store), "run", "slow.py",
                             "-p", "n=1000", "--executor", "dask", "--workers", "2"],
                            cwd=orch.cwd, env=orch.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    workers: set[int] = set()

    def starting() -> bool:
        """Whether a worker process is being started (Python and Dask being imported)."""
        workers.update(pid for pid in _children(proc.pid) if b"spawn_main" in _command_line(pid))
        return bool(workers)

    try:
        wait_for(starting)
        if signum == signal.SIGINT:
            os.killpg(proc.pid, signum)
        else:
            proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 128 + signum, stderr
    assert "Traceback" not in stderr and "Exception" not in stderr and "Error" not in stderr, stderr
    assert calls.ran() == set()
    shown = json.loads(orch("show", "latest", "--json").stdout)
    assert shown["status"] == "interrupted" and shown["steps"] == []  # no step had started
    wait_for(lambda: not any(_alive(pid) for pid in workers), timeout=10)


def _ctrl_c_dask_run(orch, target: list[str], ready) -> None:  # type: ignore[no-untyped-def]
    """``orch run TARGET --executor dask --workers 1``, Ctrl-C once ``ready(proc)`` returns; it must exit 130."""
    pytest.importorskip("distributed")
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "--store", str(orch.store), "run", *target,
                             "--executor", "dask", "--workers", "1"],
                            cwd=orch.cwd, env=orch.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        ready(proc)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, stderr


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the cluster's processes are found from /proc")
def test_a_step_interrupted_on_dask_is_timed_from_when_its_worker_started_it(orch, calls):
    """A timed step stopped by Ctrl-C was charged the LocalCluster's start (7.7 s where it ran 3 s): its
    time counted from when the run loop took it up, before its submit started the cluster."""
    from orchestrator.context import Context

    began = Path(f"{calls.path}.pid")  # written as the step begins, in its child
    starting: list[float] = []

    def ready(proc: subprocess.Popen[str]) -> None:
        wait_for(lambda: any(b"spawn_main" in _command_line(pid) for pid in _children(proc.pid)))
        starting.append(time.time())  # the worker is importing Python and Dask: no step can run yet
        wait_for(lambda: began.exists() and began.read_text())

    _ctrl_c_dask_run(orch, ["timed.py:waiting"], ready)
    worker_starting = starting[0]
    lineage = Context.open(orch.store).lineage
    run_id = lineage.runs(limit=1)[0]["run_id"]
    [step] = lineage.steps(run_id)
    [attempt] = lineage.attempts(run_id, "waits")
    assert (step["status"], attempt["status"]) == ("interrupted", "interrupted")
    assert worker_starting < step["started"] <= began.stat().st_mtime, (worker_starting, step, began.stat())
    assert worker_starting < attempt["started"] <= began.stat().st_mtime


@pytest.mark.slow
def test_a_step_interrupted_after_waiting_on_its_dask_worker_is_timed_from_when_it_began(orch, calls):
    """Queued behind another step on the only worker, then stopped while it ran: not charged the wait."""
    from orchestrator.context import Context

    def ready(proc: subprocess.Popen[str]) -> None:
        wait_for(lambda: calls.ran() == {"branch0", "branch1"})  # the second began behind the first
        time.sleep(2.5)  # the first's result reaches the run (it has 6 s to, on a busy machine too)

    _ctrl_c_dask_run(orch, ["parallel.py:parallel", "-p", "n=2", "-p", "seconds=6"], ready)
    lineage = Context.open(orch.store).lineage
    run_id = lineage.runs(limit=1)[0]["run_id"]
    steps = {s["node"]: s for s in lineage.steps(run_id)}
    assert (steps["branch"]["status"], steps["branch_2"]["status"]) == ("ran", "interrupted")
    # The second began as the first ended, not when it was sent 6 s before: the two times come from
    # different clocks of the cluster (when the task began on the worker, when the attempt ended inside
    # it), which on a loaded machine (the suite on two workers) disagree by up to a tenth of a second.
    [first], [second] = lineage.attempts(run_id, "branch"), lineage.attempts(run_id, "branch_2")
    assert second["started"] >= first["ended"] - 0.5 and steps["branch_2"]["started"] == second["started"]


@pytest.mark.slow
def test_sigterm_stops_a_process_pool_run_as_ctrl_c_does(orch, calls):
    """`timeout`, a cancelled CI job or `docker stop` send SIGTERM: the worker must not run on."""
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "--store", str(orch.store), "run", "slow.py",
                             "-p", "n=1000", "--executor", "process", "--workers", "1"],
                            cwd=orch.cwd, env=orch.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: "wait" in calls.ran())
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)  # stderr closes only once the worker holding it is gone too
    assert proc.returncode == 143, stderr
    assert "Traceback" not in stderr and "terminated (SIGTERM): finished steps are kept" in stderr
    shown = json.loads(orch("show", "latest", "--json").stdout)
    assert {s["name"]: s["status"] for s in shown["steps"]} == {"produce": "ran", "wait": "interrupted"}


def test_sigterm_to_a_process_a_step_forked_ends_only_that_process(orch):
    """As `multiprocessing.Pool.terminate()` does to its workers: the child must not act as `orch run`."""
    from orchestrator.hashing import hash_value

    result = orch("run", "forking.py")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "terminated" not in result.stderr, result.stderr
    shown = json.loads(orch("show", "latest", "--json").stdout)
    assert shown["status"] == "succeeded"
    assert shown["outputs"] == hash_value(-signal.SIGTERM)  # the child died of SIGTERM


def _children(pid: int) -> set[int]:
    """Pids of the live, not yet reaped children of ``pid`` (Linux /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[1]) == pid:
            found.add(int(entry.name))
    return found


def _command_line(pid: int) -> bytes:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes()
    except OSError:
        return b""


def _alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the kernel kills them on Linux only")
def test_pool_workers_die_with_a_killed_driver(orch, calls):
    """A SIGKILLed `orch run` cannot stop its workers itself: a step left running in one would
    hold its CPU, memory or GPU to the end while the run is already shown interrupted."""
    proc = _start(orch, "slow.py", "-p", "n=1000", "--executor", "process", "--workers", "2")
    wait_for(lambda: "wait" in calls.ran())
    workers = _children(proc.pid)
    assert workers
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    wait_for(lambda: not any(_alive(pid) for pid in workers), timeout=10)
    runs = json.loads(orch("runs", "--json").stdout)
    assert runs[0]["status"] == "interrupted"


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a process tree is found from /proc")
@pytest.mark.parametrize(("executor", "signum"), [("process", signal.SIGINT), ("dask", signal.SIGINT),
                                                  ("dask", signal.SIGTERM)],
                         ids=["process-SIGINT", "dask-SIGINT", "dask-SIGTERM"])
def test_a_stopped_run_stops_the_programs_its_steps_started(orch, calls, executor, signum):
    """`subprocess.run(["train.sh"])` in a step, timed or not: on the Dask LocalCluster Ctrl-C and SIGTERM
    killed the workers alone, and the programs went on running, orphaned, after the run was interrupted."""
    if executor == "dask":
        pytest.importorskip("distributed")
    _stop_a_run_of_programs(orch, calls, ["programs.py", "--executor", executor, "--workers", "2"],
                            ("timed", "untimed"), signum, whole_group=False)
    shown = json.loads(orch("show", "latest", "--json").stdout)
    assert {s["name"]: s["status"] for s in shown["steps"]} == {"timed_program": "interrupted",
                                                                 "untimed_program": "interrupted"}


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_stopped_pool_run_stops_the_programs_of_every_workers_step(orch, calls, signum):
    """With three workers for three steps, one step's `subprocess.Popen` program outlived Ctrl-C every time."""
    _stop_a_run_of_programs(orch, calls, ["many_programs.py", "--executor", "process", "--workers", "3"], "abc",
                            signum, whole_group=True)


def _stop_a_run_of_programs(orch, calls, args: list[str], names, signum: int, whole_group: bool) -> None:
    """Run ``args``, whose steps each start a program and write its pid; stop the run once all have started.

    Asserts that ``orch`` exits as the signal says and that every program ended with it.
    ``whole_group``: the signal goes to the process group, as a terminal's Ctrl-C does.
    """
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "--store", str(orch.store), "run", *args],
                            cwd=orch.cwd, env=orch.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=whole_group)
    pid_files = [Path(f"{calls.path}.{name}.pid") for name in names]
    programs: list[int] = []
    try:
        wait_for(lambda: all(f.exists() and f.read_text() for f in pid_files))
        programs = [int(f.read_text()) for f in pid_files]
        if whole_group:
            os.killpg(proc.pid, signum)
        else:
            proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 128 + signum, stderr
        wait_for(lambda: not any(_alive(pid) for pid in programs), timeout=10)
    finally:
        for pid in programs:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _orch_logs(capsys, store: str, ref: str, *args: str):
    """``orch logs REF ARGS`` in this process: (exit code, captured stdout and stderr)."""
    from orchestrator.cli import main

    try:
        main(["--store", store, "logs", ref, *args])
    except SystemExit as exited:
        return exited.code, capsys.readouterr()
    return 0, capsys.readouterr()


@pytest.mark.slow
def test_two_concurrent_runs_compute_a_shared_step_once(orch, calls):
    first = _start(orch, "slow.py", "-p", "n=3000000", "-p", "seconds=1.5")
    second = _start(orch, "slow.py", "-p", "n=3000000", "-p", "seconds=1.5", "--executor", "process")
    assert first.wait(timeout=60) == 0
    assert second.wait(timeout=60) == 0
    assert calls.counts() == {"produce": 1, "wait": 1}
    runs = json.loads(orch("runs", "--json").stdout)
    assert [r["status"] for r in runs] == ["succeeded", "succeeded"]
    assert orch("cache", "verify").returncode == 0


def test_logs_of_an_interrupted_attempt_show_what_it_printed(tmp_path, capsys):
    """A Ctrl-C'd attempt was made (attempts 1): `orch logs` shows what it printed until then, which explains a hang."""
    from orchestrator import pipeline, step

    @step
    def stuck() -> int:
        print("loading the big file")
        raise KeyboardInterrupt

    @pipeline
    def hangs():
        return stuck()

    store = str(tmp_path / "store")
    run_id = _interrupted_run(hangs, store)

    def logs(*args):
        return _orch_logs(capsys, store, f"{run_id}:stuck", *args)

    code, out = logs()
    assert code == 0 and "did not run" not in out.out
    assert out.out.splitlines()[:3] == ["=== stuck attempt 1 (interrupted) ===", "--- stdout ---",
                                        "loading the big file"]
    assert logs("--attempt", "1")[1].out == out.out
    code, out = logs("--attempt", "2")
    assert code == 2 and "has no attempt 2; its attempts are 1" in out.err


@pytest.mark.parametrize("status", ["running", "interrupted"])
def test_logs_of_a_step_in_its_first_attempt_say_nothing_is_recorded_yet(tmp_path, capsys, status):
    """A step's row counts attempts as they end: one still running, or whose `orch` was killed in
    its first attempt, says 0. `orch logs` must not call that a step that did not run."""
    import sqlite3

    from orchestrator import pipeline, step

    @step
    def stuck() -> int:
        raise KeyboardInterrupt

    @pipeline
    def hangs():
        return stuck()

    store = str(tmp_path / "store")
    run_id = _interrupted_run(hangs, store)
    with sqlite3.connect(tmp_path / "store" / "metadata.db") as db:  # what a running or killed attempt leaves
        db.execute("DELETE FROM attempts WHERE run_id=?", (run_id,))
        db.execute("UPDATE steps SET attempts=0, status=? WHERE run_id=?", (status, run_id))
        db.execute("UPDATE runs SET status=? WHERE run_id=?", (status, run_id))  # this process: alive

    def logs(*args):
        return _orch_logs(capsys, store, f"{run_id}:stuck", *args)

    code, out = logs()
    assert code == 0 and "did not run" not in out.out
    assert out.out.startswith(f"=== stuck attempt 1 ({status}) ===\n--- nothing recorded: ")
    assert logs("--attempt", "1")[1].out == out.out
    code, out = logs("--attempt", "2")
    assert code == 2 and "has no attempt 2; it made 1" in out.err


def test_a_dead_run_ends_at_its_last_record_not_when_someone_looks(tmp_path):
    """A killed `orch` cannot record its end: an `orch runs` a day later must not say it took a day."""
    import sqlite3

    from orchestrator import pipeline, step
    from orchestrator.context import Context

    @step
    def first(x: int) -> int:
        return x

    @step
    def second(x: int) -> int:
        return x

    @pipeline
    def two(x: int = 1):
        return second(first(x))

    store = str(tmp_path / "store")
    run_id = two.run(store=store).id
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    with sqlite3.connect(tmp_path / "store" / "metadata.db") as db:  # what a SIGKILL in `second` leaves
        db.execute("UPDATE runs SET status='running', started=1000, ended=NULL, pid=? WHERE run_id=?",
                   (int(dead.stdout), run_id))
        db.execute("UPDATE steps SET started=1001, ended=1002 WHERE run_id=? AND node='first'", (run_id,))
        db.execute("UPDATE steps SET status='running', started=1003, ended=NULL WHERE run_id=? AND node='second'",
                   (run_id,))
        db.execute("DELETE FROM attempts WHERE run_id=?", (run_id,))
    lineage = Context.open(store).lineage
    assert lineage.mark_dead_runs() == [run_id]
    run = lineage.run(run_id)
    assert run is not None and (run["status"], run["ended"]) == ("interrupted", 1003)
    # Why, as `orch runs --json` and `orch show` say it for an interrupted run (it was null).
    assert run["error"] == "the run's process died" == lineage.step_row(run_id, "second")["error"]
    # Its reason stays why it started, as for a step stopped by Ctrl-C or SIGTERM (it was overwritten).
    assert lineage.step_row(run_id, "second")["reason"] != "the run's process died"
    # in its first attempt, as `orch logs` says (`attempt 1 (interrupted)`): `orch show` said none
    assert lineage.step_row(run_id, "second")["attempts"] == 1


def test_a_dead_run_ends_at_its_last_heartbeat_when_that_is_later_than_its_records(tmp_path):
    """Killed 25 minutes into a step, a run said `took 2 s` (its last record, the step's start): the file
    it touches each minute while it lasts is a later sign of life."""
    import sqlite3

    from orchestrator import pipeline, step
    from orchestrator.context import Context
    from orchestrator.run_liveness import alive_file

    @step
    def train(x: int) -> int:
        return x

    @pipeline
    def one(x: int = 1):
        return train(x)

    store = str(tmp_path / "store")
    run_id = one.run(store=store).id
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    database = tmp_path / "store" / "metadata.db"
    with sqlite3.connect(database) as db:  # what a SIGKILL in `train` leaves
        db.execute("UPDATE runs SET status='running', started=1000, ended=NULL, pid=? WHERE run_id=?",
                   (int(dead.stdout), run_id))
        db.execute("UPDATE steps SET status='running', started=1002, ended=NULL WHERE run_id=?", (run_id,))
        db.execute("DELETE FROM attempts WHERE run_id=?", (run_id,))
    alive = alive_file(database, run_id)
    alive.parent.mkdir(exist_ok=True)
    alive.touch()
    os.utime(alive, (2500, 2500))  # its last touch, 25 minutes after it started
    lineage = Context.open(store).lineage
    assert lineage.mark_dead_runs() == [run_id]
    run = lineage.run(run_id)
    assert run is not None and (run["status"], run["ended"]) == ("interrupted", 2500)
    assert not alive.exists()


def test_an_interrupted_retry_keeps_the_attempts_before_it(tmp_path):
    from orchestrator import pipeline, step
    from orchestrator.context import Context

    tries = []

    @step(retries=2, retry_delay=0)
    def flaky() -> int:
        tries.append(1)
        if len(tries) == 1:
            raise ConnectionError("service down")
        raise KeyboardInterrupt

    @pipeline
    def retried():
        return flaky()

    store = str(tmp_path / "store")
    run_id = _interrupted_run(retried, store)
    attempts = Context.open(store).lineage.attempts(run_id, "flaky")
    assert [(a["attempt"], a["status"]) for a in attempts] == [(1, "failed"), (2, "interrupted")]
    assert "ConnectionError: service down" in attempts[0]["error"]


def test_a_retry_only_queued_when_interrupted_leaves_the_step_at_its_earlier_attempts(tmp_path, monkeypatch):
    """An executor that queues (Dask) says which attempts never began: they are no attempt of their step."""
    import threading
    from concurrent.futures import Future

    import orchestrator.runner as runner
    from orchestrator import pipeline, step
    from orchestrator.context import Context
    from orchestrator.task import run_task

    class Queueing:
        """Runs each attempt at once, but leaves flaky's retry queued and then the user presses Ctrl-C."""

        name, capacity = "queueing", 2

        def submit(self, spec):
            future = Future()
            if spec.attempt == 2:  # Ctrl-C while the run loop waits for it
                main = threading.main_thread().ident
                threading.Timer(0.05, signal.pthread_kill, (main, signal.SIGINT)).start()
            else:
                future.set_result(run_task(spec))
            return future

        def shutdown(self, cancel=False):
            pass

        def unstarted(self):
            return {("flaky", 2)}

        def stopped(self):
            return {}

    monkeypatch.setattr(runner, "make_executor", lambda *args, **kwargs: Queueing())

    @step(retries=1, retry_delay=0)
    def flaky() -> int:
        raise ConnectionError("service down")

    @pipeline
    def retried():
        return flaky()

    store = str(tmp_path / "store")
    run_id = _interrupted_run(retried, store)
    lineage = Context.open(store).lineage
    assert [(s["node"], s["status"], s["attempts"]) for s in lineage.steps(run_id)] == [("flaky", "interrupted", 1)]
    assert [(a["attempt"], a["status"]) for a in lineage.attempts(run_id, "flaky")] == [(1, "failed")]


class _PressedTwice:
    """A pool whose one step runs until Ctrl-C; as it is shut down, a second stop signal arrives (a terminal's
    Ctrl-C pressed twice, 10 ms apart), the way the second one reached the process pool while it killed its workers."""

    name, capacity = "pressed-twice", 1

    def __init__(self, second: int) -> None:
        self.second = second
        self.shut_down = False

    def submit(self, spec):
        from concurrent.futures import Future

        main = threading.main_thread().ident
        threading.Timer(0.05, signal.pthread_kill, (main, signal.SIGINT)).start()  # the first Ctrl-C
        return Future()  # the step runs until then

    def shutdown(self, cancel=False):
        if cancel and not self.shut_down:
            os.kill(os.getpid(), self.second)
            time.sleep(0.1)  # killing the workers takes a while: the signal arrives meanwhile
            self.shut_down = True

    def unstarted(self):
        return set()

    def stopped(self):
        from orchestrator.task import TaskResult

        now = time.time()
        return {("train", 1): TaskResult(node="train", attempt=1, started=now - 1, ended=now, stdout="epoch 0\n")}


@pytest.mark.parametrize(("where", "second"), [("python", signal.SIGINT), ("orch run", signal.SIGINT),
                                               ("orch run", signal.SIGTERM)],
                         ids=["python-ctrl-c", "orch-run-ctrl-c", "orch-run-sigterm"])
def test_a_second_stop_signal_while_a_run_stops_does_not_cut_its_cleanup_short(tmp_path, monkeypatch, where,
                                                                                second):
    """Ctrl-C pressed twice on a process-pool run: the second one, raised inside the first one's cleanup, cut
    it short. The step stayed `running` for good, the summary said 'no step started', and a pool worker the
    cleanup had stopped (SIGSTOP) to kill was left stopped, so that `orch` hung at its exit."""
    import orchestrator.runner as runner
    from orchestrator import pipeline, step
    from orchestrator.context import Context
    from orchestrator.stop_signals import signals_as_interrupt

    pool = _PressedTwice(second)
    monkeypatch.setattr(runner, "make_executor", lambda *args, **kwargs: pool)

    @step
    def train() -> int:
        return 1

    @pipeline
    def trains():
        return train()

    store = str(tmp_path / "store")
    if where == "orch run":
        with signals_as_interrupt():
            run_id = _interrupted_run(trains, store)
    else:
        run_id = _interrupted_run(trains, store)
    assert pool.shut_down
    lineage = Context.open(store).lineage
    assert lineage.runs(limit=1)[0]["status"] == "interrupted"
    assert [(s["node"], s["status"]) for s in lineage.steps(run_id)] == [("train", "interrupted")]
    [attempt] = lineage.attempts(run_id, "train")
    assert (attempt["status"], attempt["stdout"]) == ("interrupted", "epoch 0\n")


def test_an_interrupt_in_python_names_the_run_it_recorded(tmp_path):
    """A notebook's Ctrl-C never gets the Run back: the KeyboardInterrupt says which run it was."""
    import orchestrator
    from orchestrator import pipeline, step

    @step
    def stuck() -> int:
        raise KeyboardInterrupt

    @pipeline
    def hangs():
        return stuck()

    store = str(tmp_path / "store")
    with pytest.raises(KeyboardInterrupt) as raised:
        hangs.run(store=store)
    run = orchestrator.get_run("latest", store=store)
    assert run.status == "interrupted"
    assert raised.value.__notes__ == [
        f"orchestrator: run {run.id} of pipeline 'hangs' is recorded as interrupted; the steps that finished are "
        f"kept, and running again resumes from the cache. orchestrator.get_run('{run.id}') shows it."]


@pytest.mark.parametrize("then", ["returns", "raises its own error"])
def test_a_step_that_swallows_ctrl_c_in_python_stops_the_run_too(tmp_path, then):
    """`pipeline.run()` from a script: a step that caught Ctrl-C and returned let the run succeed and cached its
    half-done result; one that raised an error of its own let the independent steps run on."""
    import orchestrator
    from orchestrator import pipeline, step

    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT is not Python's own KeyboardInterrupt in this process")

    @step
    def train() -> int:
        done = 0
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
            done = 100
        except KeyboardInterrupt:
            if then != "returns":
                raise RuntimeError("training cancelled") from None
        return done

    @step
    def other() -> int:
        return 2

    @pipeline
    def swallows():
        return train(), other()

    store = str(tmp_path / "store")
    with pytest.raises(KeyboardInterrupt):
        swallows.run(store=store)
    run = orchestrator.get_run("latest", store=store)
    assert run.status == "interrupted"
    assert run.steps["train"].status == "interrupted"
    assert "other" not in run.steps or run.steps["other"].status != "ran"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # given back


def _interrupted_run(pipeline, store: str) -> str:
    """Run ``pipeline``, which a step stops with KeyboardInterrupt (Ctrl-C), and return the run's id."""
    from orchestrator.context import Context

    with pytest.raises(KeyboardInterrupt):
        pipeline.run(store=store)
    return Context.open(store).lineage.runs(limit=1)[0]["run_id"]


def _orch_run_source(tmp_path, name: str, source: str) -> tuple[str, int]:
    """Write ``source`` as ``name``.py and ``orch run`` it in this process: (the store, the exit code)."""
    from orchestrator.cli import main

    (tmp_path / f"{name}.py").write_text(source)
    store = str(tmp_path / "store")
    with pytest.raises(SystemExit) as exited:
        main(["--store", store, "run", str(tmp_path / f"{name}.py")])
    return store, exited.value.code


def test_steps_stopped_by_sigterm_say_so_not_that_the_user_interrupted_them(tmp_path, capsys):
    """`timeout`, a cancelled CI job or `docker stop`: nobody pressed Ctrl-C, and the records must not say so."""
    from orchestrator import get_run
    from orchestrator.context import Context

    store, code = _orch_run_source(tmp_path, "termed", (
        "import os, signal, time\nfrom orchestrator import pipeline, step\n\n"
        "@step\ndef stop() -> int:\n    os.kill(os.getpid(), signal.SIGTERM)\n    time.sleep(5)\n    return 1\n\n"
        "@pipeline\ndef termed():\n    return stop()\n"))
    assert code == 143
    err = capsys.readouterr().err
    assert "stopped by SIGTERM" in err and "interrupted by the user" not in err
    run = get_run("latest", store=store)
    assert run.steps["stop"].status == "interrupted"
    attempts = Context.open(store).lineage.attempts(run.id, "stop")
    assert [(a["status"], a["error"]) for a in attempts] == [("interrupted", "stopped by SIGTERM")]


def test_orch_show_says_why_an_interrupted_step_stopped_as_the_run_summary_did(tmp_path, capsys):
    """The summary's why is "interrupted by the user"; `orch show` must not say "no earlier result" instead."""
    from orchestrator import get_run
    from orchestrator.cli import main

    store, code = _orch_run_source(tmp_path, "pressed", (
        "import os, signal, time\nfrom orchestrator import pipeline, step\n\n"
        "@step\ndef press() -> int:\n    os.kill(os.getpid(), signal.SIGINT)\n    time.sleep(5)\n    return 1\n\n"
        "@pipeline\ndef pressed():\n    return press()\n"))
    assert code == 130
    captured = capsys.readouterr()
    summary = captured.out + captured.err
    assert re.search(r"press\s+interrupted\s+1\s+.*interrupted by the user", summary), summary
    with pytest.raises(SystemExit):
        main(["--store", store, "show", "latest"])
    shown = capsys.readouterr().out
    assert re.search(r"press\s+interrupted\s+1\s+.*interrupted by the user", shown), shown
    with pytest.raises(SystemExit):
        main(["--store", store, "show", "latest", "--json"])
    step = json.loads(capsys.readouterr().out)["steps"][0]
    # As for a failed step: `reason` is why it started, `error` what stopped it.
    assert (step["status"], step["reason"], step["error"]) == ("interrupted", "no earlier result",
                                                                "interrupted by the user")
    assert get_run("latest", store=store).steps["press"].error == "interrupted by the user"
    assert get_run("latest", store=store).error.startswith("interrupted by the user (details: `orch show ")


def test_ctrl_c_a_step_turns_into_an_error_of_its_own_still_stops_the_run(tmp_path, capsys):
    """A library that catches Ctrl-C and raises its own error: the run stops (130), not one failed step of many."""
    from orchestrator import get_run

    store, code = _orch_run_source(tmp_path, "wrapped", (
        "import os, signal, time\nfrom orchestrator import pipeline, step\n\n"
        "@step(retries=2, retry_delay=0)\ndef call() -> int:\n    try:\n        os.kill(os.getpid(), signal.SIGINT)\n"
        "        time.sleep(5)\n    except KeyboardInterrupt:\n        raise RuntimeError('request cancelled')\n"
        "    return 1\n\n"
        "@step\ndef other() -> int:\n    return 2\n\n"
        "@pipeline\ndef wrapped():\n    return call(), other()\n"))
    err = capsys.readouterr().err
    assert code == 130, err
    run = get_run("latest", store=store)
    assert run.status == "interrupted"
    assert (run.steps["call"].status, run.steps["call"].attempts) == ("interrupted", 1)


@pytest.mark.parametrize(("signum", "code", "why"), [("SIGINT", 130, "interrupted by the user"),
                                                   ("SIGTERM", 143, "stopped by SIGTERM")])
def test_a_step_that_swallows_the_stop_and_returns_still_stops_the_run(tmp_path, capsys, signum, code, why):
    """`except KeyboardInterrupt: save a checkpoint` in a training loop: the run went on, cached the half-trained
    result as the step's, ran the steps after it, and said succeeded (exit 0) to Ctrl-C, `docker stop` or CI."""
    from orchestrator import get_run

    store, exit_code = _orch_run_source(tmp_path, "swallows", (
        "import os, signal, time\nfrom orchestrator import pipeline, step\n\n"
        "@step\ndef train() -> int:\n    done = 0\n    try:\n"
        f"        os.kill(os.getpid(), signal.{signum})\n        time.sleep(5)\n        done = 40\n"
        "    except KeyboardInterrupt:\n        print('caught it, saving a checkpoint')\n    return done\n\n"
        "@step\ndef evaluate(epochs: int) -> int:\n    return epochs\n\n"
        "@pipeline\ndef swallows():\n    return evaluate(train())\n"))
    err = capsys.readouterr().err
    assert exit_code == code, err
    run = get_run("latest", store=store)
    assert run.status == "interrupted"
    assert (run.steps["train"].status, run.steps["train"].error) == ("interrupted", why)
    assert "evaluate" not in run.steps or run.steps["evaluate"].status != "ran"
    assert run.steps["train"].stdout == "caught it, saving a checkpoint\n"
    from orchestrator.cli import main

    with pytest.raises(SystemExit):
        main(["--store", store, "plan", str(tmp_path / "swallows.py")])
    assert re.search(r"train\s+will run", capsys.readouterr().out)  # its half-done result was not cached


def test_a_keyboard_interrupt_a_step_raises_itself_fails_it_under_orch_run_as_on_a_worker(tmp_path, capsys):
    """Nobody pressed Ctrl-C: the step failed (exit 1, as with --executor process), not "interrupted by the user"."""
    from orchestrator import get_run

    store, code = _orch_run_source(tmp_path, "raises", (
        "from orchestrator import pipeline, step\n\n"
        "@step\ndef first() -> int:\n    return 1\n\n"
        "@step\ndef gives_up(x: int) -> int:\n    raise KeyboardInterrupt('the step gave up')\n\n"
        "@step\ndef handles(x: int) -> int:\n    try:\n        raise KeyboardInterrupt\n"
        "    except KeyboardInterrupt:\n        raise RuntimeError('cleaned up') from None\n\n"
        "@pipeline\ndef raises():\n    return gives_up(first()), handles(first())\n"))
    err = capsys.readouterr().err
    assert code == 1, err
    run = get_run("latest", store=store)
    assert run.status == "failed"
    assert run.steps["gives_up"].status == "failed" and run.steps["gives_up"].attempts == 1
    assert "KeyboardInterrupt: the step gave up" in run.steps["gives_up"].error
    assert "interrupted by the user" not in err and "Traceback" not in err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # given back once the run ended


_STOPS_ITSELF = (
    "import os, signal, time\nfrom orchestrator import pipeline, step\n\n"
    "@step\ndef first() -> int:\n    return 1\n\n"
    "@step\ndef stop(x: int) -> int:\n    os.kill(os.getpid(), signal.{signal})\n    time.sleep(5)\n    return x\n\n"
    "@pipeline\ndef stopped():\n    return stop(first())\n")


@pytest.fixture
def sigint_ignored():
    """``orch run ... &`` in a script: a shell without job control starts it with SIGINT ignored."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    yield
    signal.signal(signal.SIGINT, previous)


def test_sigterm_stops_a_run_started_with_sigint_ignored(tmp_path, capsys, sigint_ignored):
    """A job started in the background of a script, then killed: interrupted (143), not a failed step (1)."""
    from orchestrator import get_run

    store, code = _orch_run_source(tmp_path, "stopped", _STOPS_ITSELF.format(signal="SIGTERM"))
    assert code == 143
    assert "terminated (SIGTERM): finished steps are kept" in capsys.readouterr().err
    run = get_run("latest", store=store)
    assert run.status == "interrupted"
    assert (run.steps["stop"].status, run.steps["stop"].error) == ("interrupted", "stopped by SIGTERM")
    # The run's own error, which a job's wrapper reads from orch run --json, was null: it says what stopped it.
    assert run.error == f"stopped by SIGTERM (details: `orch show {run.id}`)"


def test_sighup_stops_a_run_as_sigterm_does(tmp_path, capsys):
    """An SSH session that drops sends SIGHUP: the run is recorded interrupted, exit 129, and resumes."""
    from orchestrator import get_run
    from orchestrator.cli import main

    store, code = _orch_run_source(tmp_path, "stopped", _STOPS_ITSELF.format(signal="SIGHUP"))
    assert code == 129
    assert "terminated (SIGHUP): finished steps are kept" in capsys.readouterr().err
    run = get_run("latest", store=store)
    assert run.status == "interrupted"
    assert (run.steps["first"].status, run.steps["stop"].status) == ("ran", "interrupted")
    assert run.steps["stop"].error == "stopped by SIGHUP"
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_DFL  # given back once the run ended
    (tmp_path / "stopped.py").write_text(_STOPS_ITSELF.format(signal="SIGHUP").replace(
        "    os.kill(os.getpid(), signal.SIGHUP)\n    time.sleep(5)\n", ""))
    with pytest.raises(SystemExit) as exited:
        main(["--store", store, "run", str(tmp_path / "stopped.py")])
    assert exited.value.code == 0
    assert get_run("latest", store=store).steps["first"].status == "cached"


def test_a_run_under_nohup_is_not_stopped_by_sighup(tmp_path, capsys):
    """`nohup orch run ...` ignores SIGHUP so that the job outlives its terminal: orch keeps it ignored."""
    from orchestrator import get_run

    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        store, code = _orch_run_source(tmp_path, "stopped", _STOPS_ITSELF.format(signal="SIGHUP").replace(
            "time.sleep(5)", "time.sleep(0.1)"))
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)
    assert code == 0, capsys.readouterr().err
    assert get_run("latest", store=store).status == "succeeded"


def test_orch_run_json_prints_the_interrupted_run_for_the_jobs_wrapper(tmp_path, capsys):
    """A wrapper reading `orch run --json` gets the run's id and status when a scheduler stopped it too."""
    from orchestrator.cli import main

    (tmp_path / "stopped.py").write_text(_STOPS_ITSELF.format(signal="SIGTERM"))
    with pytest.raises(SystemExit) as exited:
        main(["--store", str(tmp_path / "store"), "run", str(tmp_path / "stopped.py"), "--json"])
    assert exited.value.code == 143
    doc = json.loads(capsys.readouterr().out)
    assert doc["status"] == "interrupted" and len(doc["run_id"]) == 12
    assert {s["name"]: s["status"] for s in doc["steps"]} == {"first": "ran", "stop": "interrupted"}


_ENDS_WELL = ("from orchestrator import pipeline, step\n\n"
              "@step\ndef first() -> int:\n    return 1\n\n"
              "@step\ndef second(x: int) -> int:\n    return x + 1\n\n"
              "@pipeline\ndef ends():\n    return second(first())\n")


@pytest.mark.parametrize("signum, as_json", [(signal.SIGTERM, False), (signal.SIGHUP, True), (signal.SIGINT, False)])
def test_a_stop_signal_as_the_run_ends_exits_as_the_run_is_recorded(tmp_path, capsys, monkeypatch, signum, as_json):
    """SIGTERM while orch run printed the summary of a run recorded succeeded: not "terminated ... resume", 143."""
    import os

    from orchestrator import get_run
    from orchestrator.cli import main
    from orchestrator.report import ConsoleReporter

    printed = ConsoleReporter.run_finished

    def stopped_while_printing(self, *args, **kwargs):
        os.kill(os.getpid(), signum)  # the handler runs at once, in the middle of the summary
        return printed(self, *args, **kwargs)

    monkeypatch.setattr(ConsoleReporter, "run_finished", stopped_while_printing)
    (tmp_path / "ends.py").write_text(_ENDS_WELL)
    store = str(tmp_path / "store")
    with pytest.raises(SystemExit) as exited:
        main(["--store", store, "run", str(tmp_path / "ends.py"), *(["--json"] if as_json else [])])
    captured = capsys.readouterr()
    run = get_run("latest", store=store)
    assert (run.status, exited.value.code) == ("succeeded", 0), captured.err
    name = signal.Signals(signum).name
    assert captured.err.strip().splitlines()[-1] == f"{name} arrived as run {run.id} ended: it is recorded succeeded."
    assert "resume" not in captured.err and "Traceback" not in captured.err
    if as_json:
        assert json.loads(captured.out)["status"] == "succeeded"
    else:
        assert "second" in captured.out + captured.err  # the summary was printed to its end
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # given back once the run ended


def test_a_stop_signal_as_a_nested_run_ends_stops_the_run_around_it(tmp_path, capsys, monkeypatch):
    """A step that runs a pipeline: the signal held while the inner run's end was recorded stops the outer run,
    which is recorded interrupted, and orch run exits as for it (143), not as the inner run is recorded (0)."""
    import os

    from orchestrator import get_run
    from orchestrator.cli import main
    from orchestrator.report import ConsoleReporter

    printed, calls = ConsoleReporter.run_finished, []

    def stopped_while_printing_the_inner_summary(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGTERM)
        return printed(self, *args, **kwargs)

    monkeypatch.setattr(ConsoleReporter, "run_finished", stopped_while_printing_the_inner_summary)
    (tmp_path / "ends.py").write_text(_ENDS_WELL)
    (tmp_path / "outer.py").write_text(
        "import sys\nfrom orchestrator import pipeline, step\n\n"
        "@step\ndef nested(store: str) -> str:\n"
        f"    sys.path.insert(0, {str(tmp_path)!r})\n"
        "    import ends\n    return ends.ends.run(store=store, progress=True).status\n\n"
        "@pipeline\ndef outer(store: str):\n    return nested(store)\n")
    store = str(tmp_path / "store")
    with pytest.raises(SystemExit) as exited:
        main(["--store", store, "run", str(tmp_path / "outer.py"), "-p", f"store={tmp_path / 'inner'}"])
    err = capsys.readouterr().err
    assert exited.value.code == 143, err
    assert "terminated (SIGTERM): finished steps are kept" in err
    assert get_run("latest", store=store).status == "interrupted"
    assert get_run("latest", store=str(tmp_path / "inner")).status == "succeeded"


@pytest.mark.slow
def test_a_run_killed_on_another_host_is_shown_interrupted_once_it_gives_no_sign_of_life(orch, calls):
    """A pod OOM-killed (or a container evicted) left its run `running` for ever in a store the next night's pod
    shares: its process cannot be checked from another host, and `cache gc` spared all written since it began."""
    import os
    import sqlite3

    from orchestrator.run_liveness import STALE, alive_file

    proc = _start(orch, "slow.py")
    wait_for(lambda: _recorded_running(orch.store))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    database = orch.store / "metadata.db"
    with sqlite3.connect(database) as conn:
        conn.execute("UPDATE runs SET host='nightly-28999-x7k2p' WHERE status='running'")
    conn.close()
    run_id = json.loads(orch("runs", "--json").stdout)[0]["run_id"]
    assert json.loads(orch("runs", "--json").stdout)[0]["status"] == "running"  # its last sign of life is recent
    beat = alive_file(database, run_id)
    os.utime(beat, (time.time() - STALE - 60,) * 2)
    runs = json.loads(orch("runs", "--json").stdout)
    assert (runs[0]["run_id"], runs[0]["status"]) == (run_id, "interrupted")
    shown = json.loads(orch("show", run_id, "--json").stdout)
    assert {s["name"]: s["status"] for s in shown["steps"]} == {"produce": "ran", "wait": "interrupted"}
    assert not beat.exists()
    calls.clear()
    assert orch("run", "slow.py", "-p", "seconds=0").returncode == 0
    assert calls.ran() == {"wait"}
    assert not any(beat.parent.iterdir())  # a run that ends takes its file with it


def test_a_sigterm_after_the_run_ended_exits_as_the_run_is_recorded(orch, tmp_path):
    """A SIGTERM once the run was recorded and its summary printed, while orch printed its JSON
    document or Python tore down (a good part of a second with pandas and scikit-learn), took the
    default action: exit 143 for a run whose document said succeeded. It exits 0, saying so once."""
    (orch.cwd / "late.py").write_text(
        "import atexit, os, signal\nfrom orchestrator import pipeline, step\n\n"
        "atexit.register(lambda: os.kill(os.getpid(), signal.SIGTERM))  # as the process exits\n\n"
        "@step\ndef one() -> int:\n    return 1\n\n"
        "@pipeline\ndef late():\n    return one()\n")
    done = subprocess.run([sys.executable, "-m", "orchestrator", "--store", str(orch.store), "run", "late.py",
                           "--json"], cwd=orch.cwd, env=orch.env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["status"] == "succeeded"
    assert f"SIGTERM arrived as run {doc['run_id']} ended: it is recorded succeeded." in done.stderr

    # A second one ends it as before: an exit that hangs (a thread that never ends) can still be stopped.
    (orch.cwd / "late.py").write_text((orch.cwd / "late.py").read_text().replace(
        "atexit.register(", "atexit.register(lambda: os.kill(os.getpid(), signal.SIGTERM))\natexit.register(", 1))
    done = subprocess.run([sys.executable, "-m", "orchestrator", "--store", str(orch.store), "run", "late.py"],
                          cwd=orch.cwd, env=orch.env, capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGTERM, done.stderr


def test_the_text_folder_of_a_timed_step_killed_with_its_run_goes_with_the_next_timed_step(orch, tmp_path):
    """A killed run's attempt folder (what a timed step printed, kept in case it is killed) stayed in
    the temp folder for ever, one per kill; the next process that makes one removes it."""
    temp = tmp_path / "tmpdir"
    temp.mkdir()
    env = {**orch.env, "TMPDIR": str(temp)}
    pid_file = Path(orch.env["ORCH_TEST_LOG"] + ".pid")
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "--store", str(orch.store), "run",
                             "timed.py:waiting"], cwd=orch.cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    wait_for(pid_file.exists)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left = set(temp.glob("orch-attempt-*"))
    assert left  # the killed run's

    subprocess.run([sys.executable, "-m", "orchestrator", "--store", str(orch.store), "run", "timed.py:timed"],
                   cwd=orch.cwd, env=env, capture_output=True, timeout=120)
    assert not left & set(temp.glob("orch-attempt-*"))


_RETRIED = """\
import os
import time
from pathlib import Path

from recorder import record

from orchestrator import pipeline, step


@step(retries=3, retry_delay={delay})
def train(n: int) -> int:
    record("train")
    marker = Path(os.environ["ORCH_TEST_LOG"] + ".train")
    made = int(marker.read_text()) if marker.exists() else 0
    marker.write_text(str(made + 1))
    print("attempt", made + 1, flush=True)
    if made == 0:
        raise ConnectionError("data loader lost its connection")
    time.sleep(60)
    return n


@pipeline
def retried(n: int = 1):
    return train(n)
"""


def _committed_attempts(store: Path) -> tuple[int, list[str]] | None:
    """The step row's attempts and the statuses of the attempts committed for ``train``, as a kill leaves them."""
    import sqlite3

    database = store / "metadata.db"
    if not database.exists():
        return None
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT attempts FROM steps WHERE node='train'").fetchone()
        tries = [s for (s,) in conn.execute("SELECT status FROM attempts WHERE node='train' ORDER BY attempt")]
    except sqlite3.OperationalError:  # the schema is being made
        return None
    finally:
        conn.close()
    return None if row is None else (row[0], tries)


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["sequential", "process"])
@pytest.mark.parametrize(("delay", "made"), [(0.5, 2), (60, 1)], ids=["in-the-retry", "waiting-for-the-retry"])
def test_a_killed_run_keeps_the_failed_attempts_of_a_retried_step(orch, calls, project, executor, delay, made):
    """SIGKILL in a retried step's second attempt (or in the wait before it) lost the first attempt, which had
    failed 10 s before: `orch logs` said `attempt 1 (interrupted)`, nothing recorded, and `orch show` 1 attempt.
    Its failure, traceback and output are committed when it fails, and the row says which attempt runs."""
    (project / "retried.py").write_text(_RETRIED.format(delay=delay))
    proc = _start(orch, "retried.py", "--executor", executor, "--workers", "1")
    try:
        wait_for(lambda: calls.counts()["train"] >= made)
        # The commit watcher has a quarter second to write what a kill must find; a slow machine gets more.
        deadline = time.time() + 10
        while _committed_attempts(orch.store) != (made, ["failed"]) and time.time() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    shown = json.loads(orch("show", "latest", "--json").stdout)
    assert shown["status"] == "interrupted"
    assert [(s["name"], s["status"], s["attempts"]) for s in shown["steps"]] == [("train", "interrupted", made)]
    logs = orch("logs", "latest:train")
    assert logs.returncode == 0, logs.stderr
    failed, _, rest = logs.stdout.partition("=== train attempt 2")
    assert failed.startswith("=== train attempt 1 (failed) ===\n--- stdout ---\nattempt 1\n"), logs.stdout
    assert "--- traceback ---" in failed and "ConnectionError: data loader lost its connection" in failed
    if made == 2:
        assert rest.startswith(" (interrupted) ===\n--- nothing recorded: it was stopped"), logs.stdout
    else:  # killed before the retry began: the step ends at its failed attempt, as after Ctrl-C
        assert rest == "" and "nothing recorded" not in logs.stdout, logs.stdout
    document = json.loads(orch("logs", "latest:train", "--json").stdout)
    assert [(a["attempt"], a["status"], a["recorded"]) for a in document["attempts"]] == \
        [(1, "failed", True), (2, "interrupted", False)][:made]


_FOUR_STEPS = ("from orchestrator import pipeline, step\n\n"
               "@step\ndef first() -> int:\n    return 1\n\n"
               "@step\ndef second(x: int) -> int:\n    return x + 1\n\n"
               "@step\ndef third(x: int) -> int:\n    return x + 1\n\n"
               "@pipeline\ndef four():\n    return third(second(first()))\n")


def test_ctrl_c_while_finished_steps_are_committed_keeps_them(tmp_path, capsys, monkeypatch):
    """Ctrl-C arriving while a commit wrote finished steps rolled it back, and the records it had taken from the
    queue were gone: a step `orch run` said ran was missing from `orch show`, or left `running` for ever."""
    from orchestrator.lineage_db import Lineage

    monkeypatch.setenv("ORCH_COMMIT_BUDGET", "0")  # a commit before each step: the first holds `first` ran
    insert = Lineage._insert

    def interrupted_once(self, steps, *rest):
        if any(row[1] == "first" and row[7] == "ran" for row in steps) and not getattr(self, "_stopped", False):
            self._stopped = True
            os.kill(os.getpid(), signal.SIGINT)  # arrives in the middle of the transaction
        return insert(self, steps, *rest)

    monkeypatch.setattr(Lineage, "_insert", interrupted_once)
    run = _four_steps_interrupted(tmp_path, capsys)
    assert run.steps["first"].status == "ran"
    assert "running" not in {s.status for s in run.steps.values()}


def test_ctrl_c_as_the_run_starts_records_it_interrupted_and_prints_its_json(tmp_path, capsys, monkeypatch):
    """Ctrl-C just after `run ID of pipeline ...` was printed: no --json document, and the run stayed `running`
    until a later command called it dead ("the run's process died")."""
    from orchestrator.report import ConsoleReporter

    started = ConsoleReporter.run_started

    def stopped_as_it_starts(self, *args, **kwargs):
        started(self, *args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(ConsoleReporter, "run_started", stopped_as_it_starts)
    run = _four_steps_interrupted(tmp_path, capsys)
    assert run.error.startswith("interrupted by the user")


def _four_steps_interrupted(tmp_path, capsys):
    """`orch run four.py --json`, which a Ctrl-C stops: the Run its document names, recorded interrupted."""
    from orchestrator import get_run
    from orchestrator.cli import main

    (tmp_path / "four.py").write_text(_FOUR_STEPS)
    store = str(tmp_path / "store")
    with pytest.raises(SystemExit) as exited:
        main(["--store", store, "run", str(tmp_path / "four.py"), "--json"])
    assert exited.value.code == 130
    doc = json.loads(capsys.readouterr().out)
    assert doc["status"] == "interrupted"
    run = get_run(doc["run_id"], store=store)
    assert run.status == "interrupted"
    return run


_SIGNALLED_AFTER = '''
import os, signal, sys
import orchestrator.cli as cli
from orchestrator.lineage_db import Lineage

where, signum = sys.argv[1], getattr(signal, sys.argv[2])
target = (Lineage, "close") if where == "closing" else (cli, "_print_run_metrics")
real = getattr(*target)
sent = []

def signalled(*args, **kwargs):
    if not sent:
        sent.append(True)
        os.kill(os.getpid(), signum)
    return real(*args, **kwargs)

setattr(*target, signalled)
sys.argv = ["orch", "--store", sys.argv[3], "run", sys.argv[4]]
cli.main()
'''


@pytest.mark.parametrize("where", ["closing", "printing"])
@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_a_stop_signal_after_the_run_is_recorded_exits_as_it_is_recorded(tmp_path, where, signum):
    """Ctrl-C or SIGTERM a few milliseconds after the summary (the store closing, the metrics printed, the
    interpreter ending): `interrupted ... resume`, 130 or 143, or death by the signal, for a run recorded
    succeeded. A scheduler cancelling at the end of a job saw a failure."""
    (tmp_path / "ends.py").write_text(_ENDS_WELL)
    store = str(tmp_path / "store")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    done = subprocess.run([sys.executable, "-c", _SIGNALLED_AFTER, where, signum, store, str(tmp_path / "ends.py")],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (done.returncode, done.stderr)
    assert re.search(rf"^{signum} arrived as run \w{{12}} ended: it is recorded succeeded\.$", done.stderr, re.M), \
        done.stderr
    assert "resume" not in done.stderr and "Traceback" not in done.stderr


_RUNS_ANOTHER_AT_IMPORT = ("import os, signal, time\nfrom orchestrator import pipeline, step\n\n"
                           "@step\ndef a(x: int) -> int:\n    return x + 1\n\n"
                           "@pipeline\ndef inner(x: int = 1):\n    return a(x)\n\n"
                           "{prep}  # a run of its own, as the file is imported\n\n"
                           "@step\ndef slow(n: int) -> int:\n"
                           "    os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the outer run's step runs\n"
                           "    time.sleep(30)\n    return n\n\n"
                           "@pipeline\ndef outer(n: int = 5):\n    return slow(n)\n")


_RUNS_BY_THE_CLI = ("import contextlib, orchestrator.cli\n"
                    "with contextlib.suppress(SystemExit):\n"
                    "    orchestrator.cli.main(['--store', {store!r}, 'run', __file__ + ':inner', '-p', 'x=7'])")


@pytest.mark.parametrize("prep", ["inner.run(x=7, store={store!r})", _RUNS_BY_THE_CLI])
def test_ctrl_c_stops_a_run_whose_file_ran_another_pipeline_as_it_was_imported(tmp_path, prep):
    """The end of a run the pipeline file started when imported (or `orchestrator.cli.main([...])` in a step)
    was taken for the end of `orch run`'s own run: every later Ctrl-C was said ('arrived as run ... ended')
    into the step's capture, and ignored."""
    store = str(tmp_path / "store")
    (tmp_path / "nested.py").write_text(_RUNS_ANOTHER_AT_IMPORT.format(prep=prep.format(store=store)))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    done = subprocess.run([sys.executable, "-m", "orchestrator", "--store", store, "run", "nested.py:outer"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=25)
    assert done.returncode == 130, done.stderr
    assert "interrupted: finished steps are kept" in done.stderr


def test_ctrl_c_just_after_a_commit_took_the_write_lock_keeps_the_records(tmp_path, capsys, monkeypatch):
    """Ctrl-C arriving once `BEGIN IMMEDIATE` had taken the lock, before the transaction's own `try`: the
    transaction was left open, every later commit failed ('cannot start a transaction within a transaction'),
    tracebacks, exit 1, no --json document, and the step `orch run` said ran was not recorded."""
    import orchestrator.lineage_db as lineage_db

    monkeypatch.setenv("ORCH_COMMIT_BUDGET", "0")
    begin = lineage_db.begin_immediate
    sent = []

    def interrupted_after_begin(conn, path, wait_ms=None):
        begin(conn, path, wait_ms)
        frame = sys._getframe(1)
        while frame is not None and frame.f_code.co_name != "_flush":
            frame = frame.f_back
        pending = frame.f_locals.get("pending", []) if frame is not None else []
        if not sent and any(r.node == "first" and r.status == "ran" for r, *_ in pending):
            sent.append(True)
            os.kill(os.getpid(), signal.SIGINT)  # the handler raises here, the lock taken

    monkeypatch.setattr(lineage_db, "begin_immediate", interrupted_after_begin)
    run = _four_steps_interrupted(tmp_path, capsys)
    assert sent and run.steps["first"].status == "ran"
    assert "running" not in {s.status for s in run.steps.values()}


_JSON_TO_A_FULL_PIPE = '''
import json, os, signal, sys, threading, time
from orchestrator.cli_common import emit_json

signal.signal(signal.SIGUSR1, lambda signum, frame: None)  # handled, as orch run says a signal after the run
read, write = os.pipe()
os.dup2(write, 1)
os.close(write)
chunks = []
main = threading.main_thread().ident


def reader():
    time.sleep(0.3)  # the write is waiting on the full pipe by now
    signal.pthread_kill(main, signal.SIGUSR1)
    time.sleep(0.2)
    while chunk := os.read(read, 1 << 16):
        chunks.append(chunk)


thread = threading.Thread(target=reader)
thread.start()
emit_json({"steps": ["x" * 100] * 3000})
sys.stdout.flush()
os.close(1)
thread.join()
doc = json.loads(b"".join(chunks))
print(len(doc["steps"]), file=sys.stderr)
'''


def test_a_json_document_written_to_a_full_pipe_is_whole_when_a_signal_arrives(tmp_path):
    """A signal handled while `orch run --json` waited on a pipe its reader had not read yet (a wrapper's
    `$(...)`, then a scheduler's SIGTERM) cut the document at 64 KiB, and orch exited 0 with it."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    done = subprocess.run([sys.executable, "-c", _JSON_TO_A_FULL_PIPE], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and done.stderr.strip() == "3000", done.stderr
