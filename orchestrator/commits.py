"""Group commit: when the run's records reach the metadata database, and key locks are let go.

See ``GroupCommit``. Used by the runner only; it knows records, locks and
time, nothing of DAGs or executors.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence

from orchestrator.errors import OrchestratorError
from orchestrator.lineage_db import AttemptRecord, Lineage, StepRecord
from orchestrator.locks import KeyLock


class GroupCommit:
    """When records reach the metadata database.

    A commit costs about 0.1 ms, more than a trivial step, so records are
    queued and committed together: before a cacheable step starts when the
    last commit is older than ``budget`` seconds, and by a watcher thread
    whenever queued records are older than that. The watcher also writes the
    "running" row of a step that has run longer than ``budget``, so a long
    step shows as ``interrupted`` after a crash (within a quarter second of
    its start) while trivial steps never pay for that row. A retried step's
    failed attempt is committed so too (``retrying``), not when the step
    ends: a crash in the retry keeps it. Objects are written at once; a crash loses at most the
    steps that were running plus ``budget`` seconds' worth of finished
    records, whose objects the next run finds and reuses.
    ``ORCH_COMMIT_BUDGET=0`` commits before every step.

    The watcher wakes every ``WATCH_INTERVAL`` seconds, not more often: each
    wake-up makes the main thread hand over the GIL, which measurably slows
    runs of many short steps.
    """

    WATCH_INTERVAL = 0.25

    def __init__(self, lineage: Lineage, budget: float | None = None) -> None:
        self.lineage = lineage
        self.budget = float(os.environ.get("ORCH_COMMIT_BUDGET", "0.02")) if budget is None else budget
        self._in_flight: dict[str, tuple[float, Callable[[], StepRecord]]] = {}
        self._held: dict[str, KeyLock] = {}
        self._releasable: list[KeyLock] = []
        self._retried = False  # a retried step's failed attempt is queued: the watcher commits it
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.budget > 0:
            self._thread = threading.Thread(target=self._watch, name="orch-commit", daemon=True)
            self._thread.start()

    def started(self, node: str, running_record: Callable[[], StepRecord]) -> None:
        """``node`` starts work; ``running_record`` makes its "running" row if it is needed."""
        if self.budget <= 0:
            self.lineage.queue_step(running_record())
        else:
            self._in_flight[node] = (time.monotonic(), running_record)

    def finished(self, node: str) -> None:
        """``node`` is done; call before queueing its final record so that one wins."""
        with self._lock:
            self._in_flight.pop(node, None)

    def retrying(self, node: str, record: StepRecord, tries: Sequence[AttemptRecord]) -> None:
        """An attempt of ``node`` failed and will be retried: queue its row and ``tries`` (that attempt).

        The watcher commits them within the budget, as it does the row of a long step: a run
        killed while the retry runs, or during a long ``retry_delay``, keeps the failures (not an
        fsync each: a commit of the group). The "running" row of the attempt that ended is
        dropped, since it would count fewer attempts than ``record``.
        """
        with self._lock:
            self._in_flight.pop(node, None)
            self.lineage.queue_step(record, tries)
            self._retried = True
        if self.budget <= 0:
            self.flush()

    def hold(self, node: str, lock: KeyLock) -> None:
        """Keep ``node``'s key lock until its record is committed (see ``recorded``)."""
        self._held[node] = lock

    def recorded(self, node: str) -> None:
        """``node``'s final record is queued: its key lock goes with the next commit."""
        lock = self._held.pop(node, None)  # only the run loop's thread holds and records
        if lock is not None:
            with self._lock:  # ``flush`` takes the releasable locks, from the watcher thread too
                self._releasable.append(lock)

    def before_work(self) -> None:
        if self.budget <= 0 or time.monotonic() - self.lineage.last_flush >= self.budget:
            self.flush()

    def flush(self) -> None:
        """Commit what is queued, then let other runs have the keys whose results it holds."""
        with self._lock:
            releasable, self._releasable = self._releasable, []
            self._retried = False
        self.lineage.flush()
        for lock in releasable:
            lock.release()

    def _watch(self) -> None:
        # Acts only while some step has been running longer than the budget: between short
        # steps the main thread commits by itself, and a second thread taking the GIL for
        # Python work there would only slow it down.
        while not self._stop.wait(self.WATCH_INTERVAL):
            now = time.monotonic()
            with self._lock:
                long_running = [n for n, (since, _) in self._in_flight.items() if now - since >= self.budget]
                for node in long_running:
                    self.lineage.queue_step(self._in_flight.pop(node)[1]())
            if long_running or ((self._in_flight or self._retried) and self.lineage.pending
                                and now - self.lineage.last_flush >= self.budget):
                try:
                    self.flush()
                except OrchestratorError:
                    # The database cannot be written (locked by another process, a full disk): the main
                    # thread meets the same error at its next commit and stops the run with one line;
                    # raised here, it would only print a thread's traceback.
                    return

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        for node in list(self._held):
            self.recorded(node)
        self.flush()
