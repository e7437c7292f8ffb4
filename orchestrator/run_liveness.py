"""A running run's sign of life, for the commands of other hosts that share its metadata database.

On its own host a run that died is found by its process id (``process_state``).
A run whose host is another one (a Kubernetes pod or a container that was
OOM-killed or evicted, a machine that shares the store over the network)
cannot be checked that way, and was shown ``running`` for ever: ``orch cache
gc`` then spared everything written since it started. So each run touches a
file beside the metadata database, ``alive/RUN_ID``, every ``HEARTBEAT``
seconds while it lasts, and removes it when it ends; a run of another host
whose file has not been touched for ``STALE`` seconds is dead.

This module only keeps and reads those files; it knows nothing of runs' records.
A file that cannot be written (a database this user may only read) is no
error: that run is then judged as before, by its host alone.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

HEARTBEAT = 60.0  # seconds between two touches of a run's file: one wake-up a minute, nothing per step
STALE = 600.0     # a file untouched this long belongs to a dead run (ten touches missed: no clock skew or pause)


def alive_file(database: Path, run_id: str) -> Path:
    """The file a run of the metadata database ``database`` touches while it lasts."""
    return database.parent / "alive" / run_id


class Heartbeat:
    """Touches ``alive/RUN_ID`` beside the metadata database from a daemon thread while a run lasts."""

    def __init__(self, database: Path, run_id: str, interval: float = HEARTBEAT) -> None:
        self.path = alive_file(database, run_id)
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        try:
            self.path.parent.mkdir(exist_ok=True)
            self.path.touch()
        except OSError:
            return  # a read-only database folder: judged by its host alone, as runs always were
        self._thread = threading.Thread(target=self._beat, name="orch-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(OSError):
                os.utime(self.path)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        forget(self.path)


def is_stale(database: Path, run_id: str, now: float | None = None) -> bool:
    """Whether the run ``run_id`` has a file that was not touched for ``STALE`` seconds.

    A run without a file (one an orchestrator before heartbeats started, or one
    whose folder was read-only) is not judged stale: nothing says it died.
    """
    try:
        touched = alive_file(database, run_id).stat().st_mtime
    except OSError:
        return False
    return (time.time() if now is None else now) - touched > STALE


def last_touched(database: Path, run_id: str) -> float | None:
    """When the run last touched its file (its last sign of life), or None without a file."""
    try:
        return alive_file(database, run_id).stat().st_mtime
    except OSError:
        return None


def forget(path: Path) -> None:
    """Remove a run's file once it ended or was found dead."""
    with contextlib.suppress(OSError):
        path.unlink()
