"""Dask distributed: attempts run as tasks on a Dask cluster (the optional extra ``dask``).

With an address, tasks go to that running scheduler; without, a
``LocalCluster`` of worker processes is started for the run and closed after
it. Tasks carry the step and artifact references only: workers load inputs
from the store and write outputs there themselves, so data never passes
through the scheduler. A task whose worker dies is not re-run silently by
Dask (``allowed-failures`` is 0 for a LocalCluster): it comes back as a
``WorkerDiedError`` attempt, retried by the step's own policy like on every
other executor. Timeouts run the step in a child process of the worker.
"""

from __future__ import annotations

import os
import secrets
import time
from concurrent.futures import Future
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from orchestrator.errors import UserError, WorkerDiedError
from orchestrator.executors.spawning import main_script_hidden
from orchestrator.executors.worker import decode_result, dumps_with_user_code, run_pickled
from orchestrator.retry import Failure

if TYPE_CHECKING:
    from orchestrator.task import TaskResult, TaskSpec


def _import_distributed() -> Any:
    try:
        import dask
        import distributed
    except ImportError as exc:
        raise UserError(
            "the dask executor needs Dask: pip install 'orchestrator[dask]'"
        ) from exc
    return dask, distributed


class DaskExecutor:
    """Runs attempts on a Dask cluster."""

    name = "dask"

    def __init__(self, workers: int | None = None, address: str | None = None) -> None:
        dask, distributed = _import_distributed()
        self._cluster = None
        # For the cluster's whole life: its nannies also spawn replacements for dead workers.
        self._main_hidden = ExitStack()
        started = time.perf_counter()
        if address:
            try:
                self.client = distributed.Client(address, timeout="10s", set_as_default=False)
            except OSError as exc:
                raise UserError(f"cannot reach the Dask scheduler at {address}: {exc}. "
                                "Start one with `dask scheduler` or drop --address.") from exc
        else:
            self._main_hidden.enter_context(main_script_hidden())
            try:
                with dask.config.set({"distributed.scheduler.allowed-failures": 0,
                                      "distributed.worker.daemon": False}):
                    self._cluster = distributed.LocalCluster(
                        n_workers=max(1, workers or os.cpu_count() or 1), threads_per_worker=1,
                        processes=True, dashboard_address="127.0.0.1:0", silence_logs=50)
                    self.client = distributed.Client(self._cluster, set_as_default=False)
            except BaseException:
                self._main_hidden.close()
                raise
        self.startup_seconds = time.perf_counter() - started
        # Twice the worker threads: a queued task starts as soon as a thread frees up, instead of
        # waiting a scheduler round trip for the run loop to submit it.
        self.capacity = 2 * max(1, sum(self.client.nthreads().values()))
        self._token = secrets.token_hex(4)

    def submit(self, spec: TaskSpec) -> Future[TaskResult]:
        result: Future[TaskResult] = Future()
        key = f"orch-{spec.node}-{spec.attempt}-{self._token}-{secrets.token_hex(3)}"
        started = time.time()
        task = self.client.submit(run_pickled, dumps_with_user_code(spec), key=key, pure=False, retries=0)

        def resolve(done: Any) -> None:
            from orchestrator.task import TaskResult

            try:
                data = done.result()
            except Exception as exc:  # noqa: BLE001 - anything Dask reports is a lost attempt
                if type(exc).__name__ == "CancelledError" and result.cancelled():
                    return
                died = WorkerDiedError(f"the Dask task of step '{spec.step_name}' was lost: "
                                       f"{type(exc).__name__}: {exc}")
                result.set_result(TaskResult(node=spec.node, attempt=spec.attempt, started=started,
                                             ended=time.time(), failure=Failure.from_exception(died)))
                return
            result.set_result(decode_result(data, spec))

        task.add_done_callback(resolve)
        self._tasks = getattr(self, "_tasks", [])
        self._tasks.append(task)
        return result

    def shutdown(self, cancel: bool = False) -> None:
        if cancel:
            for task in getattr(self, "_tasks", []):
                task.cancel()
        try:
            self.client.close()
        finally:
            try:
                if self._cluster is not None:
                    self._cluster.close()
            finally:
                self._main_hidden.close()
