"""How the LocalCluster's worker processes ended, for the error of the step that ended one.

Dask reports a worker that died under a task as a ``KilledWorker``, which says
nothing of how it ended, and the LocalCluster's worker logs are silenced, so
there is no log to read either: a step that called ``os._exit(3)`` or crashed
in native code was reported as if it might have run out of memory, where the
process pool names the exit code. The LocalCluster's nannies run in the
driver's process and see each worker's exit code; this keeps it, by the
worker's process id, until the step's error asks for it.

It relies on how Dask's nanny ends a worker (each nanny keeps one
``WorkerProcess`` for its worker and its replacements, whose ``mark_stopped``
reads the dead process's exit code); where that is not so nothing is watched,
and the error says what it said before. Codes are kept by process id, which
Dask's ``KilledWorker`` names: a replacement that dies before its nanny heard
its address would be filed under its predecessor's address. It must not be
used for a cluster of the user's (``--address``): its nannies run in other
processes.

A nanny also ends its worker itself, with SIGTERM, when the worker's memory
passes its share of the machine's (``distributed.worker.memory.terminate``,
95 % of the worker's ``memory_limit``). "Killed by SIGTERM" alone sent the user
looking for who sent it; the nanny's memory manager keeps the process id it
ended so, and this keeps that limit with the exit code.
"""

from __future__ import annotations

import threading
import time
from typing import Any


class WorkerExits:
    """Exit codes of the LocalCluster's dead worker processes, by process id."""

    def __init__(self) -> None:
        self._codes: dict[int, int] = {}
        self._over_memory: dict[int, tuple[float, int]] = {}  # pid: (terminate fraction, memory limit in bytes)
        self._changed = threading.Condition()

    def watch(self, nannies: list[Any]) -> None:
        """Keep the exit code of each worker these nannies run now, and of those they start in its place."""
        for nanny in nannies:
            worker: Any = getattr(nanny, "process", None)  # the nanny's WorkerProcess, reused for replacements
            original = getattr(worker, "mark_stopped", None)
            if original is None:
                continue

            def mark_stopped(worker: Any = worker, original: Any = original, nanny: Any = nanny) -> None:
                process = getattr(worker, "process", None)  # the dead process, until ``original`` drops it
                pid, code = getattr(process, "pid", None), getattr(process, "exitcode", None)
                if pid is not None and code is not None:
                    self._record(pid, code, _ended_for_memory(nanny, pid))
                original()

            worker.mark_stopped = mark_stopped

    def _record(self, pid: int, code: int, over_memory: tuple[float, int] | None = None) -> None:
        with self._changed:
            self._codes[pid] = code
            if over_memory is not None:
                self._over_memory[pid] = over_memory
            self._changed.notify_all()

    def over_memory(self, pid: int | None) -> tuple[float, int] | None:
        """``(fraction, limit)`` when the nanny ended worker ``pid`` for using more than ``fraction`` of ``limit`` bytes.

        Asked after ``code_of``, which waits for the nanny to see the worker go.
        """
        with self._changed:
            return self._over_memory.get(pid) if pid is not None else None

    def code_of(self, pid: int | None, wait: float) -> int | None:
        """The exit code of the worker process ``pid``, waiting up to ``wait`` s for its nanny to see it go.

        Dask may report the task lost (the worker's connection closed) a moment before the nanny
        has reaped the process. None when it is not known by then.
        """
        if pid is None:
            return None
        deadline = time.monotonic() + wait
        with self._changed:
            while pid not in self._codes:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._changed.wait(left)
            return self._codes[pid]


def _ended_for_memory(nanny: Any, pid: int) -> tuple[float, int] | None:
    """The nanny's memory limit and terminate fraction, if its memory monitor is what ended process ``pid``."""
    manager = getattr(nanny, "memory_manager", None)
    if getattr(manager, "_last_terminated_pid", None) != pid:
        return None
    fraction, limit = getattr(manager, "memory_terminate_fraction", None), getattr(manager, "memory_limit", None)
    if not isinstance(fraction, (int, float)) or not isinstance(limit, int) or not limit:
        return None
    return float(fraction), limit
