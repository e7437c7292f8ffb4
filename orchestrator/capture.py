"""Capturing what a step prints and logs, per attempt.

While a step runs, ``sys.stdout`` and ``sys.stderr`` are replaced by tees
that keep the text (and, with ``--verbose``, pass it on), and one reused
logging handler on the root logger keeps the step's log records. This runs
for every attempt, trivial ones included, so it allocates little and does
not reconfigure logging each time. It must not change what the user's own
logging configuration prints outside steps.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import sys
from collections import deque
from typing import Any

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# What an attempt keeps of each stream, in characters: the first half and the last half of
# this. A step that prints a line per row of a large frame would otherwise hold all of it in
# its worker, send it to the driver and write it into metadata.db, once per attempt and item.
CAPTURE_LIMIT = 1_000_000


def _left_out(count: int) -> str:
    return (f"\n[... {count:,} characters left out: an attempt keeps the first and last "
            f"{CAPTURE_LIMIT // 2:,} of each stream; --verbose shows all of it live ...]\n")


class _Tee(io.TextIOBase):
    """Collects text and, when echoing, also passes it to the original stream.

    With a ``spill`` file, every write also goes there at once, so that the text
    survives the process being killed (a step that runs out of its timeout).
    """

    def __init__(self, echo_to: Any | None, spill: Any | None = None) -> None:
        self.head: list[str] = []
        self.tail: deque[str] = deque()
        self._head_room = CAPTURE_LIMIT // 2
        self._tail_size = 0
        self.left_out = 0
        self.echo_to = echo_to
        self.spill = spill

    def write(self, text: str) -> int:
        self._keep(text)
        if self.echo_to is not None:
            self.echo_to.write(text)
        if self.spill is not None:
            self.spill.write(text)
            self.spill.flush()
        return len(text)

    def flush(self) -> None:
        if self.echo_to is not None:
            self.echo_to.flush()

    def isatty(self) -> bool:
        return False

    def _keep(self, text: str) -> None:
        if self._head_room:
            part = text[:self._head_room]
            self.head.append(part)
            self._head_room -= len(part)
            text = text[len(part):]
            if not text:
                return
        self.tail.append(text)
        self._tail_size += len(text)
        room = CAPTURE_LIMIT - CAPTURE_LIMIT // 2
        while self._tail_size > room:
            excess, first = self._tail_size - room, self.tail[0]
            if len(first) <= excess:
                self.tail.popleft()
                excess = len(first)
            else:
                self.tail[0] = first[excess:]
            self._tail_size -= excess
            self.left_out += excess

    def getvalue(self) -> str:
        middle = _left_out(self.left_out) if self.left_out else ""
        return "".join(self.head) + middle + "".join(self.tail)


class _RecordHandler(logging.Handler):
    """Writes log records into the active capture's buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter(_FORMAT))
        self.target: _Tee | None = None

    def emit(self, record: logging.LogRecord) -> None:
        target = self.target
        if target is not None:
            try:
                target.write(self.format(record) + "\n")
            except Exception:  # noqa: BLE001 - logging's own convention for a failing handler
                self.handleError(record)


_handler: _RecordHandler | None = None


def _record_handler() -> _RecordHandler:
    global _handler
    if _handler is None:
        _handler = _RecordHandler()
        root = logging.getLogger()
        if not root.handlers and root.level > logging.INFO:
            # Logging is not configured: let INFO records reach handlers so steps' INFO logs
            # are captured. Nothing new is printed: with no handlers, only WARNING and above
            # reach Python's last-resort handler, as before.
            root.setLevel(logging.INFO)
    return _handler


_STREAMS = ("stdout", "stderr", "logs")

# sys.stderr as it was outside any capture, while one is active: see ``driver_stderr``.
_outside: list[Any] = []


def driver_stderr() -> Any:
    """The process's own stderr, also while a step's capture has replaced ``sys.stderr``.

    What the orchestrator itself says while a step runs in this process
    (another thread waiting for the metadata database) is meant for the user,
    not for that step's captured output in ``orch logs``.
    """
    return _outside[0] if _outside else sys.stderr


def read_spill(folder: str | None) -> tuple[str, str, str]:
    """What a killed attempt had written to its spill folder (stdout, stderr, logs); removes it."""
    if not folder:
        return "", "", ""
    texts = []
    for stream in _STREAMS:
        try:
            texts.append(_read_clipped(os.path.join(folder, stream)))
        except OSError:
            texts.append("")
    shutil.rmtree(folder, ignore_errors=True)
    return texts[0], texts[1], texts[2]


def _read_clipped(path: str) -> str:
    """A spill file's text, clipped like a live capture (counting bytes, not characters)."""
    half = CAPTURE_LIMIT // 2
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size <= CAPTURE_LIMIT:
            return f.read().decode("utf-8", errors="replace")
        head = f.read(half)
        f.seek(size - half)
        tail = f.read()
    return (head.decode("utf-8", errors="replace") + _left_out(size - len(head) - len(tail))
            + tail.decode("utf-8", errors="replace"))


class Capture:
    """``with Capture(echo) as c: ...`` then ``c.stdout``, ``c.stderr``, ``c.logs``.

    ``spill``: a folder where the text is also written as it comes (for an
    attempt that may be killed; see ``read_spill``); removed when the capture ends.
    """

    __slots__ = ("_err", "_files", "_level", "_log", "_out", "_saved", "echo", "log_level", "logs", "spill",
                 "stderr", "stdout")

    def __init__(self, echo: bool, spill: str | None = None, log_level: int | None = None) -> None:
        self.echo = echo
        self.spill = spill
        self.log_level = log_level  # lower the root logger to this meanwhile (the driver's; see TaskSpec)
        self._level: int | None = None
        self.stdout = self.stderr = self.logs = ""

    def __enter__(self) -> Capture:
        self._saved = (sys.stdout, sys.stderr)
        self._files = [open(os.path.join(self.spill, stream), "w", encoding="utf-8")  # noqa: SIM115
                       for stream in _STREAMS] if self.spill else [None, None, None]
        self._out = _Tee(sys.stdout if self.echo else None, self._files[0])
        self._err = _Tee(sys.stderr if self.echo else None, self._files[1])
        self._log = _Tee(sys.stderr if self.echo else None, self._files[2])
        handler = _record_handler()
        handler.target = self._log
        root = logging.root
        root.addHandler(handler)
        if self.log_level is not None and self.log_level < root.level:
            self._level = root.level
            root.setLevel(self.log_level)
        _outside.append(sys.stderr)
        sys.stdout, sys.stderr = self._out, self._err
        return self

    def __exit__(self, *exc: object) -> None:
        sys.stdout, sys.stderr = self._saved
        if _outside:
            _outside.pop()
        handler = _record_handler()
        handler.target = None
        root = logging.root
        root.removeHandler(handler)
        if self._level is not None and root.level == self.log_level:
            root.setLevel(self._level)  # unless something else changed it meanwhile
        self.stdout = self._out.getvalue()
        self.stderr = self._err.getvalue()
        self.logs = self._log.getvalue()
        if self.spill:
            for f in self._files:
                if f is not None:
                    f.close()
            shutil.rmtree(self.spill, ignore_errors=True)
