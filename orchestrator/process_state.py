"""What a step may change in its process and must not pass on: the working folder, the
environment variables, ``sys.path`` and the handlers of SIGINT and SIGTERM.

The sequential executor runs every step in the ``orch`` process, and a pool worker runs
one step after another: without this, a step that calls ``os.chdir`` or sets
``os.environ[...]`` would change what the steps after it see (a relative path opened in
another folder), and only on some executors, and only when the step was not cached. It
would also move the driver itself, which then looks for a relative ``--store`` in the
wrong folder; a library that takes over SIGINT or SIGTERM (and does not give them back)
would leave Ctrl-C and ``kill`` unable to stop the run. So each step starts from the
state the process had before it, and that state is put back after it, whatever it raised.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def kept_process_state() -> Iterator[None]:
    """Run the body, then restore the working folder, the environment, ``sys.path`` and the
    SIGINT and SIGTERM handlers (those only in the main thread, the one place they can be set)."""
    cwd = _cwd()
    environ = dict(os.environ)
    path = list(sys.path)
    main = threading.current_thread() is threading.main_thread()
    handlers: dict[int, Any] = {sig: signal.getsignal(sig) for sig in _SIGNALS} if main else {}
    try:
        yield
    finally:
        for sig, handler in handlers.items():
            if handler is not None and signal.getsignal(sig) is not handler:
                signal.signal(sig, handler)
        if cwd is not None and _cwd() != cwd:
            with contextlib.suppress(OSError):  # the folder was removed meanwhile: nothing to go back to
                os.chdir(cwd)
        if os.environ != environ:
            for name in [name for name in os.environ if name not in environ]:
                del os.environ[name]
            for name, value in environ.items():
                if os.environ.get(name) != value:
                    os.environ[name] = value
        if sys.path != path:
            sys.path[:] = path


def _cwd() -> str | None:
    try:
        return os.getcwd()
    except OSError:  # the current folder was deleted
        return None
