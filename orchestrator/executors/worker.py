"""What runs inside a worker process: receive a task, run it, send the result back.

Shared by the process pool (a loop over a pipe) and Dask (one call per
task). Step functions of the user's own modules travel by value with
cloudpickle (see ``pickle_user_code_by_value``), so a worker needs neither
the pipeline file nor its folder on ``sys.path``. A worker never opens the
metadata database: it writes objects and reports ``ArtifactInfo``.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import cloudpickle

from orchestrator.executors.process_tree import adopt_orphans

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from orchestrator.task import TaskResult, TaskSpec

STARTED = b"orch:started"
"""What a pool worker sends when it starts a timed attempt: its timeout counts from then (not a pickle)."""
READY = b"orch:ready"
"""What a pool worker sends once it has started, before its first attempt (not a pickle)."""


def dumps_with_user_code(spec: TaskSpec, where: str = "a worker process") -> bytes:
    """Pickle a task so that the user's own modules travel with it, by value.

    Workers may not be able to import the pipeline file (another folder,
    another machine, a module loaded under a made-up name), so its functions,
    classes and helpers go along with each task. The by-value registration is
    undone right after: it is process-wide, and the driver's own pickling
    (artifacts it stores) must keep referring to the user's classes by name.

    Raises:
        UnpicklableStepError: something the step needs cannot be pickled (``sending.dumps_task``).
    """
    from orchestrator.executors.sending import dumps_task

    registered = []
    for module in _user_modules():
        try:
            cloudpickle.register_pickle_by_value(module)
        except (ValueError, TypeError):
            continue  # a module cloudpickle cannot carry by value stays by reference
        registered.append(module)
    try:
        return dumps_task(spec, where)
    finally:
        for module in registered:
            cloudpickle.unregister_pickle_by_value(module)


_user_modules_seen: tuple[int, list[Any]] = (-1, [])


def _user_modules() -> list[Any]:
    """Loaded modules of the user's own code, recomputed only when modules were imported."""
    global _user_modules_seen
    from orchestrator.fingerprint import is_user_module

    count = len(sys.modules)
    if _user_modules_seen[0] != count:
        found = [m for name, m in list(sys.modules.items())
                 if m is not None and name != "__main__" and is_user_module(m)]
        _user_modules_seen = (count, found)
    return _user_modules_seen[1]


def run_pickled(payload: bytes, started: str | None = None) -> bytes:
    """Dask's entry point: a task pickled by ``dumps_with_user_code``; returns ``encode_result`` bytes.

    The result goes back as bytes so that decoding it is the driver's own
    step (``decode_result``), never a Dask deserialization failure that
    would look like a lost worker. ``started``: a file to create before the
    step runs, which tells the driver that a task lost with its worker had
    begun (an attempt that failed) rather than only waited there.

    Beside it the result is kept too (``kept_result_path``). Dask holds a finished
    task's result in its worker until the driver has fetched it; a worker that dies
    meanwhile (the next step on it crashed at once) has Dask run the task again,
    which ran the step a second time, unrecorded. Run again, it returns the kept result.
    """
    try:
        spec = pickle.loads(payload)
    except BaseException as exc:  # noqa: BLE001 - SystemExit from a __setstate__ would end the Dask worker
        return unreadable_task(exc)
    if started is not None:
        kept = kept_result_path(started)
        if os.path.exists(started):
            try:
                with open(kept, "rb") as f:
                    return f.read()
            except OSError:
                pass  # it never finished (nothing but Dask's own retries runs a task twice): run it
        with open(started, "a"):
            pass
    _running.append((spec.node, spec.attempt))
    try:
        data = encode_result(run_spec(spec))
    finally:
        _running.remove((spec.node, spec.attempt))
    if started is not None:
        try:
            with open(kept + ".tmp", "wb") as f:
                f.write(data)
            os.replace(kept + ".tmp", kept)
        except OSError:
            pass  # only a task Dask runs again needs it; this one's result goes back as usual
    return data


_running: list[tuple[str, int]] = []  # (node, attempt) of each task ``run_pickled`` runs in this process now


def running_snapshot() -> tuple[str, int, str, str, str] | None:
    """The attempt this Dask worker runs, with what it printed and logged so far (``capture.snapshot``).

    None when it runs none, or a timed one (whose child captures it: its spill
    keeps it), or several at once (a worker with several threads: whose output
    the process's ``sys.stdout`` holds cannot be told).
    """
    from orchestrator.capture import snapshot

    running = list(_running)
    if len(running) != 1:
        return None
    texts = snapshot()
    if texts is None:
        return None
    return (*running[0], *texts)


def kept_result_path(started: str) -> str:
    """Where ``run_pickled`` keeps the result of the task that ``started`` marks."""
    return started + ".result"


def encode_result(result: TaskResult) -> bytes:
    """Pickle a result; an exception that will not travel goes by its names and text only.

    An exception must survive the whole round trip: many pickle fine and
    then fail to unpickle (a custom ``__init__`` with extra required
    arguments), which would break the driver instead of failing the step.
    """
    if result.failure is not None and result.failure.exception is not None:
        try:
            pickle.loads(cloudpickle.dumps(result.failure.exception))
        except Exception:  # noqa: BLE001 - any failure to carry the live exception
            result.failure = replace(result.failure, exception=None)
    try:
        return cloudpickle.dumps(result)
    except Exception:  # noqa: BLE001 - something else in the result would not pickle
        if result.failure is not None:
            result.failure = replace(result.failure, exception=None)
        return cloudpickle.dumps(result)


def unreadable_task(exc: BaseException) -> bytes:
    """The result of a task this worker could not unpickle: a failure naming why, for ``decode_result``.

    An argument whose class cannot be rebuilt in another process (its ``__setstate__``
    raises, a module the worker cannot import) escaped the worker's loop: the worker
    died, and the attempt read "killed by SIGKILL, as the out-of-memory killer kills".
    The driver fills in the step (``decode_result``): this worker never learned it.
    """
    import time
    import traceback

    from orchestrator.retry import Failure
    from orchestrator.task import TaskResult

    now = time.time()
    failure = Failure(type_name=type(exc).__name__, traceback=traceback.format_exc(),
                      message=f"its arguments could not be unpickled in the worker: {exc} (a value of a class "
                              "that cannot be rebuilt in another process; the sequential executor passes it as it is)")
    return encode_result(TaskResult(node="", attempt=0, started=now, ended=now, failure=failure))


def decode_result(data: bytes, spec: TaskSpec) -> TaskResult:
    """The driver's side of ``encode_result``; a result that cannot be decoded fails the attempt."""
    try:
        result: TaskResult = pickle.loads(data)
        if not result.node:  # a task the worker could not unpickle (``unreadable_task``)
            result = replace(result, node=spec.node, attempt=spec.attempt)
        return result
    except Exception as exc:  # noqa: BLE001 - a damaged or undecodable result: that attempt failed
        import time

        from orchestrator.retry import Failure
        from orchestrator.task import TaskResult

        now = time.time()
        failure = Failure(type_name="ResultDecodeError",
                          message=f"the result of step '{spec.step_name}' could not be read back: "
                                  f"{type(exc).__name__}: {exc}", traceback="")
        return TaskResult(node=spec.node, attempt=spec.attempt, started=now, ended=now, failure=failure)


def allow_children() -> None:
    """Let the user's steps in this worker start processes (a ``multiprocessing.Pool``), as they can in ``orch``.

    Pool and Dask workers, and the child of a timed step, are daemonic, and
    ``multiprocessing`` refuses children to a daemonic process (because it is
    killed, not joined, when its parent ends). Each of them is ended by its
    parent on purpose anyway, and a ``Pool``'s workers end when their parent
    does; a step that forks must not fail only because of where it runs.
    """
    import multiprocessing

    multiprocessing.current_process()._config["daemon"] = False  # type: ignore[attr-defined]


def run_spec(spec: TaskSpec) -> TaskResult:
    """Run one attempt in this worker (Dask), in the driver's working folder, in a child process when it has a timeout.

    A timed attempt's child also writes what it prints and logs to a spill
    folder made here, on the worker's own machine (the driver's folders may be
    out of its reach), so that an attempt killed by its timeout keeps them.
    """
    from orchestrator.class_refs import remember_classes
    from orchestrator.process_state import in_folder
    from orchestrator.task import run_task

    spec = replace(spec, keep_values=False)
    remember_classes(spec.fn)  # its inputs load with the classes its code uses (see class_refs)
    allow_children()
    with in_folder(spec.folder):  # a timed step's child starts there too
        if spec.timeout is not None:
            from orchestrator.capture import new_spill_folder
            from orchestrator.executors.child import run_in_child

            if spec.spill is None:
                spec = replace(spec, spill=new_spill_folder())
            return run_in_child(spec, spec.timeout)
        return run_task(spec)


def serve_pipe(conn: Connection, sys_path: list[str], parent_pid: int | None = None,
               snapshots: Connection | None = None) -> None:
    """A pool worker's main loop: one task at a time until the pipe closes.

    ``snapshots``: a second pipe, answered by a thread of its own while a step
    runs, with what the step has printed and logged so far (``answer_snapshots``).
    """
    # Ctrl-C reaches the whole process group; the driver decides what to stop. It started this worker
    # with SIGINT blocked (``process._ctrl_c_held_for_the_child``): one that came meanwhile is dropped now.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    allow_children()
    adopt_orphans()  # what a step starts in the background stays below this worker, which a timeout kills
    if snapshots is not None:
        import threading

        threading.Thread(target=answer_snapshots, args=(snapshots,), name="orch-snapshots", daemon=True).start()
    if parent_pid is not None:
        # A driver killed outright (SIGKILL, the OOM killer) cannot stop its workers, and the run
        # is shown interrupted: a step left running would hold its CPU, memory or GPU for hours.
        die_with_parent(parent_pid)
    for entry in reversed(sys_path):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    import orchestrator.task  # noqa: F401 - imported before saying ready, as every attempt needs it

    conn.send_bytes(READY)
    while True:
        try:
            payload = conn.recv_bytes()
        except (EOFError, OSError):
            return
        try:
            spec: Any = pickle.loads(payload)
        except BaseException as exc:  # noqa: BLE001 - SystemExit from a __setstate__ too: the attempt fails
            conn.send_bytes(unreadable_task(exc))
            continue
        if spec is None:
            return
        from orchestrator.class_refs import remember_classes
        from orchestrator.task import run_task

        remember_classes(spec.fn)  # its inputs load with the classes its code uses (see class_refs)
        # The pool enforces timeouts itself, by killing this worker, counting from this message.
        if spec.timeout is not None:
            conn.send_bytes(STARTED)
        conn.send_bytes(encode_result(run_task(replace(spec, keep_values=False))))


def answer_snapshots(conn: Connection) -> None:
    """Answer each request on ``conn`` with ``capture.snapshot()`` pickled, until the pipe closes.

    The driver asks before it kills this worker on Ctrl-C: what the step had
    printed would otherwise die with it, where the sequential executor keeps it.
    """
    from orchestrator.capture import snapshot

    while True:
        try:
            conn.recv_bytes()
            conn.send_bytes(pickle.dumps(snapshot()))
        except (EOFError, OSError):
            return


def die_with_parent(parent_pid: int) -> None:
    """Best effort: on Linux, have this process SIGKILLed when its parent dies.

    The parent may be a daemonic Dask worker that is killed (cancelled run,
    memory limit) while the step still runs, or a driver killed with SIGKILL;
    without this the child would go on as an orphan. The signal follows the
    parent *thread*, which must live as long as the child is needed (the one
    blocked in ``run_in_child``, or the run loop that started a pool worker).
    """
    if sys.platform != "linux":
        return
    try:
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:  # the parent died before the request was in place
        os._exit(1)


def dask_setup(worker: Any) -> None:
    """Dask's preload hook, run in each worker of the LocalCluster that the dask executor starts.

    Ctrl-C reaches the whole process group, the workers included; the driver
    decides what to stop (it kills the workers), so a worker ignores SIGINT
    instead of dying of it with a ``KeyboardInterrupt`` traceback. Replacement
    workers that the nannies start run this too.

    The driver spawns them with SIGINT blocked (``dask._ClusterStart``), so that a
    Ctrl-C while a worker is still importing waits for this; ignored now, it is
    dropped, and SIGINT is unblocked again: the threads the worker starts from
    here on, and the processes its steps start, have the signal mask they would
    have had without it.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
