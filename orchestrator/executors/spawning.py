"""Starting worker processes without re-running the user's script.

A spawned process re-imports the parent's ``__main__`` (as ``__mp_main__``),
so a script that calls ``pipeline.run(executor="process")`` at top level,
without an ``if __name__ == "__main__":`` guard, would run again in every
worker. Workers never need that module: steps and the user's own code travel
with cloudpickle, by value. So while workers are being started, the main
module's file and spec are hidden from ``multiprocessing``, and nothing is
re-imported.

A process that is being bootstrapped and imports the user's script anyway
(a Dask nanny restarting a dead worker later, say) meets
:func:`check_not_bootstrapping` in ``pipeline.run`` and stops with one line
that names the fix, instead of starting a run inside a worker.
"""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from orchestrator.errors import UserError

_MISSING = object()


@contextmanager
def main_script_hidden() -> Iterator[None]:
    """Within the block, spawned processes do not re-import the ``__main__`` module."""
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    saved_file = main.__dict__.pop("__file__", _MISSING)
    saved_spec = main.__dict__.get("__spec__", _MISSING)
    main.__spec__ = None
    try:
        yield
    finally:
        if saved_file is not _MISSING:
            main.__file__ = saved_file
        if saved_spec is _MISSING:
            main.__dict__.pop("__spec__", None)
        else:
            main.__spec__ = saved_spec


def check_not_bootstrapping() -> None:
    """Refuse to start a run while a new worker process is importing the user's script.

    Raises:
        UserError: this process is a spawned child still importing ``__main__``.
    """
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise UserError("a worker process imported your script and reached pipeline.run(); start runs under "
                        "`if __name__ == \"__main__\":` so that importing the script runs nothing.")
