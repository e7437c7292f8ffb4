"""Why a process that ran a step died, in words a user can act on.

A worker that dies reports nothing itself, so its exit code is all there is to
go on. ``-9`` (SIGKILL) is what the kernel's out-of-memory killer sends, and by
far the most common way a data step's worker dies: a bare "exit code -9" left
the user guessing, so the message says what it most likely was and what to do.
"""

from __future__ import annotations

import signal

#: What to do when a step runs out of memory; named in every message that suspects it.
MEMORY_ADVICE = ("if it ran out of memory, give it less data at a time, run fewer steps at once, "
                 "or run it where more memory is free")


def died_because(code: int | None) -> str:
    """The exit ``code`` of a dead step process as a clause: ``(exit code -9: killed by SIGKILL ...)``."""
    if code is None or code >= 0:
        return f"(exit code {code})"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        return f"(exit code {code})"
    if -code == getattr(signal, "SIGKILL", None):
        return (f"(exit code {code}: killed by {name}, as the out-of-memory killer kills a process that "
                f"needs more memory than is free; {MEMORY_ADVICE})")
    if name in ("SIGSEGV", "SIGBUS", "SIGABRT", "SIGILL", "SIGFPE"):
        return f"(exit code {code}: {name}, a crash in native code the step called)"
    return f"(exit code {code}: killed by {name})"
