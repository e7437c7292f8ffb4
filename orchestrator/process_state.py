"""What a step may change in its process and must not pass on: the working folder, the
environment variables and ``sys.path``.

The sequential executor runs every step in the ``orch`` process, and a pool worker runs
one step after another: without this, a step that calls ``os.chdir`` or sets
``os.environ[...]`` would change what the steps after it see (a relative path opened in
another folder), and only on some executors, and only when the step was not cached. It
would also move the driver itself, which then looks for a relative ``--store`` in the
wrong folder. So each step starts from the state the process had before it, and that
state is put back after it, whatever it raised.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def kept_process_state() -> Iterator[None]:
    """Run the body, then restore the working folder, the environment and ``sys.path``."""
    cwd = _cwd()
    environ = dict(os.environ)
    path = list(sys.path)
    try:
        yield
    finally:
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
