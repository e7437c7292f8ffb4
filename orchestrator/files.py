"""File operations the local store is built from: publish without replacing, copy a range, make durable.

Each one is a thin wrapper over one or two system calls, with the fallbacks
and the fault-injection hook the store needs. This module knows nothing of
objects or digests.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
from pathlib import Path

from orchestrator import store_faults
from orchestrator.errors import StoreError


def link_no_clobber(source: Path, target: Path) -> bool:
    """Atomically create ``target`` as ``source``; False if ``target`` already exists.

    A hard link never replaces an existing object, so no writer can swap bytes
    under a checksum another writer already reported. Filesystems without
    hard links fall back to os.replace, which is atomic but may replace.
    """
    try:
        os.link(source, target)
        return True
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
    if os.path.exists(target):
        return False
    os.replace(source, target)
    return True


def copy_range(src: int, src_offset: int, dst: int, dst_offset: int, count: int) -> None:
    while count > 0:
        chunk = os.pread(src, min(count, 16 << 20), src_offset)
        if not chunk:
            raise StoreError("temporary file shrank while it was being written")
        os.pwrite(dst, chunk, dst_offset)
        src_offset += len(chunk)
        dst_offset += len(chunk)
        count -= len(chunk)


def fsync_dir(directory: Path) -> None:
    store_faults.hit("fsync")
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_pid(name: str) -> int | None:
    head = name.partition("-")[0]
    return int(head) if head.isdigit() and int(head) > 0 else None


_swept: set[str] = set()  # the prefixes whose dead processes' folders this process removed


def process_temp_folder(prefix: str) -> str:
    """A new folder ``<prefix><pid>-<random>`` in the temp folder, named by the process that owns it.

    Its owner removes it when done, but a process killed meanwhile (SIGKILL, the
    OOM killer) cannot: the first such folder each process makes for ``prefix``
    removes those of dead processes (one listing of the temp folder per process
    and prefix, nothing per attempt or run).
    """
    if prefix not in _swept:
        _swept.add(prefix)
        _sweep_dead_folders(prefix)
    return tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-")


def _sweep_dead_folders(prefix: str) -> None:
    """Remove the folders ``process_temp_folder(prefix)`` made for processes that are gone."""
    # As tempfile.mkdtemp completes the name: 8 characters of its alphabet.
    remove_leftovers_of_dead(tempfile.gettempdir(), re.compile(re.escape(prefix) + r"([0-9]+)-[a-z0-9_]{8}"))


def remove_leftovers_of_dead(folder: str | os.PathLike[str], named: re.Pattern[str]) -> None:
    """Remove the files and folders in ``folder`` whose whole name ``named`` matches, with a dead process's pid.

    ``named``'s first group is the pid of the process that made the entry. What a
    process killed outright (SIGKILL, the OOM killer) could not remove itself;
    an entry of a live process, or one another process removes first, is left alone.
    """
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        found = named.fullmatch(entry.name)
        if found is None or pid_alive(int(found[1])):
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            try:
                os.unlink(entry.path)
            except OSError:
                pass  # another process removed it first


def pid_alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would not probe there; rely on age
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by someone else
    return not zombie(pid)


def zombie(pid: int) -> bool:
    """Whether ``pid`` has exited and only waits to be reaped (Linux; False where unknown).

    ``kill(pid, 0)`` still finds such a process. A killed writer's workers are reparented
    to PID 1, which in a container without an init (``docker run`` without ``--init``)
    never reaps them: counted alive, their temp files or runs would never be seen as dead.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return False
