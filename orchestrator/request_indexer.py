"""Index the model server's request segments without making a prediction wait on the metadata database.

A request is on disk before the answer leaves (``request_writer``), and a
sealed segment of them only needs its row in ``request_segments``, which
``orch monitor`` reads, and that row the database's write lock. Another process may hold that lock for long (a
``sqlite3`` shell with a transaction open, a big ``orch cache gc``): waiting
for it in the request held every answer for up to the whole busy timeout
(60 s), and the lock timeout then refused every later insert for the life of
the server, so the requests it answered after were never monitored.

``SegmentIndexer`` inserts a segment in passing when the lock is free within a
short wait, and otherwise keeps it, in order, for a background thread that
retries until the lock is free again; it says once that the index is behind and
once that it caught up. Segments still pending when the server stops, and those
a killed server left open or unindexed, are sealed and indexed by the next
server on the store (``index_left_over``), since each line names its version.

This module must not import fastapi, and must not decide anything about drift.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from orchestrator.errors import DatabaseLockedError
from orchestrator.request_log import index_segments, seal_abandoned, segment_folder, unindexed_segments

if TYPE_CHECKING:
    from orchestrator.context import Context
    from orchestrator.lineage_db import Lineage
    from orchestrator.request_log import Segment

log = logging.getLogger("orchestrator.serve")

INLINE_WAIT_MS = 100  # what a request may wait for the lock before its segment is left to the thread
RETRY_WAIT_MS = 1_000  # the thread's wait per attempt: short, so a stop is never held up for long
RETRY_PAUSE = 1.0  # seconds between the thread's attempts while the database refuses


class SegmentIndexer:
    """Indexes written segments now if the database lets it, else soon, from a background thread."""

    def __init__(self, lineage: Lineage, *, inline_wait_ms: int = INLINE_WAIT_MS,
                 retry_wait_ms: int = RETRY_WAIT_MS, retry_pause: float = RETRY_PAUSE) -> None:
        self._lineage = lineage
        self._inline_wait_ms = inline_wait_ms
        self._retry_wait_ms = retry_wait_ms
        self._retry_pause = retry_pause
        self._pending: list[Segment] = []  # in the order written; emptied only once indexed
        self._guard = threading.Lock()  # over _pending and _thread
        self._inline = threading.Lock()  # one request indexes in passing at a time; the others queue
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._behind_since: float | None = None  # when an insert first failed, until all are indexed
        self._said = False  # whether the server's log says the index is behind

    def add(self, segment: Segment) -> None:
        """Index ``segment``, or keep it for the thread; never raises, never waits long."""
        with self._guard:
            queued = bool(self._pending)
            if queued:
                self._pending.append(segment)  # after the ones already waiting: the index keeps its order
        if not queued and self._inline.acquire(blocking=False):
            try:
                index_segments(self._lineage, [segment], self._inline_wait_ms)
                return
            except Exception as exc:  # noqa: BLE001 - a locked, full or read-only database must not fail the answer
                self._fell_behind(exc, say=False)  # a lock held for a moment: the thread's attempt tells
            finally:
                self._inline.release()
        if not queued:
            with self._guard:
                self._pending.append(segment)  # read back by time (``created``), so the order here is free
        self._start()

    @property
    def pending(self) -> int:
        """How many written segments wait to be indexed."""
        with self._guard:
            return len(self._pending)

    def close(self, timeout: float = 5.0) -> None:
        """Index what is pending (for up to ``timeout`` seconds), then stop the thread.

        What is still pending then stays on disk, and the next server on the store indexes it.
        """
        self._stopping.set()
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        left = self.pending
        if left:
            log.warning("%d served request segment(s) are written but not indexed yet; the next `orch serve` "
                        "of this store indexes them, so `orch monitor` sees them then", left)

    def _start(self) -> None:
        with self._guard:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="orch-request-indexer", daemon=True)
                self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        while True:
            with self._guard:
                batch = list(self._pending)
            if batch:
                try:
                    index_segments(self._lineage, batch, self._retry_wait_ms)
                except Exception as exc:  # noqa: BLE001 - keep them and try again; the server keeps answering
                    self._fell_behind(exc, say=True)
                    if self._stopping.wait(self._retry_pause):
                        return
                    continue
                with self._guard:
                    del self._pending[:len(batch)]
                    caught_up = not self._pending
                if caught_up:
                    self._caught_up()
                continue
            if self._stopping.is_set():
                return
            self._wake.wait()
            self._wake.clear()

    def _fell_behind(self, exc: BaseException, *, say: bool) -> None:
        """Note that the index is behind; say so once, when the thread's own attempt failed too."""
        if self._behind_since is None:
            self._behind_since = time.monotonic()
        if say and not self._said:
            self._said = True
            if isinstance(exc, DatabaseLockedError):
                why = (f"another process holds the write lock of the metadata database {exc.path} (a sqlite3 "
                       "shell or another tool with a transaction open?)")
            else:
                why = (str(exc).splitlines()[0] if str(exc) else type(exc).__name__).rstrip(".")
            log.warning("served requests are written to the store but not indexed for `orch monitor` yet: %s. "
                        "Predictions go on, and the index catches up once the database takes writes again.", why)

    def _caught_up(self) -> None:
        if self._said and self._behind_since is not None:
            log.warning("the request index caught up after %.0f s: every served request is indexed for "
                        "`orch monitor` again", time.monotonic() - self._behind_since)
        self._behind_since = None
        self._said = False


def index_left_over(context: Context, name: str) -> int:
    """Seal the segments of ``name`` an earlier server left open, and index those it never indexed;
    returns how many were indexed.

    A database that refuses now leaves them for the next start, as the requests themselves are.
    """
    from orchestrator.request_compaction import compaction_lock, finish_compactions

    folder = segment_folder(context.root, name)
    if not folder.is_dir():
        return 0
    with compaction_lock(folder) as held:
        if not held:  # a compaction's sources must not be taken for left over: the next start indexes them
            return 0
        finish_compactions(context, name)
        seal_abandoned(context.root, name)
        segments = unindexed_segments(context, name)
    if not segments:
        return 0
    try:
        index_segments(context.lineage, sorted(segments, key=lambda s: s.created), INLINE_WAIT_MS * 10)
    except Exception as exc:  # noqa: BLE001 - serving must start even when the index cannot be written
        log.warning("%d served request segment(s) left by an earlier server are not indexed yet: %s",
                    len(segments), str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return 0
    return len(segments)
