"""Kill a process together with every process it started.

A step stopped by its timeout (or a run cancelled) must not leave work behind:
a step that ran ``subprocess.Popen(["train.sh"])`` or a ``multiprocessing.Pool``
has children of its own, which a plain ``SIGKILL`` of the step's process
orphans. They then go on holding CPU, GPU or memory, and a child still writing
to the terminal keeps a pipe open long after the run has ended.

The tree is found from ``/proc`` (each process's parent), so this works on
Linux; elsewhere only the process itself is killed. Each process found is
stopped (``SIGSTOP``) before the tree is walked again, so none can start a new
child that the walk would miss, and then all are killed.
"""

from __future__ import annotations

import os
import signal
import sys

_PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h


def adopt_orphans() -> None:
    """Make this process the parent of orphans among its descendants (Linux), so that ``kill_tree`` finds them.

    A program a step started that put a worker in the background and returned
    (`(train &)`, a daemon's double fork) leaves that worker without its parent:
    re-parented to init, it is outside the tree, and outlived the step's
    timeout. Adopted, it stays below this process. Nothing elsewhere.
    """
    if sys.platform != "linux":
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):  # no libc to call (a static build): orphans go to init, as before
        pass


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and all its descendants (Linux); elsewhere ``pid`` alone.

    What was stopped is killed even when the walk is cut short (an exception
    raised in it): a process left stopped never ends, and a parent that waits
    for it (``multiprocessing`` joins its workers at exit) waits for good.
    """
    if sys.platform != "linux":
        _signal(pid, signal.SIGKILL)
        return
    stopped: list[int] = []
    try:
        _stop_tree(pid, stopped)
    finally:
        kill_all(stopped)


def stop_tree(pid: int) -> list[int]:
    """SIGSTOP ``pid`` and all its descendants (Linux); return them all, for ``kill_all``.

    The first half of ``kill_tree``, for a caller that must do something between the
    two (stop a thread whose end kills ``pid``, orphaning what it started). On a
    stop cut short, what was stopped is killed at once.
    """
    if sys.platform != "linux":
        return [pid]
    stopped: list[int] = []
    try:
        _stop_tree(pid, stopped)
    except BaseException:
        kill_all(stopped)
        raise
    return stopped


def kill_all(pids: list[int]) -> None:
    """SIGKILL each of ``pids`` (those ``stop_tree`` stopped); one gone already is no error."""
    for member in pids:
        _signal(member, signal.SIGKILL)


def descendants(pid: int) -> list[int]:
    """The processes below ``pid``, parents before children (Linux; empty elsewhere)."""
    children: dict[int, list[int]] = {}
    for ppid, child in _parents():
        children.setdefault(ppid, []).append(child)
    found: list[int] = []
    todo = list(children.get(pid, []))
    while todo:
        current = todo.pop(0)
        if current in found:
            continue
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def _stop_tree(pid: int, stopped: list[int]) -> None:
    """Stop ``pid`` and its descendants, walking again until no new one appears; each is added to ``stopped``.

    Each goes into ``stopped`` before its SIGSTOP, so that one the walk is cut short
    at is killed all the same (``kill_tree``).
    """
    stopped.append(pid)
    _signal(pid, signal.SIGSTOP)
    for _ in range(50):  # a bound: every round stops what it found, so new ones soon stop appearing
        new = [p for p in descendants(pid) if p not in stopped]
        if not new:
            break
        for member in new:
            stopped.append(member)
            _signal(member, signal.SIGSTOP)


def _parents() -> list[tuple[int, int]]:
    """``(parent pid, pid)`` of every process this user can see."""
    pairs = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue  # it ended while we looked
        try:
            pairs.append((int(fields[1]), int(entry)))
        except (IndexError, ValueError):
            continue
    return pairs


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
