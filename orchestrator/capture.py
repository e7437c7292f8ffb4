"""Capturing what a step prints and logs, per attempt.

While a step runs, ``sys.stdout`` and ``sys.stderr`` are replaced by tees
that keep the text (and, with ``--verbose``, pass it on), file descriptors 1
and 2 are pointed at the same tees (``fd_capture``: a subprocess's or C code's
output), and one reused logging handler on the root logger keeps the step's
log records. This runs
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
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from orchestrator.fd_capture import FdCapture, FdWriter, fileno_of, held_writer
from orchestrator.process_id import current_pid
from orchestrator.step_logging import (
    allow_basic_config,
    before_config,
    config_hooked,
    hook_config,
    put_back_loggers,
    put_back_root,
    root_changed,
)

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# What an attempt keeps of each stream, in characters: the first half and the last half of
# this. A step that prints a line per row of a large frame would otherwise hold all of it in
# its worker, send it to the driver and write it into metadata.db, once per attempt and item.
CAPTURE_LIMIT = 1_000_000


def _left_out(count: int) -> str:
    return (f"\n[... {count:,} characters left out: an attempt keeps the first and last "
            f"{CAPTURE_LIMIT // 2:,} of each stream; --verbose shows all of it live ...]\n")


class _Tee:
    """Collects text and, when echoing, also passes it to the original stream.

    With a ``spill`` file, every write also goes there at once, so that the text
    survives the process being killed (a step that runs out of its timeout).

    A plain class registered as an ``io.TextIOBase`` (``isinstance`` holds,
    as libraries that check ``sys.stdout`` expect), not a subclass of one:
    three are made for every attempt, and an ``IOBase`` instance costs about
    a microsecond more to make and another to finalize (its ``__del__``
    closes it), on a path a trivial step spends ~20 µs on in all.
    """

    __slots__ = ("_buffer", "_forked", "_head_room", "_tail_size", "closed", "echo_to", "ends_line", "fd",
                 "fds", "head", "left_out", "pid", "spill", "tail")

    encoding = "utf-8"
    errors = "replace"
    newlines = None
    line_buffering = False

    def __init__(self, echo_to: Any | None, spill: Any | None = None, fd: int | None = None,
                 pid: int | None = None) -> None:
        self.head: list[str] = []
        self.tail: deque[str] | None = None  # made once the head is full (most attempts never fill it)
        self._head_room = CAPTURE_LIMIT // 2
        self._tail_size = 0
        self.left_out = 0
        self.echo_to = echo_to
        self.spill = spill
        self.fd = fd  # the descriptor this stream stands for (1 or 2), if any
        self.fds: FdCapture | None = None  # drained before each write, to keep the order
        self.pid = current_pid() if pid is None else pid
        self.ends_line = True  # the text so far ends a line (or there is none)
        self._forked: list[str] | None = None  # text written in a forked process, not yet sent
        self._buffer: _Bytes | None = None
        self.closed = False

    @property
    def buffer(self) -> _Bytes:
        """``sys.stdout.buffer``, made when a step asks for it (most never do)."""
        if self._buffer is None:
            self._buffer = _Bytes(self)
        return self._buffer

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if current_pid() != self.pid:
            # A process the step forked (a multiprocessing pool): this copy of the tee is not the
            # step's, so its text goes to the descriptor, which the step's capture reads, a line
            # at a time so that the lines of several such processes do not run into each other.
            if self._forked is None:
                self._forked = []
            self._forked.append(text)
            if "\n" in text:
                self.flush()
            return len(text)
        if self.fds is not None:
            self.fds.drain()
        self.keep_raw(text)
        if self.echo_to is not None:
            self.echo_to.write(text)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def keep_raw(self, text: str) -> None:
        """Keep ``text`` (and spill it): what print wrote, or what arrived on the descriptor."""
        self.ends_line = text.endswith("\n")
        self._keep(text)
        if self.spill is not None:
            self.spill.write(text)
            self.spill.flush()

    def flush(self) -> None:
        if self._forked:
            text, self._forked = "".join(self._forked), []
            if self.fd is not None:
                data = text.encode("utf-8", errors="replace")
                while data:
                    data = data[os.write(self.fd, data):]
        if self.echo_to is not None and current_pid() == self.pid:
            self.echo_to.flush()

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        """Nothing to release: what was written stays captured (the step's ``sys.stdout.close()``)."""

    def fileno(self) -> int:
        """The descriptor, which points at this capture too (``subprocess.run(stdout=sys.stdout)``)."""
        if self.fd is None or self.fds is None:
            raise io.UnsupportedOperation("fileno")
        return self.fd

    def _keep(self, text: str) -> None:
        if self._head_room:
            part = text[:self._head_room]
            self.head.append(part)
            self._head_room -= len(part)
            text = text[len(part):]
            if not text:
                return
        if self.tail is None:
            self.tail = deque()
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
        if self.tail is None:
            return "".join(self.head)
        middle = _left_out(self.left_out) if self.left_out else ""
        return "".join(self.head) + middle + "".join(self.tail)


io.TextIOBase.register(_Tee)


class _Bytes(io.RawIOBase):
    """``sys.stdout.buffer``: bytes written by a step, kept as text (bytes not UTF-8 as \ufffd)."""

    def __init__(self, tee: _Tee) -> None:
        super().__init__()
        self._tee = tee

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        data = bytes(data)
        self._tee.write(data.decode("utf-8", errors="replace"))
        return len(data)


_NEVER = 1 << 30  # a level no record has


class _RecordHandler(logging.Handler):
    """Writes log records into the active capture's buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter(_FORMAT))
        self.target: _Tee | None = None
        # Records at this level and above are printed on the console by a handler of the user's:
        # kept, but not echoed a second time in the orchestrator's format (see ``_console_level``).
        self.console_level = _NEVER
        self.consoles: tuple[Any, ...] = ()  # the streams that are the console, while an attempt echoes

    def root_configured(self) -> None:
        """The step configured the root logger (``basicConfig``): a handler of its may print on the console now."""
        if self.consoles:
            self.console_level = _console_level(logging.root, self.consoles)

    def emit(self, record: logging.LogRecord) -> None:
        target = self.target
        if target is not None:
            try:
                text = self.format(record) + "\n"
                if record.levelno >= self.console_level:
                    target.keep_raw(text)
                else:
                    target.write(text)
            except Exception:  # noqa: BLE001 - logging's own convention for a failing handler
                self.handleError(record)


def _console_level(root: logging.Logger, consoles: tuple[Any, ...]) -> int:
    """The lowest level a handler of the user's on ``root`` prints to the console at, else ``_NEVER``.

    With ``verbose``, a step's records are echoed so that they are seen; a
    ``logging.basicConfig()`` of the user's already prints them on stderr (or
    on a notebook's stream), which would show each record twice.
    """
    level = _NEVER
    for handler in root.handlers:
        stream = getattr(handler, "stream", None)
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler) and (
                any(stream is console for console in consoles) or fileno_of(stream) in (1, 2)):
            level = min(level, handler.level)
    return level


_handler: _RecordHandler | None = None


def _record_handler() -> _RecordHandler:
    global _handler
    if _handler is None:
        _handler = _RecordHandler()
        allow_basic_config(_handler)
    return _handler


_STREAMS = ("stdout", "stderr", "logs")
_NO_FILES: list[Any] = [None, None, None]  # no spill folder: nothing of the capture is written to files

# sys.stderr as it was outside any capture, while one is active: see ``driver_stderr``.
_outside: list[Any] = []


def driver_stderr() -> Any:
    """The process's own stderr, also while a step's capture has replaced ``sys.stderr``.

    What the orchestrator itself says while a step runs in this process
    (another thread waiting for the metadata database) is meant for the user,
    not for that step's captured output in ``orch logs``.
    """
    return _outside[0] if _outside else sys.stderr


class TerminalStream:
    """The stream a display was made on, written to even while a step's capture holds it.

    rich's ``Console(stderr=True)`` looks ``sys.stderr`` up at each write: while a step runs
    that is the step's capture, which is no terminal, so the live progress bar did not redraw
    (and its lines would have been kept in the step's stderr). Made from ``sys.stderr`` before
    the run, this keeps writing there; when that stream is on a descriptor a capture points at
    its pipe, the text goes to the capture's saved copy of the descriptor instead.
    """

    def __init__(self, stream: Any) -> None:
        self.stream = getattr(stream, "rich_proxied_file", stream)  # not rich's own redirect of it
        # A capture's tee (a run started inside a step) is meant to keep what is written: left as it is.
        self._fd = None if type(self.stream) is _Tee else fileno_of(self.stream)
        self.encoding = getattr(self.stream, "encoding", None) or "utf-8"

    def _target(self) -> Any:
        if self._fd is None:
            return self.stream
        held = held_writer(self._fd)  # the run holds the descriptor on the pipes, also between steps
        if held is not None:
            return held
        if _outside:
            real = _outside[0]  # the outermost capture's: the descriptor as it was before any of them
            if type(real) is FdWriter and real.fd == self._fd:
                return real
        return self.stream

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()

    def isatty(self) -> bool:
        # The target's: the stream itself says no while its descriptor points at a capture's pipe.
        isatty = getattr(self._target(), "isatty", None)
        return bool(isatty()) if isatty is not None else False

    def fileno(self) -> int:
        return int(self._target().fileno())

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def snapshot() -> tuple[str, str, str] | None:
    """What the step running in this process has printed and logged so far (stdout, stderr, logs).

    None when no step's capture is active. Called from another thread while
    the step goes on (a worker asked for it before it is killed on Ctrl-C), so
    it only reads; what a subprocess wrote that the step has not drained yet
    is not in it.
    """
    out, err = sys.stdout, sys.stderr
    if type(out) is not _Tee or type(err) is not _Tee:  # type(): _Tee is an ABC, isinstance is slow
        return None
    log = _handler.target if _handler is not None else None
    return _text_of(out), _text_of(err), _text_of(log) if log is not None else ""


def _text_of(tee: _Tee) -> str:
    """``tee``'s text, though the step's thread may be writing to it meanwhile."""
    for _ in range(10):
        try:
            return tee.getvalue()
        except RuntimeError:  # its tail changed while it was joined
            continue
    return "".join(tee.head)


def new_spill_folder() -> str:
    """A spill folder for an attempt that may be killed: ``orch-attempt-<pid>-<random>`` in the temp folder.

    ``read_spill`` removes it, but a process killed meanwhile (SIGKILL, the OOM killer) cannot:
    named by its pid, it is removed with the next such folder a live process makes
    (``files.process_temp_folder``).
    """
    from orchestrator.files import process_temp_folder

    return process_temp_folder("orch-attempt-")


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


#: The user's log handlers that write to a notebook's page, while a run goes on (``page_handlers_captured``):
#: each with the descriptor its stream stands for (1: sys.stdout, 2: sys.stderr).
_page_handlers: list[tuple[logging.StreamHandler[Any], int]] = []


@contextmanager
def page_handlers_captured() -> Iterator[None]:
    """While a run goes on, its steps' captures take what the user's log handlers write to a notebook's page.

    In a terminal, a handler of the user's (a module's own ``log.addHandler(StreamHandler())``,
    made at import with the sys.stderr of that time, ``propagate = False``) writes to
    descriptor 2, which a step's capture reads. A notebook's sys.stderr is no descriptor:
    such a record was printed on the page while the step ran, ``progress`` or not, and was
    missing from the step's stderr and logs. The handlers are looked for once per run, and
    only where sys.stdout or sys.stderr is not a descriptor.
    """
    found = _handlers_on_page()
    shell = _kernel_shell()
    if not found and shell is None:
        yield
        return
    outer, outer_shell = _page_handlers[:], _display_shell[:]
    _page_handlers[:] = found
    _display_shell[:] = [shell] if shell is not None else []
    try:
        yield
    finally:
        _page_handlers[:], _display_shell[:] = outer, outer_shell


#: The IPython shell whose ``display()`` a step's capture keeps while a run goes on (``page_handlers_captured``).
_display_shell: list[Any] = []


def _kernel_shell() -> Any:
    """The running IPython shell whose ``display()`` does not go through sys.stdout (a kernel's), else None.

    A kernel sends what ``display(df)`` shows to the page as a message, not as text on
    sys.stdout: it was shown while the step ran, even in a run that shows nothing, and was
    missing from the step's stdout (``orch logs``, a cached run). A terminal IPython prints
    it on sys.stdout, which the capture holds already.
    """
    get_ipython = getattr(sys.modules.get("IPython"), "get_ipython", None)
    shell = get_ipython() if callable(get_ipython) else None
    publisher = getattr(shell, "display_pub", None)
    if publisher is None or type(publisher).__module__.startswith("IPython.core."):
        return None
    return shell


class _DisplayKept:
    """A shell's display publisher while a step runs: what ``display()`` shows is kept as the step's stdout.

    Its text form (``text/plain``, what a terminal shows) is kept; shown on the page only
    when the run echoes (``verbose``), as print's text is.
    """

    def __init__(self, real: Any, out: _Tee, echo: bool) -> None:
        self._real, self._out, self._echo = real, out, echo

    def publish(self, data: Any, metadata: Any = None, *args: Any, **kwargs: Any) -> None:
        text = data.get("text/plain") if isinstance(data, dict) else None
        if isinstance(text, str) and text:
            self._out.keep_raw(text if text.endswith("\n") else text + "\n")
        if self._echo:
            self._real.publish(data, metadata, *args, **kwargs)

    def clear_output(self, *args: Any, **kwargs: Any) -> None:
        if self._echo:
            self._real.clear_output(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def _handlers_on_page() -> list[tuple[logging.StreamHandler[Any], int]]:
    pages = {id(stream): fd for fd, stream in ((1, sys.stdout), (2, sys.stderr))
             if type(stream) is not _Tee and fileno_of(stream) not in (1, 2)}
    if not pages:
        return []
    loggers = [logging.root, *(lg for lg in list(logging.root.manager.loggerDict.values())
                               if isinstance(lg, logging.Logger))]
    found: dict[int, tuple[logging.StreamHandler[Any], int]] = {}
    for logger in loggers:
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler) \
                    and id(handler.stream) in pages:
                found[id(handler)] = (handler, pages[id(handler.stream)])
    return list(found.values())


#: The root logger's levels before captures opened it to INFO records, until the run ends.
_lowered_from: list[int] = []


@contextmanager
def root_level_restored() -> Iterator[None]:
    """Put the root logger's level back, after a run, if a capture opened it to INFO records."""
    outer = len(_lowered_from)  # a nested run leaves the outer run's to the outer run
    try:
        yield
    finally:
        if len(_lowered_from) > outer:
            level = _lowered_from[outer]
            del _lowered_from[outer:]
            if logging.root.level == logging.INFO:  # unless something else changed it meanwhile
                logging.root.setLevel(level)


class Capture:
    """``with Capture(echo) as c: ...`` then ``c.stdout``, ``c.stderr``, ``c.logs``.

    ``spill``: a folder where the text is also written as it comes (for an
    attempt that may be killed; see ``read_spill``); removed when the capture ends.
    """

    __slots__ = ("_disabled", "_display", "_err", "_fds", "_files", "_level", "_log", "_out", "_root_handlers", "_root_level",
                 "_saved", "echo",
                 "log_level", "logs", "spill", "stderr", "stdout")

    def __init__(self, echo: bool, spill: str | None = None, log_level: int | None = None) -> None:
        self.echo = echo
        self.spill = spill
        self.log_level = log_level  # lower the root logger to this meanwhile (the driver's; see TaskSpec)
        self._level: int | None = None
        self.stdout = self.stderr = self.logs = ""

    def __enter__(self) -> Capture:
        self._saved = (sys.stdout, sys.stderr)
        self._files = [open(os.path.join(self.spill, stream), "w", encoding="utf-8")  # noqa: SIM115
                       for stream in _STREAMS] if self.spill else _NO_FILES
        pid = current_pid()
        self._out = _Tee(None, self._files[0], 1, pid)
        self._err = _Tee(None, self._files[1], 2, pid)
        self._fds = FdCapture({1: self._out, 2: self._err}, self.echo)
        self._fds.start()
        # Where the real stderr (and, to echo, stdout) are now: a stream that wrote to descriptor 1
        # or 2 would write into the capture, so what must reach the terminal goes to its saved copy.
        real_err = self._real(sys.stderr)
        if self._fds.writers:
            self._out.fds = self._err.fds = self._fds
        if self.echo:
            self._out.echo_to, self._err.echo_to = self._real(sys.stdout), real_err
        self._log = _Tee(real_err if self.echo else None, self._files[2], None, pid)
        self._display = None
        if _display_shell:  # a kernel's display(): kept as the step's stdout (see ``_kernel_shell``)
            self._display = _display_shell[0].display_pub
            _display_shell[0].display_pub = _DisplayKept(self._display, self._out, self.echo)
        if _page_handlers:  # a notebook's: what they write is the step's (see ``page_handlers_captured``)
            for page_handler, fd in _page_handlers:
                if page_handler.stream is self._saved[fd - 1]:
                    page_handler.stream = self._out if fd == 1 else self._err
        handler = _record_handler()
        handler.target = self._log
        if not config_hooked:
            hook_config()
        root = logging.root
        if self.echo:
            # The step's own tees too: a `logging.basicConfig()` in the step prints on sys.stderr, its capture.
            handler.consoles = (*self._saved, sys.__stdout__, sys.__stderr__, self._out, self._err)
            handler.console_level = _console_level(root, handler.consoles)
        if not root.handlers and root.level > logging.INFO:
            # Logging is not configured: let INFO records reach handlers, so the step's INFO logs
            # are captured. Nothing new is printed: with no handlers, only WARNING and above reach
            # Python's last-resort handler. Not put back after each step (a level change clears
            # every logger's cache: 26 µs a step once sklearn and Dask are imported), but when the
            # run ends (``root_level_restored``): a root logger left at INFO would make a later
            # `logging.basicConfig()` of the user's print INFO records.
            _lowered_from.append(root.level)
            root.setLevel(logging.INFO)
        self._root_handlers = root.handlers[:]  # what the step may change is put back (``step_logging``)
        self._disabled = root.manager.disable  # and ``logging.disable(...)``, which silences every logger
        root.addHandler(handler)
        if self.log_level is not None and self.log_level < root.level:
            self._level = root.level
            root.setLevel(self.log_level)
        self._root_level = root.level
        _outside.append(real_err)
        sys.stdout, sys.stderr = self._out, self._err
        return self

    def _real(self, stream: Any) -> Any:
        """Where text meant for ``stream`` goes now that descriptors 1 and 2 may point at the capture.

        By the descriptor ``stream`` writes to, not the one it stands for: under ``orch run --json``
        ``sys.stdout`` is the terminal's stderr (``prints_to_stderr``), and echoing a step's stdout
        onto descriptor 2 wrote it into the step's captured stderr as well.
        """
        if type(stream) is _Tee:  # type(): _Tee is an ABC, isinstance is slow
            return stream  # a capture around this one
        fd = fileno_of(stream)
        if fd is None:
            return stream  # a stream not on a descriptor (a notebook's)
        return self._fds.writers.get(fd, stream)

    def __exit__(self, *exc: object) -> None:
        sys.stdout, sys.stderr = self._saved
        if self._display is not None and _display_shell:
            _display_shell[0].display_pub = self._display
        if _page_handlers:
            for page_handler, fd in _page_handlers:
                if page_handler.stream is (self._out if fd == 1 else self._err):
                    page_handler.stream = self._saved[fd - 1]
        self._fds.stop()
        for tee in (self._out, self._err, self._log):
            if tee.echo_to is not None and not tee.ends_line:
                # `print(..., end="")` last: end its line on the terminal, or the progress line
                # that follows would run on from it (`50%  ran fit`). What is kept is unchanged.
                tee.echo_to.write("\n")
                tee.echo_to.flush()
        if _outside:
            _outside.pop()
        handler = _record_handler()
        handler.target = None
        if self.echo:
            handler.console_level = _NEVER
            handler.consoles = ()
        root = logging.root
        root.removeHandler(handler)
        if before_config:  # the step ran a dictConfig or fileConfig
            put_back_loggers()
        if root_changed(self._root_handlers, self._root_level):
            put_back_root(self._root_handlers, self._root_level, handler)
        if self._level is not None and root.level == self.log_level:
            root.setLevel(self._level)  # unless something else changed it meanwhile
        if root.manager.disable != self._disabled:
            logging.disable(self._disabled)
        self.stdout = self._out.getvalue()
        self.stderr = self._err.getvalue()
        self.logs = self._log.getvalue()
        if self.spill:
            for f in self._files:
                if f is not None:
                    f.close()
            interrupted = isinstance(exc[0], type) and issubclass(exc[0], KeyboardInterrupt)
            if not interrupted:
                # On Ctrl-C the spill stays: it reached this child of `orch` too, and the parent,
                # which kills it and then reads the spill (``read_spill`` removes it), would
                # otherwise find it gone, and the interrupted attempt would have lost its output.
                shutil.rmtree(self.spill, ignore_errors=True)
