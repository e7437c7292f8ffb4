"""What a step may change in its process and must not pass on: the working folder, the
environment variables, ``sys.path`` and the handlers of SIGINT, SIGTERM and SIGHUP.

The sequential executor runs every step in the ``orch`` process, and a pool worker runs
one step after another: without this, a step that calls ``os.chdir`` or sets
``os.environ[...]`` would change what the steps after it see (a relative path opened in
another folder), and only on some executors, and only when the step was not cached. It
would also move the driver itself, which then looks for a relative ``--store`` in the
wrong folder; a library that takes over SIGINT, SIGTERM or SIGHUP (and does not give them
back) would leave Ctrl-C, ``kill`` and a terminal hanging up unable to stop the run. So each step starts from the
state the process had before it, and that state is put back after it, whatever it raised.
"""

from __future__ import annotations

import _signal
import contextlib
import os
import signal
import sys
import threading
from typing import Any

# SIGHUP too: a step that installs its own (a library reloading its config on it) would leave the run
# unable to stop when its terminal hangs up. Windows has no SIGHUP.
_SIGNALS = tuple(int(getattr(signal, name)) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class kept_process_state:
    """``with kept_process_state(): ...`` restores, after the body, the working folder, the
    environment, ``sys.path`` and the SIGINT, SIGTERM and SIGHUP handlers (those only in the
    main thread, the one place they can be set). A class rather than a generator: it runs
    around every step, trivial ones included, and costs about 3 µs."""

    __slots__ = ("_cwd", "_environ", "_handlers", "_path")

    def __enter__(self) -> None:
        self._cwd = _cwd()
        self._environ = _environ()
        self._path = list(sys.path)
        # _signal's getsignal, not signal's: the same handler, without wrapping it in an enum (2 µs each).
        self._handlers = [(sig, _signal.getsignal(sig)) for sig in _SIGNALS] \
            if threading.current_thread() is threading.main_thread() else []

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._handlers:
            if handler is not None and _signal.getsignal(sig) != handler:
                signal.signal(sig, handler)
        if self._cwd is not None and _cwd() != self._cwd:
            with contextlib.suppress(OSError):  # the folder was removed meanwhile: nothing to go back to
                os.chdir(self._cwd)
        if _environ_changed(self._environ):
            before = _decoded(self._environ)
            for name in [name for name in os.environ if name not in before]:
                del os.environ[name]
            for name, value in before.items():
                if os.environ.get(name) != value:
                    os.environ[name] = value
        if sys.path != self._path:
            sys.path[:] = self._path


def _environ() -> dict[Any, Any]:
    """The environment as ``os.environ`` keeps it (bytes on POSIX): a copy costs well under 1 µs.

    ``dict(os.environ)`` decodes every name and value, 30 µs for 35 variables, and so does
    comparing with it: that was most of what a trivial step cost.
    """
    data = getattr(os.environ, "_data", None)
    return data.copy() if isinstance(data, dict) else dict(os.environ)


def _environ_changed(before: dict[Any, Any]) -> bool:
    """Whether the environment differs from ``before`` (made by ``_environ``), compared in place, not copied."""
    data = getattr(os.environ, "_data", None)
    return (data if isinstance(data, dict) else dict(os.environ)) != before


def _decoded(environ: dict[Any, Any]) -> dict[str, str]:
    """A copy made by ``_environ`` as ``os.environ`` shows it: names and values as text."""
    if isinstance(getattr(os.environ, "_data", None), dict):
        decode_key, decode_value = os.environ.decodekey, os.environ.decodevalue  # type: ignore[attr-defined]
        return {decode_key(k): decode_value(v) for k, v in environ.items()}
    return environ


def _cwd() -> str | None:
    try:
        return os.getcwd()
    except OSError:  # the current folder was deleted
        return None


class _Folder:
    """The working folder that the steps running in this process's threads share (see ``in_folder``)."""

    changed = threading.Condition()
    users = 0  # steps running in ``current``
    current: str | None = None
    home: str | None = None  # the folder the process had before the first of them


@contextlib.contextmanager
def in_folder(folder: str | None) -> Any:
    """Run the body with ``folder`` as the working folder, when it exists here; else where the process is.

    A Dask worker of the user's own cluster was started in some folder of its own,
    while the steps' relative paths (a ``Path("data.csv")`` parameter, ``open("config.yaml")``)
    mean the folder ``orch`` runs in, as they do on every other executor. The working folder
    belongs to the whole process, and a worker runs several steps at once in threads: steps
    of the same folder share it, a step of another folder (another run's) waits until they
    are done. The last one out goes back to the folder the process had.
    """
    if folder is None or not os.path.isdir(folder):
        yield
        return
    with _Folder.changed:
        while _Folder.users and _Folder.current != folder:
            _Folder.changed.wait()
        if not _Folder.users:
            _Folder.home = _cwd()
            os.chdir(folder)
            _Folder.current = folder
        _Folder.users += 1
    try:
        yield
    finally:
        with _Folder.changed:
            _Folder.users -= 1
            if not _Folder.users:
                if _Folder.home is not None:
                    with contextlib.suppress(OSError):  # removed meanwhile: nothing to go back to
                        os.chdir(_Folder.home)
                _Folder.current = None
                _Folder.changed.notify_all()
