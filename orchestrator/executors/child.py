"""Run one task in a child process, so that a timeout can really stop it.

Used for steps that declare a ``timeout``: a Python thread cannot be stopped,
a process can. The child is forked where the platform allows (closures and
the loaded pipeline module come along for free) and reports its
``TaskResult`` back through a pipe; values stay in the child, outputs travel
as artifact references. A child that dies without reporting is a
``WorkerDiedError`` attempt; one that outlives its timeout is killed and
reported as a ``StepTimeoutError`` attempt.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import cloudpickle

from orchestrator.errors import StepTimeoutError, WorkerDiedError
from orchestrator.executors.worker import decode_result, encode_result
from orchestrator.retry import Failure

if TYPE_CHECKING:
    from orchestrator.task import TaskResult, TaskSpec


def _child_main(conn: multiprocessing.connection.Connection, payload: bytes) -> None:
    from orchestrator.task import run_task

    spec = pickle.loads(payload)
    conn.send_bytes(encode_result(run_task(spec)))
    conn.close()


def run_in_child(spec: TaskSpec, timeout: float | None) -> TaskResult:
    """Run ``spec`` in a child process, killing it after ``timeout`` seconds."""

    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    ctx: Any = multiprocessing.get_context(method)
    parent, child = ctx.Pipe(duplex=False)
    payload = cloudpickle.dumps(replace(spec, keep_values=False))
    proc = ctx.Process(target=_child_main, args=(child, payload), daemon=True)
    started = time.time()
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
            proc.kill()
            proc.join()
            exc: BaseException = StepTimeoutError(
                f"step '{spec.step_name}' did not finish within its timeout of {timeout:g} s"
            )
            return _killed(spec, started, exc)
        proc.join()
        code = proc.exitcode
        exc = WorkerDiedError(
            f"the process running step '{spec.step_name}' died (exit code {code}) before reporting a result"
        )
        return _killed(spec, started, exc)
    except BaseException:
        if proc.is_alive():
            proc.kill()
        raise
    finally:
        parent.close()
        proc.join(timeout=5)
        if os.name == "posix" and proc.is_alive():
            proc.kill()


def _killed(spec: TaskSpec, started: float, exc: BaseException) -> TaskResult:
    """The failed attempt of a child that was killed or died, with what it had printed and logged."""
    from orchestrator.capture import read_spill
    from orchestrator.task import TaskResult

    stdout, stderr, logs = read_spill(spec.spill)
    return TaskResult(node=spec.node, attempt=spec.attempt, started=started, ended=time.time(),
                      failure=Failure.from_exception(exc), stdout=stdout, stderr=stderr, logs=logs)
