"""SIGTERM and SIGHUP stop ``orch run`` as Ctrl-C does: the run is recorded ``interrupted``.

A scheduler ends a job with SIGTERM (``timeout``, a cancelled CI job, ``docker
stop``, Kubernetes and systemd before their SIGKILL), and a dropped SSH session
or a closed terminal sends SIGHUP. By default either ends the driver on the
spot: its pool workers finish their steps unrecorded, the step that was running
has no record, and nothing says why. Raised as a ``KeyboardInterrupt`` instead,
the runner records the stopped steps and the run as ``interrupted`` (naming the
signal, not "the user") and kills the workers, and ``orch run`` exits 128 plus
the signal's number, as a shell reports a process that signal ended.

This module only installs and removes handlers for the length of a run; it
knows nothing of runs or stores. A signal ignored when ``orch`` started
(``nohup`` ignores SIGHUP so that a job outlives its terminal) stays ignored.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

# The signals that stop a run, besides SIGINT (which Python already raises as KeyboardInterrupt).
STOPPING = (signal.SIGTERM, signal.SIGHUP)


class StopSignal(KeyboardInterrupt):
    """SIGTERM or SIGHUP reached ``orch run``: the run stops as it does on Ctrl-C.

    ``orch_reason`` is recorded for the steps it stopped (``stopped by SIGTERM``),
    rather than "interrupted by the user", which would blame someone who pressed nothing.
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.signal_name = signal.Signals(signum).name
        self.orch_reason = f"stopped by {self.signal_name}"
        super().__init__(self.orch_reason)

    @property
    def exit_code(self) -> int:
        """128 + the signal's number (143 for SIGTERM, 129 for SIGHUP), as a shell reports it."""
        return 128 + self.signum


class CtrlC(KeyboardInterrupt):
    """Ctrl-C (SIGINT) reached ``orch run``: the run stops, recorded "interrupted by the user".

    Its own kind tells it apart from a ``KeyboardInterrupt`` that a step raises
    itself, which fails that step as any exception of the step does, as it does
    on a pool or Dask worker (where Ctrl-C never reaches the step).
    """


def stop_behind(exc: BaseException) -> BaseException | None:
    """The ``CtrlC`` or ``StopSignal`` that ``exc`` is, or that it was raised while handling, or None.

    A library that catches Ctrl-C and raises an error of its own (``except
    KeyboardInterrupt: raise Cancelled(...)``) must stop the run all the same,
    not fail one step and go on with the others.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, (CtrlC, StopSignal)):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def ctrl_c_told_apart() -> bool:
    """Whether Ctrl-C arrives as ``CtrlC`` here (``orch run``'s main thread), so a plain KeyboardInterrupt is a step's own."""
    return signal.getsignal(signal.SIGINT) is _ctrl_c


#: Signals that arrived while a run's end was being recorded, one list per block of ``stops_held`` open.
_HELD: list[list[int]] = []


class _Raised:
    """How many stops the handlers raised in this process, and the signal of the last one."""

    count = 0
    signum = 0


def stops_raised() -> int:
    """A count of the stops raised so far: compared after a step, it tells whether one reached it."""
    return _Raised.count


def swallowed_stop(since: int) -> KeyboardInterrupt | None:
    """The stop to raise again if one was raised after ``stops_raised()`` returned ``since``, else None.

    A step that catches Ctrl-C or SIGTERM (``except KeyboardInterrupt:`` around a
    training loop, to save a checkpoint) and returns would otherwise let the run go
    on: its half-done result cached as the step's, the run ``succeeded`` and exit 0.
    """
    if _Raised.count == since:
        return None
    return CtrlC() if _Raised.signum == signal.SIGINT else StopSignal(_Raised.signum)


def _raising(signum: int) -> None:
    _Raised.count += 1
    _Raised.signum = signum


def _stop(signum: int, frame: Any) -> None:
    if _HELD:
        _HELD[-1].append(signum)  # the run's end is being recorded: stopping now would cut it in two
        return
    if _ENDED:
        _said_after_the_end(signum)
        return
    _raising(signum)
    raise StopSignal(signum)


_stop.orch_terminate = True  # type: ignore[attr-defined]


def _ctrl_c(signum: int, frame: Any) -> None:
    if _HELD:
        _HELD[-1].append(signum)
        return
    if _ENDED:
        _said_after_the_end(signum)
        return
    _raising(signum)
    raise CtrlC


#: Once ``orch run``'s run's end is recorded, to the process's exit: how a stop signal is said.
_ENDED: list[Callable[[str], None]] = []
_SAID: list[int] = []
_EXIT_HANDLER: list[bool] = []  # ``_ignored_at_exit`` is registered


@contextlib.contextmanager
def stops_said_after_the_run(say: Callable[[str, str, str], None]) -> Iterator[Callable[[str, str], None]]:
    """For ``orch run`` as a process: once its run's end is recorded, a stop signal is said and stops nothing.

    After the run's end is recorded, ``orch run`` still closes the store, prints the
    summary, the metrics or the JSON document, and the interpreter tears down (pandas,
    scikit-learn: a good part of a second). A Ctrl-C or SIGTERM there (a scheduler
    cancelling at the end of a job) said "interrupted ... resume" and exited 130 or 143,
    or killed the process outright, for a run recorded succeeded. Yields the callback
    for that run alone (``run_pipeline(end_recorded=...)``; not a run its pipeline file or
    a step starts): from its call on, the first signal is said with ``say(signal name, run
    id, status)`` and the exit is as the run is recorded; a second takes the signal's
    default action, so that an exit that hangs (a thread of the user's that never ends)
    can still be stopped.
    """
    if not _EXIT_HANDLER:
        # Before the pipeline's file is imported: exit handlers run last registered first, so this one
        # runs after those of the user's code and libraries, which a signal may still reach (said).
        atexit.register(_ignored_at_exit)
        _EXIT_HANDLER.append(True)

    def end_recorded(run_id: str, status: str) -> None:
        if threading.current_thread() is threading.main_thread():
            _ENDED[:] = [lambda name: say(name, run_id, status)]

    yield end_recorded


def _ignored_at_exit() -> None:
    """After the other exit handlers: the interpreter's last teardown gives the signals their default
    action back, and one arriving there killed ``orch`` (-2, -15) for a run recorded succeeded."""
    if _ENDED:
        for signum in (signal.SIGINT, *STOPPING):
            with contextlib.suppress(OSError, ValueError):
                signal.signal(signum, signal.SIG_IGN)


def _said_after_the_end(signum: int) -> None:
    if _SAID:  # a second one: the exit hangs, so end it as the signal would have
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    _SAID.append(signum)
    with contextlib.suppress(OSError, ValueError):
        _ENDED[0](signal.Signals(signum).name)


@contextlib.contextmanager
def stops_held() -> Iterator[list[int]]:
    """Hold Ctrl-C, SIGTERM and SIGHUP while the block runs; yield the list of those that arrived.

    For the block that records a run's end and prints its summary: a signal
    raised there would leave the run recorded ``succeeded`` and ``orch run``
    saying it was terminated, exit 143. The caller decides what to do with what
    arrived once the block is over. Only where ``signals_as_interrupt`` turned
    the signals into interrupts (``orch run``, main thread); elsewhere (a
    notebook, another thread) signals are left as they are.
    """
    held: list[int] = []
    if threading.current_thread() is not threading.main_thread() \
            or not any(signal.getsignal(signum) is _stop for signum in STOPPING):  # one may be ignored (nohup)
        yield held
        return
    # Ctrl-C is Python's own KeyboardInterrupt: held here as well, for the length of the block.
    previous = signal.getsignal(signal.SIGINT)
    take_sigint = previous is signal.default_int_handler or previous is _ctrl_c
    if take_sigint:
        signal.signal(signal.SIGINT, _stop)
    _HELD.append(held)
    try:
        yield held
    finally:
        if take_sigint:
            signal.signal(signal.SIGINT, previous)
        _unhold(held)


@contextlib.contextmanager
def further_stops_held() -> Iterator[None]:
    """Hold Ctrl-C, SIGTERM and SIGHUP while a run that one of them stopped cleans up: noted, never raised.

    A terminal sends Ctrl-C to the whole process group at each press, and a user
    who presses it twice sends two, often a few milliseconds apart. The second,
    raised inside the first one's cleanup, cut it short: the process pool's
    workers were left half-killed (one stopped by ``kill_tree``'s SIGSTOP and
    never killed, which ``orch`` then waited for at its exit), and the steps
    that were running were never recorded as interrupted. That cleanup is
    bounded in time, and the run stops anyway, for the first signal: the later
    ones have nothing left to do. Unlike ``stops_held`` this holds Ctrl-C where
    it is Python's own KeyboardInterrupt too (``Pipeline.run`` in a script or a
    notebook); a handler of a library's is left alone. Only in the main thread,
    the one where Python runs signal handlers.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    take_sigint = previous is signal.default_int_handler or previous is _counted_int
    if take_sigint:
        signal.signal(signal.SIGINT, _ctrl_c)  # which, as ``_stop`` does, only notes a signal while one is held
    held: list[int] = []
    _HELD.append(held)
    try:
        yield
    finally:
        if take_sigint and signal.getsignal(signal.SIGINT) is _ctrl_c:
            signal.signal(signal.SIGINT, previous)
        _unhold(held)


def _counted_int(signum: int, frame: Any) -> None:
    """Python's own Ctrl-C (a plain KeyboardInterrupt), counted, so a step that swallows it is found."""
    _raising(signum)
    raise KeyboardInterrupt


@contextlib.contextmanager
def ctrl_c_counted() -> Iterator[None]:
    """Count Ctrl-C while the block runs where it is Python's own KeyboardInterrupt (``pipeline.run()``).

    ``orch run`` counts it already (``signals_as_interrupt``). From a script, a step that
    caught it and returned (``except KeyboardInterrupt:`` around a training loop) let the run
    succeed and cached its half-done result: counted, ``swallowed_stop`` finds it. Nothing
    else changes: it is still a plain KeyboardInterrupt, and a library's handler is left alone.
    """
    if threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    signal.signal(signal.SIGINT, _counted_int)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGINT) is _counted_int:
            signal.signal(signal.SIGINT, signal.default_int_handler)


def _unhold(held: list[int]) -> None:
    """Remove ``held`` itself from ``_HELD`` (not an equal list: two blocks that held nothing are equal)."""
    for i in range(len(_HELD) - 1, -1, -1):
        if _HELD[i] is held:
            del _HELD[i]
            return


@contextlib.contextmanager
def signals_as_interrupt(until_exit: bool = False) -> Iterator[None]:
    """Raise ``StopSignal`` on SIGTERM and SIGHUP while the block runs, then restore the handlers.

    Only in the main thread (where Python runs signal handlers); a signal that
    was ignored before (``nohup``) is left ignored. ``until_exit``: the process
    ends after the block (``orch run``); left by a stop, the stop signals are then
    ignored, not restored: a second Ctrl-C, or a SIGTERM just after the first (a
    job runner's), reached the default action there and ``orch`` died of it (-15)
    instead of exiting 130 for the run it had recorded interrupted. Ctrl-\\
    (SIGQUIT) still ends an exit that hangs (a thread of the user's that never ends).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    _default_handlers_after_fork()
    previous = {}
    for signum in STOPPING:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            previous[signum] = signal.signal(signum, _stop)
    # Ctrl-C as ``CtrlC``, only where it would be Python's own KeyboardInterrupt (not ignored, not a library's).
    took_sigint = signal.getsignal(signal.SIGINT) is signal.default_int_handler
    if took_sigint:
        signal.signal(signal.SIGINT, _ctrl_c)
    try:
        yield
    except KeyboardInterrupt:
        if until_exit:
            for signum in (*previous, *([signal.SIGINT] if took_sigint else [])):
                signal.signal(signum, signal.SIG_IGN)
            previous.clear()
            took_sigint = False
        raise
    finally:
        if not (until_exit and _ENDED):  # else they say a signal until the process exits (``stops_said_after_the_run``)
            for signum, handler in previous.items():
                if signal.getsignal(signum) is _stop:
                    signal.signal(signum, handler)
            if took_sigint and signal.getsignal(signal.SIGINT) is _ctrl_c:
                signal.signal(signal.SIGINT, signal.default_int_handler)


_FORK_HOOK: list[bool] = []


def _default_handlers_after_fork() -> None:
    """Give a process forked during a run (a step's ``multiprocessing.Pool``) the signals' defaults back.

    A forked child inherits the driver's handlers and its whole call stack. The
    pool's ``terminate()`` sends its workers SIGTERM, and one caught early would
    raise ``StopSignal`` up that inherited stack: the child would record the run
    as interrupted through the driver's database connection and print
    tracebacks. SIGTERM (and SIGHUP) must simply end such a child.
    """
    def _in_child() -> None:
        for signum in STOPPING:
            if getattr(signal.getsignal(signum), "orch_terminate", False):
                signal.signal(signum, signal.SIG_DFL)
        if signal.getsignal(signal.SIGINT) is _ctrl_c:
            signal.signal(signal.SIGINT, signal.default_int_handler)

    if not _FORK_HOOK and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_in_child)  # once per process: hooks cannot be removed
        _FORK_HOOK.append(True)
