"""Run one task in a child process, so that a timeout can really stop it.

Used for steps that declare a ``timeout``: a Python thread cannot be stopped,
a process can. The child is forked where the platform allows (closures and
the loaded pipeline module come along for free) and reports its
``TaskResult`` back through a pipe; values stay in the child, outputs travel
as artifact references. A child that dies without reporting is a
``WorkerDiedError`` attempt; one that outlives its timeout is killed and
reported as a ``StepTimeoutError`` attempt.

The caller may itself be a daemonic process (every Dask worker is, unless
configured otherwise), which ``multiprocessing`` forbids to start children;
the child is started anyway, and is made to die with its parent instead.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from orchestrator.errors import StepTimeoutError, UnpicklableStepError, WorkerDiedError
from orchestrator.executors.deaths import died_because
from orchestrator.executors.process_tree import adopt_orphans, kill_tree
from orchestrator.executors.sending import dumps_task, not_sent
from orchestrator.executors.worker import decode_result, die_with_parent, encode_result
from orchestrator.retry import Failure

if TYPE_CHECKING:
    from orchestrator.task import TaskResult, TaskSpec


_starting = threading.Lock()  # the daemon flag is process-wide; Dask runs tasks in several threads


def _new_lock_in_child() -> None:
    global _starting
    _starting = threading.Lock()  # a forked child inherits the lock held by the thread that forked it


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_lock_in_child)


def _fresh_numpy_random() -> None:
    """Seed numpy's global random state anew in this forked child, as Python's ``random`` reseeds itself.

    Every child forked from one worker started from its state, which never moved on (on Dask
    every draw of timed steps happened in such children): each retry drew the numbers of the
    attempt before (a bad random start failed the same way every time), and each item of a
    map the same resample. A step that seeds numpy itself is unaffected.
    """
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        with contextlib.suppress(Exception):  # a numpy too broken to seed draws nothing either
            numpy_random.seed()


def _child_main(conn: multiprocessing.connection.Connection, payload: bytes, parent_pid: int) -> None:
    from orchestrator.executors.worker import allow_children
    from orchestrator.task import run_task

    # Ctrl-C reaches the whole process group, this child included; the driver decides what to stop (it
    # kills this child and reads back what the step printed). Taken here, it would end the capture,
    # which removes that spill folder, and the interrupted attempt would be recorded without its output.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent_pid)
    adopt_orphans()  # what the step starts in the background is still its own when the timeout kills it
    allow_children()
    _fresh_numpy_random()
    spec = pickle.loads(payload)
    conn.send_bytes(encode_result(run_task(spec)))
    conn.close()


def run_in_child(spec: TaskSpec, timeout: float | None) -> TaskResult:
    """Run ``spec`` in a child process, killing it after ``timeout`` seconds."""

    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    ctx: Any = multiprocessing.get_context(method)
    parent, child = ctx.Pipe(duplex=False)
    try:
        payload = dumps_task(replace(spec, keep_values=False), "the child process that runs a timed step")
    except UnpicklableStepError as refused:
        return not_sent(spec, refused)
    proc = ctx.Process(target=_child_main, args=(child, payload, os.getpid()), daemon=True)
    started = time.time()
    with _children_allowed():
        proc.start()
    child.close()
    try:
        ready = parent.poll(timeout)
        if ready:
            try:
                return decode_result(parent.recv_bytes(), spec)
            except EOFError:
                pass
        else:
            kill_tree(proc.pid)  # with what the step started: a timeout stops all its work
            proc.join()
            exc: BaseException = StepTimeoutError(
                f"step '{spec.node}' did not finish within its timeout of {timeout:g} s"
            )
            return _killed(spec, started, exc)
        proc.join()
        code = proc.exitcode
        exc = WorkerDiedError(
            f"the process running step '{spec.node}' died {died_because(code)} before reporting a result"
        )
        return _killed(spec, started, exc)
    except BaseException as stop:
        if proc.is_alive():
            kill_tree(proc.pid)
        if isinstance(stop, KeyboardInterrupt):
            # Ctrl-C (or SIGTERM) in the driver: what the step printed until then is what explains a hang,
            # and it is recorded with the interrupted attempt, as for a step running in this process.
            proc.join(timeout=5)
            stop.interrupted_attempt = _killed(spec, started, stop)  # type: ignore[attr-defined]
        raise
    finally:
        parent.close()
        proc.join(timeout=5)
        if os.name == "posix" and proc.is_alive():
            proc.kill()


@contextmanager
def _children_allowed() -> Iterator[None]:
    """Let a daemonic process start a child, by clearing its daemon flag around ``Process.start()``.

    ``multiprocessing`` refuses children to daemonic processes because such a
    process is terminated when its own parent exits, which would leave its
    children orphaned. Here the child guards itself instead: it asks the
    kernel to kill it when its parent dies (``die_with_parent``), and
    ``run_in_child`` kills or joins it before returning. The flag is cleared
    for that one call (the child has its own, set at creation).
    """
    current: Any = multiprocessing.current_process()
    with _starting:
        daemonic = current._config.get("daemon", False)
        current._config["daemon"] = False
        try:
            yield
        finally:
            current._config["daemon"] = daemonic


def _killed(spec: TaskSpec, started: float, exc: BaseException) -> TaskResult:
    """The failed attempt of a child that was killed or died, with what it had printed and logged."""
    from orchestrator.capture import read_spill
    from orchestrator.task import TaskResult

    stdout, stderr, logs = read_spill(spec.spill)
    return TaskResult(node=spec.node, attempt=spec.attempt, started=started, ended=time.time(),
                      failure=Failure.from_exception(exc), stdout=stdout, stderr=stderr, logs=logs)
