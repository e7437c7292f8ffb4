"""This process's id, without a system call each time it is asked for.

Every attempt's capture asks which process it is in (to tell a process the step
forked, whose copy of a tee or of the pipes is not the step's), three times
per attempt, and ``os.getpid()`` is a system call each time. The id only
changes in a forked child, and ``os.register_at_fork`` updates it there, before
any code of the child's runs. A process started by ``spawn`` or ``forkserver``
imports this module afresh. It must not cache anything else.
"""

from __future__ import annotations

import os

_pid = os.getpid()


def current_pid() -> int:
    """``os.getpid()``, as kept up to date in forked children."""
    return _pid


def _forked() -> None:
    global _pid
    _pid = os.getpid()


if hasattr(os, "register_at_fork"):  # POSIX; elsewhere there is no fork to follow
    os.register_at_fork(after_in_child=_forked)
