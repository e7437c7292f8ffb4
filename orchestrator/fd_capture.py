"""Capturing what is written to file descriptors 1 and 2 while a step runs.

Replacing ``sys.stdout`` catches ``print`` but not what bypasses Python's
streams: a subprocess (``subprocess.run(["echo", ...])``, ``os.system``) or C
code (a numpy, sklearn or BLAS warning) writes to the process's descriptors
directly. Without this, that text went to the terminal in the middle of the
progress lines (or into a pool worker's inherited stderr) and was missing from
``orch logs``.

While a capture is active, descriptors 1 and 2 point at pipes; a reader thread
moves what arrives into the capture (and, with ``--verbose``, on to the real
descriptor, so it still shows live). A pipe rather than a file: a subprocess
printing hundreds of megabytes is clipped in memory as ``print`` is, not
written to disk. The pipes and their thread are made once per process and
reused by every capture, since starting a thread per attempt would cost more
than a trivial step. What arrives while no capture is active (a background
process a step left running) goes to the real descriptor, as it would have
without the capture.
"""

from __future__ import annotations

import codecs
import io
import os
import select
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from orchestrator.process_id import current_pid


class Sink(Protocol):
    def keep_raw(self, text: str) -> None: ...


class FdWriter:
    """A text stream writing to the real descriptor while the capture has redirected it.

    Used for what must reach the terminal while fd 1 or 2 points at a pipe:
    ``--verbose`` echo, and the orchestrator's own messages (``driver_stderr``).
    """

    def __init__(self, fd: int, saved: int, encoding: str, errors: str = "replace") -> None:
        self.fd, self.saved, self.encoding, self.errors = fd, saved, encoding, errors

    @classmethod
    def like(cls, stream: Any, fd: int, saved: int) -> FdWriter:
        """A writer that encodes as ``stream`` does (``orch`` makes a stream that is not UTF-8
        write its own marks as ASCII: ``text_streams``), but never fails on a character."""
        errors = getattr(stream, "errors", None)
        return cls(fd, saved, getattr(stream, "encoding", None) or "utf-8",
                   errors if isinstance(errors, str) and errors != "strict" else "replace")

    def write(self, text: str) -> int:
        # Once the capture ended its saved copy is closed, and the descriptor itself is real again.
        _write_all(self.fd if self.saved < 0 else self.saved, text.encode(self.encoding, errors=self.errors))
        return len(text)

    def flush(self) -> None:
        """Nothing to flush: every write reached the descriptor."""

    def isatty(self) -> bool:
        return os.isatty(self.fd if self.saved < 0 else self.saved)

    def fileno(self) -> int:
        """The real descriptor (``subprocess.run(stdout=sys.stdout)`` between steps reaches the terminal)."""
        return self.fd if self.saved < 0 else self.saved

    def writable(self) -> bool:
        return True

    @property
    def buffer(self) -> _BytesWriter:
        """``sys.stdout.buffer``, for what the run writes as bytes while it holds the descriptors."""
        return _BytesWriter(self)


class _BytesWriter:
    """The binary side of an ``FdWriter``."""

    def __init__(self, writer: FdWriter) -> None:
        self.writer = writer

    def write(self, data: bytes) -> int:
        _write_all(self.writer.fileno(), bytes(data))
        return len(data)

    def flush(self) -> None:
        """Nothing to flush: every write reached the descriptor."""


def _write_all(fd: int, data: bytes) -> None:
    try:
        while data:
            data = data[os.write(fd, data):]
    except OSError:
        pass  # the terminal went away: what was printed is still captured


_libc: list[Any] = []


def _flush_c_stdio() -> None:
    """Flush C's stdio buffers, so text a C extension ``printf``-ed lands where it was meant to."""
    try:
        if not _libc:
            import ctypes

            # PyDLL keeps the GIL for the call: it is quick, and letting another thread (the
            # commit thread) take the GIL here would make every step wait for it.
            _libc.append(ctypes.PyDLL(None))
        _libc[0].fflush(None)
    except (OSError, AttributeError):
        _libc.append(None)


class _Frame:
    """One active capture: where each descriptor's text goes, and the descriptors it replaced."""

    __slots__ = ("echo", "saved", "sinks", "thread", "writers")

    def __init__(self, sinks: dict[int, Sink], echo: bool) -> None:
        self.sinks, self.echo = sinks, echo
        self.thread = threading.get_ident()
        self.saved: dict[int, int] = {}
        self.writers: dict[int, FdWriter] = {}


class _Pipes:
    """The process's two pipes, their reader thread, and the stack of active captures."""

    def __init__(self) -> None:
        self.pid = current_pid()
        # Re-entrant: a signal handler (Ctrl-C, SIGTERM) may run while this thread holds it, and what
        # it prints into a step's capture drains the pipes, taking it again.
        self.lock = threading.RLock()
        self.frames: list[_Frame] = []
        # While a run holds descriptors 1 and 2 on the pipes (``descriptors_held``): the real
        # descriptors' saved copies, written through these, and the thread that holds them.
        self.held: dict[int, FdWriter] = {}
        self.holder = 0
        self.read: dict[int, int] = {}  # descriptor (1, 2) -> read end
        self.write: dict[int, int] = {}  # descriptor -> write end
        self.decoders: dict[int, Any] = {}
        for fd in (1, 2):
            read, write = os.pipe()
            os.set_blocking(read, False)
            os.set_inheritable(write, False)
            self.read[fd], self.write[fd] = read, write
            self.decoders[fd] = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.ready = select.poll()  # one call says whether either pipe holds anything
        for read in self.read.values():
            self.ready.register(read, select.POLLIN)
        threading.Thread(target=self._pump, name="orch-capture", daemon=True).start()

    def _pump(self) -> None:
        by_read = {read: fd for fd, read in self.read.items()}
        while True:
            try:
                ready, _, _ = select.select(list(by_read), [], [])
            except (OSError, ValueError):
                return
            with self.lock:
                for read in ready:
                    self.take(by_read[read])

    def take(self, fd: int) -> None:
        """Move what pipe ``fd`` holds to the innermost capture (or on to ``fd``), without waiting."""
        while True:
            try:
                data = os.read(self.read[fd], 1 << 16)
            except BlockingIOError:
                return
            if not data:
                return
            if not self.frames:
                # No capture: the real descriptor, as without one (its saved copy while the run holds it).
                _write_all(self.held[fd].saved if self.held else fd, data)
                continue
            text = self.decoders[fd].decode(data)
            # The innermost capture keeps it; one that echoes passes it to the capture around it,
            # as nested tees would, and the outermost to the real descriptor it saved.
            for depth in range(len(self.frames) - 1, -1, -1):
                frame = self.frames[depth]
                if text:
                    frame.sinks[fd].keep_raw(text)
                if not frame.echo:
                    break
                if depth == 0:
                    _write_all(frame.saved[fd], data)

    def drain(self) -> None:
        with self.lock:
            if self.ready.poll(0):
                self.take(1)
                self.take(2)


_pipes: _Pipes | None = None


def _process_pipes() -> _Pipes | None:
    """This process's pipes, made on first use (again in a forked child, which has no reader thread)."""
    global _pipes
    if os.name == "nt":
        return None  # select cannot wait on pipes there: only sys.stdout and sys.stderr are captured
    if _pipes is None or _pipes.pid != current_pid():
        _pipes = _Pipes()
    return _pipes


class FdCapture:
    """``start()`` points fd 1 and 2 at the pipes feeding ``sinks``; ``stop()`` puts them back."""

    def __init__(self, sinks: dict[int, Sink], echo: bool) -> None:
        self._frame = _Frame(sinks, echo)
        self._pipes: _Pipes | None = None
        self.writers = self._frame.writers  # the real descriptors, by the number they stand for

    def start(self) -> None:
        pipes = _process_pipes()
        if pipes is None:
            return
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()  # what was printed before the step is not the step's
            except (AttributeError, OSError, ValueError):
                pass
        _flush_c_stdio()
        frame = self._frame
        with pipes.lock:
            owner = pipes.frames[0].thread if pipes.frames else pipes.holder if pipes.held else frame.thread
            if owner != frame.thread:  # all frames are one thread's
                # Another thread's step holds the descriptors (a Dask worker running tasks in
                # threads): they are the process's, so this step keeps only what Python prints.
                # Saving the pipe as "the real descriptor" would leave it pointing at itself.
                return
            if pipes.held and not pipes.frames:
                # The run holds them on the pipes already: only where their text goes changes.
                for fd in frame.sinks:
                    frame.writers[fd] = pipes.held[fd]
                    frame.saved[fd] = pipes.held[fd].saved
                pipes.frames.append(frame)
                self._pipes = pipes
                return
            for fd in frame.sinks:
                try:
                    saved = os.dup(fd)
                except OSError:
                    continue  # no such descriptor (a daemon started with it closed): nothing to capture
                frame.saved[fd] = saved
                frame.writers[fd] = FdWriter.like(sys.__stdout__ if fd == 1 else sys.__stderr__, fd, saved)
            if len(frame.saved) < len(frame.sinks):
                for saved in frame.saved.values():
                    os.close(saved)
                frame.saved.clear()
                frame.writers.clear()
                return
            for fd in frame.saved:
                os.dup2(pipes.write[fd], fd, inheritable=True)
            pipes.frames.append(frame)
        self._pipes = pipes

    def drain(self) -> None:
        """Take in what has arrived so far, so that it comes before what ``print`` adds next."""
        if self._pipes is not None and self._pipes.pid == current_pid():
            self._pipes.drain()

    def stop(self) -> None:
        """Put the descriptors back, taking in everything written to them until now."""
        pipes, self._pipes = self._pipes, None
        if pipes is None or pipes.pid != current_pid():
            return
        _flush_c_stdio()
        frame = self._frame
        held = pipes.held and frame.writers.get(1) is pipes.held.get(1)
        with pipes.lock:
            for fd, saved in frame.saved.items():
                # Held: pointed at the pipe again, in case the step closed or replaced the descriptor.
                os.dup2(pipes.write[fd] if held else saved, fd, inheritable=True)
            if pipes.ready.poll(0):  # all that was written before the line above is in the pipes
                pipes.take(1)
                pipes.take(2)
            for fd in frame.saved:
                decoder = pipes.decoders[fd]
                # Only bytes held back as the start of a character end as text here (U+FFFD): asking
                # for that only when there are any spares every attempt a call into the codec.
                if decoder.buffer:
                    frame.sinks[fd].keep_raw(decoder.decode(b"", final=True))
            if frame in pipes.frames:
                pipes.frames.remove(frame)
            if held:
                return  # the saved copies are the run's, closed when it lets the descriptors go
            for fd, saved in frame.saved.items():
                frame.writers[fd].saved = -1
                os.close(saved)


@contextmanager
def descriptors_held() -> Iterator[None]:
    """Keep descriptors 1 and 2 on the capture's pipes for a whole sequential run.

    Pointing them at the pipes and back around every attempt cost four ``dup``/``dup2``
    calls and two ``close`` calls a step; held, an attempt only says which capture receives
    what arrives (and points the descriptors at the pipes once more, in case the step closed
    one). Between steps what arrives goes on to the real descriptors, and ``sys.stdout`` and
    ``sys.stderr``, when they write to descriptor 1 or 2, are replaced by writers onto the
    descriptors' saved copies, so that the run's own output (progress, summary) reaches the
    terminal directly, in order.

    Only for a run whose attempts run in this thread, one at a time: not within a capture (a
    run started by a step), nor beside one held already, nor where the descriptors cannot be
    captured (Windows, a descriptor closed), nor when ``sys.stdout`` or ``sys.stderr`` on
    them is not a plain text stream (a wrapper of its own that replacing would bypass).
    """
    pipes = _process_pipes()
    streams = {"stdout": sys.stdout, "stderr": sys.stderr}
    on_fd = {name: fileno_of(stream) for name, stream in streams.items()}
    if (pipes is None or pipes.frames or pipes.held
            or any(fd in (1, 2) and not isinstance(streams[name], io.TextIOWrapper) for name, fd in on_fd.items())):
        yield
        return
    for stream in streams.values():
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
    _flush_c_stdio()
    saved: dict[int, int] = {}
    try:
        for fd in (1, 2):
            saved[fd] = os.dup(fd)
    except OSError:  # a descriptor closed (a daemon started without one): per attempt, as before
        for copy in saved.values():
            os.close(copy)
        yield
        return
    with pipes.lock:
        for fd in (1, 2):
            # Encoding as the stream on it does: the one that writes to it now, else the process's own.
            like = next((streams[name] for name, on in on_fd.items() if on == fd),
                        sys.__stdout__ if fd == 1 else sys.__stderr__)
            pipes.held[fd] = FdWriter.like(like, fd, saved[fd])
            os.dup2(pipes.write[fd], fd, inheritable=True)
        pipes.holder = threading.get_ident()
    for name, target in on_fd.items():
        if target in (1, 2):
            setattr(sys, name, pipes.held[target])
    try:
        yield
    finally:
        for name, stream in streams.items():
            if getattr(sys, name) is pipes.held.get(on_fd[name] or 0):
                setattr(sys, name, stream)
        _flush_c_stdio()
        with pipes.lock:
            for fd in (1, 2):
                os.dup2(saved[fd], fd)
            pipes.take(1)  # what arrived before the line above goes on, before what follows it
            pipes.take(2)
            for writer in pipes.held.values():
                writer.saved = -1
            pipes.held.clear()
            for copy in saved.values():
                os.close(copy)


def held_writer(fd: int) -> FdWriter | None:
    """The writer onto descriptor ``fd``'s real target while a run of this process holds it, else None."""
    pipes = _pipes
    if pipes is None or not pipes.held or pipes.pid != current_pid():
        return None
    return pipes.held.get(fd)


def fileno_of(stream: Any) -> int | None:
    """The descriptor a Python stream writes to, or None (an in-memory or notebook stream)."""
    try:
        return int(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return None
