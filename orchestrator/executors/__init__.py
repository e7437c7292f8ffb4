"""Executors: run a prepared task inline, in a process pool, or on Dask.

An executor receives a picklable callable and its argument and returns a
``concurrent.futures.Future``. It knows nothing of DAGs, stores or lineage:
the runner schedules, records and retries; the executor only runs.
"""

from __future__ import annotations

import os

from orchestrator.errors import UserError
from orchestrator.executors.base import Executor
from orchestrator.spelling import CLI, Spelling

EXECUTORS = ("sequential", "process", "dask")

# What one worker process holds at least (an interpreter with the user's imports): the memory bound below.
_WORKER_BYTES = 128 * 2**20


def local_worker_limit() -> int:
    """How many worker processes this machine holds: one per 128 MiB of its memory, 4 per CPU at least.

    A bound against a typo (``--workers 99999999999999999999``), not advice: a
    LocalCluster starts its workers at once, and that many grew the driver to all
    the machine's memory until the out-of-memory killer ended it.
    """
    cpus = os.cpu_count() or 1
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):  # no sysconf (Windows): by the CPUs alone
        memory = 0
    return max(4 * cpus, memory // _WORKER_BYTES)


def make_executor(name: str, workers: int | None = None, address: str | None = None,
                  most: int | None = None, spelling: Spelling = CLI) -> Executor:
    """The executor called ``name``.

    ``most``: how many attempts the run can have going at once at most (its
    number of steps, when no map adds more), so a LocalCluster does not start
    forty workers for five steps. The process pool needs no hint: it starts
    workers only as attempts find none idle. ``spelling``: how the user wrote
    the options, for the messages that name them.

    Raises:
        UserError: for an unknown name, ``workers`` with an ``address`` (that cluster has its own),
            or a Dask scheduler that cannot be reached.
    """
    if address and name != "dask":
        raise UserError(f"{spelling.address} names a Dask scheduler: use it with {spelling.executor('dask')}.")
    if address and workers is not None:
        # Else ignored: the cluster's workers are the ones its `dask worker` commands started.
        raise UserError(f"{spelling.option('workers', str(workers))} sizes the LocalCluster that "
                        f"{spelling.executor('dask')} starts without {spelling.address}; the cluster at {address} "
                        f"has the workers that `dask worker` started there. Drop "
                        f"{spelling.option('workers')}, or {spelling.address} for a LocalCluster.")
    if name == "sequential":
        from orchestrator.executors.sequential import SequentialExecutor

        return SequentialExecutor()
    if workers is not None and workers < 1:
        raise UserError(f"--workers must be 1 or more, got {workers}.")
    if workers is not None and not address and workers > local_worker_limit():
        raise UserError(f"{spelling.option('workers', str(workers))} is more worker processes than this machine "
                        f"holds (at most {local_worker_limit()}: one per 128 MiB of memory, 4 per CPU at least). "
                        f"Give {spelling.option('workers', str(os.cpu_count() or 1))} (its CPUs) or a few times that "
                        f"for steps that wait on I/O; for more, use a Dask cluster of your own "
                        f"({spelling.address}).")
    if name == "process":
        from orchestrator.executors.process import ProcessExecutor

        return ProcessExecutor(workers)
    if name == "dask":
        from orchestrator.executors.dask import DaskExecutor

        return DaskExecutor(workers, address, most=most, spelling=spelling)
    raise UserError(f"unknown executor '{name}'. Choose one of: {', '.join(EXECUTORS)}.")


__all__ = ["EXECUTORS", "Executor", "local_worker_limit", "make_executor"]
