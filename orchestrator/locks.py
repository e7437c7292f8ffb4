"""Per-key locks between runs sharing a store: one computes a result, the others wait for it.

All keys share one lock file, ``<store>/keys.lock``: a key's lock is a POSIX
record lock (``fcntl.lockf``) on one byte at an offset taken from the key.
That costs one system call per lock, with no file or folder per key, and
the lock dies with the process that holds it, so a killed run never leaves
a stale lock behind. Record locks belong to a process, not a thread: runs
in one process do not exclude each other (at worst they compute the same
result twice), and the file descriptor stays open for the process's life,
because closing any descriptor of the file would drop all its locks. Locks
are only ever tried without blocking; the runner decides what to do
meanwhile. Without ``fcntl`` (Windows) every lock is granted.

One byte beyond every key's offset is the upkeep lock: ``orch cache gc`` and
``cache verify --repair`` hold it exclusively, ``cache verify`` and ``orch
doctor`` shared, so a check never reads the store half-way through a removal
(an object gone whose row is not yet) and reports it as damage.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

_OFFSET_BITS = 60  # offsets from the key's first 15 hex digits: collisions are negligible
_UPKEEP = 1 << _OFFSET_BITS  # beyond every key's offset
_files: dict[str, int] = {}
_guard = threading.Lock()


class KeyLock:
    """A held lock on one cache key; ``release()`` it once the result is recorded."""

    __slots__ = ("_fd", "_offset")

    def __init__(self, fd: int | None, offset: int) -> None:
        self._fd, self._offset = fd, offset

    def release(self) -> None:
        if self._fd is not None and fcntl is not None:
            fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, self._offset)
            self._fd = None


def _lock_file(root: str | os.PathLike[str]) -> int:
    path = os.path.join(os.fspath(root), "keys.lock")
    fd = _files.get(path)
    if fd is None:
        with _guard:
            fd = _files.get(path)
            if fd is None:
                os.makedirs(os.fspath(root), exist_ok=True)
                fd = _files[path] = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    return fd


def try_lock(root: str | os.PathLike[str], key: str) -> KeyLock | None:
    """Take the lock of ``key`` if no other process holds it; None if one does."""
    return _try_lock(_lock_file(root) if fcntl is not None else None, key)


class StoreLocks:
    """``try_lock`` for one store, whose lock file is found once: a run takes a lock per step it runs."""

    __slots__ = ("_fd", "_root")

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self._root = root
        self._fd: int | None = None  # opened at the first lock, as ``try_lock`` opens it

    def try_lock(self, key: str) -> KeyLock | None:
        """Take the lock of ``key`` if no other process holds it; None if one does."""
        if self._fd is None and fcntl is not None:
            self._fd = _lock_file(self._root)
        return _try_lock(self._fd, key)


def _try_lock(fd: int | None, key: str) -> KeyLock | None:
    """Lock ``key``'s byte of the lock file ``fd`` without waiting; every lock is granted without fcntl."""
    offset = int(key[: _OFFSET_BITS // 4], 16)
    if fd is None:
        return KeyLock(None, offset)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset)
    except OSError:  # EAGAIN / EACCES: another process holds it
        return None
    return KeyLock(fd, offset)


@contextmanager
def upkeep_lock(root: str | os.PathLike[str], *, exclusive: bool,
                on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold the store's upkeep lock (see the module's docstring) for the body.

    ``on_wait`` is called once, before blocking, when another process holds it. A store
    whose lock file cannot be opened (read-only for this user) is not locked: nobody
    who cannot write it collects its garbage from here, and its checks must still work.
    Not to be nested in one process: a record lock taken again changes its kind.
    """
    if fcntl is None:
        yield
        return
    try:
        fd = _lock_file(root)
    except OSError:
        yield
        return
    kind = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
    try:
        fcntl.lockf(fd, kind | fcntl.LOCK_NB, 1, _UPKEEP)
    except OSError:
        if on_wait is not None:
            on_wait()
        fcntl.lockf(fd, kind, 1, _UPKEEP)
    try:
        yield
    finally:
        fcntl.lockf(fd, fcntl.LOCK_UN, 1, _UPKEEP)
