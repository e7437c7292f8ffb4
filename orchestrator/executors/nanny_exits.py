"""How the LocalCluster's worker processes ended, for the error of the step that ended one.

Dask reports a worker that died under a task as a ``KilledWorker``, which says
nothing of how it ended, and the LocalCluster's worker logs are silenced, so
there is no log to read either: a step that called ``os._exit(3)`` or crashed
in native code was reported as if it might have run out of memory, where the
process pool names the exit code. The LocalCluster's nannies run in the
driver's process and see each worker's exit code; this keeps it, by the
worker's address, until the step's error asks for it.

It relies on two attributes of Dask's nanny (``_on_worker_exit_sync`` and its
``WorkerProcess.on_exit``); where they are missing nothing is watched, and the
error says what it said before. It must not be used for a cluster of the
user's (``--address``): its nannies run in other processes.
"""

from __future__ import annotations

import threading
import time
from typing import Any


class WorkerExits:
    """Exit codes of the LocalCluster's dead worker processes, by worker address."""

    def __init__(self) -> None:
        self._codes: dict[str, int] = {}
        self._changed = threading.Condition()

    def watch(self, nannies: list[Any]) -> None:
        """Keep the exit code of each worker these nannies run now, and of those they start in its place."""
        for nanny in nannies:
            original = getattr(nanny, "_on_worker_exit_sync", None)
            if original is None:
                continue

            def on_exit(code: int, nanny: Any = nanny, original: Any = original) -> None:
                self._record(getattr(nanny, "worker_address", None), code)
                original(code)

            # A replacement worker is made with the nanny's callback; the running one already has it.
            nanny._on_worker_exit_sync = on_exit
            process = getattr(nanny, "process", None)
            if process is not None and hasattr(process, "on_exit"):
                process.on_exit = on_exit

    def _record(self, address: str | None, code: int) -> None:
        if address is None:
            return
        with self._changed:
            self._codes[address] = code
            self._changed.notify_all()

    def code_of(self, address: str | None, wait: float) -> int | None:
        """The exit code of the worker at ``address``, waiting up to ``wait`` s for its nanny to see it go.

        Dask may report the task lost (the worker's connection closed) a moment before the nanny
        has reaped the process. None when it is not known by then.
        """
        if address is None:
            return None
        deadline = time.monotonic() + wait
        with self._changed:
            while address not in self._codes:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._changed.wait(left)
            return self._codes[address]
