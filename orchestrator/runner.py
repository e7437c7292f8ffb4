"""Running a pipeline: the one place where DAG, cache, store, lineage and executor meet.

``run_pipeline`` checks the options, opens the store, builds the DAG and
hands it to a ``RunLoop`` (``run_loop``), which walks it; around the run it
keeps what belongs to the whole process (one run at a time per process, the
garbage collector off the objects that existed before). Planning lives in
``planner``, what a run returns in ``results``.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

from orchestrator import store_users
from orchestrator.capture import driver_stderr, page_handlers_captured, root_level_restored
from orchestrator.context import Context, former_default_warning
from orchestrator.errors import (
    UserError,
)
from orchestrator.executors import make_executor
from orchestrator.executors.spawning import check_not_bootstrapping
from orchestrator.fd_capture import descriptors_held
from orchestrator.name_clashes import shared_name_warnings
from orchestrator.planner import (
    build,
    check_rerun,
)
from orchestrator.remote_store import FsspecStore, is_process_local
from orchestrator.report import RunObserver
from orchestrator.results import Run
from orchestrator.run_loop import RunLoop
from orchestrator.self_state import self_state_warnings
from orchestrator.shared_globals import shared_global_warnings
from orchestrator.spelling import CLI, Spelling
from orchestrator.stop_signals import ctrl_c_counted
from orchestrator.untracked import _caller_level, warn_untracked

if TYPE_CHECKING:
    from orchestrator.pipeline import Pipeline

def _warn_unused_workers(workers: int, observer: RunObserver | None, spelling: Spelling) -> None:
    """Say that ``workers`` does nothing with the sequential executor named, instead of ignoring it in silence.

    A warning, not a refusal (as ``workers`` without any executor is): a script
    that passes its executor from a variable (``--executor "$EXECUTOR"
    --workers 2``) is right to run sequentially when that names ``sequential``.
    """
    message = (f"{spelling.option('workers', str(workers))} is unused: {spelling.executor('sequential')} runs "
               f"steps one at a time; use {spelling.executor('process')} (or dask) to run independent steps at "
               f"once, or drop {spelling.option('workers')}.")
    _warn(message, observer)


def _warn(message: str, observer: RunObserver | None) -> None:
    """Tell the user something that does not stop the run: through ``observer``, else as a Python warning."""
    if observer is not None:
        observer.warning(message)
    else:
        warnings.warn(message, UserWarning, stacklevel=_caller_level())


def run_pipeline(pipeline: Pipeline, params: dict[str, Any], *, store: str | None = None,
                 metadata: str | None = None,
                 executor: str = "sequential", workers: int | None = None, address: str | None = None,
                 rerun: tuple[str, ...] = (), no_cache: bool = False, verbose: bool = False,
                 progress: RunObserver | None = None, file: str | None = None, spelling: Spelling = CLI,
                 end_recorded: Callable[[str, str], None] | None = None) -> Run:
    """Build and run ``pipeline``; return the ``Run`` (also when it failed).

    ``spelling``: how the user wrote the options (``--rerun`` in a shell,
    ``rerun=`` in Python), for the messages and reasons that name them.
    ``end_recorded(run_id, status)``: called once this run's end is recorded, while stop
    signals are still held (``orch run`` says a later one, and exits as the run is recorded).

    Raises:
        UserError: for mistakes found before anything runs.
        KeyboardInterrupt: after recording the run as ``interrupted``.
    """
    check_not_bootstrapping()
    pipeline.resolve_params(params, spelling)  # a mistyped parameter name must not create a store first
    if workers is not None and executor == "sequential":
        _warn_unused_workers(workers, progress, spelling)
    ctx = Context.open(store, metadata, spelling=spelling)
    with _database_closed_after(ctx):
        moved = former_default_warning(ctx)
        if moved:
            _warn(moved, progress)
        if executor != "sequential" and is_process_local(ctx.location):
            raise UserError(f"store {ctx.location} lives inside this process, where {executor} workers cannot "
                            f"reach it. Use {spelling.executor('sequential')}, or a store every worker reaches "
                            "(a folder, file://, s3://, ...).")
        if ctx.metadata is not None or isinstance(ctx.store, FsspecStore):
            # A store apart from its database may be shared: say which database uses it (gc, doctor).
            store_users.register(ctx.store, ctx.lineage.path)
        ctx.lineage.mark_dead_runs()
        _wait_for_runs_in_other_threads(progress, spelling)
        try:
            with _older_objects_frozen(), root_level_restored(), page_handlers_captured():
                dag = build(pipeline, params, ctx)
                forced = check_rerun(dag, rerun, spelling)
                warn_untracked(dag, progress)
                for message in self_state_warnings(dag) + shared_global_warnings(dag) + shared_name_warnings(dag):
                    _warn(message, progress)
                # With a map, its items are only known when its list is ready: then no bound.
                most = None if any(node.is_map for node in dag.nodes.values()) else len(dag.nodes)
                runner = RunLoop(dag, ctx, make_executor(executor, workers, address, most=most, spelling=spelling),
                                  progress or RunObserver(), forced=forced, no_cache=no_cache, verbose=verbose,
                                  spelling=spelling, end_recorded=end_recorded)
                # Sequential attempts run in this thread, one at a time: descriptors 1 and 2 stay on the
                # capture's pipes for the whole run rather than being pointed there and back per attempt.
                # Workers of a pool or of Dask are other processes or threads that inherit or share them.
                with descriptors_held() if executor == "sequential" else contextlib.nullcontext(), ctrl_c_counted():
                    return runner.run(file=file or _source_file(pipeline))
        finally:
            _run_in_progress.release()


@contextmanager
def _database_closed_after(ctx: Context) -> Iterator[None]:
    """Close the run's database connection when the run ends, rather than when garbage collection finds it.

    Until then a process that goes on (a notebook, ``cli.main([...])`` called from Python) holds
    an open file and keeps the ``-wal`` file beside the database. The connection reopens if used
    again. A failure to close does not hide the exception that ended the run.
    """
    try:
        yield
    except BaseException:
        with suppress(Exception):
            ctx.lineage.close()
        raise
    ctx.lineage.close()


# Held by the thread whose run is in progress in this process; re-entrant, for a step that runs a pipeline.
_run_in_progress = threading.RLock()


def _wait_for_runs_in_other_threads(observer: RunObserver | None, spelling: Spelling) -> None:
    """Take ``_run_in_progress``: runs started from several threads of one process (a notebook's
    ``ThreadPoolExecutor`` over a grid) go one after the other, saying so once when one has to wait.

    A run changes what belongs to its whole process: ``sys.stdout``, ``sys.stderr`` and the root
    logger's handler capture a step's output, and a step's working folder and environment are put
    back after it. Two at once swapped those under each other: the process's own stdout stayed
    replaced by a step's capture after both ended (every later ``print`` lost), and one step's
    output was recorded in the other's logs. Runs in separate processes are not affected: they
    share the store, not the process. The caller releases the lock when its run ends.
    """
    if not _run_in_progress.acquire(blocking=False):
        message = ("another pipeline run is in progress in this process (in another thread): this run starts when "
                   "it ends, since runs in one process share its stdout, working folder and environment. For runs "
                   f"at once, start them in separate processes; for steps at once, use "
                   f"{spelling.executor('process')}.")
        outside = driver_stderr()
        if outside is sys.stderr:
            _warn(message, observer)
        else:
            # A step of that run is running: sys.stderr is its capture, where a warning (or a progress line)
            # would be kept in that step's logs, unseen. And if the step started this thread and waits
            # for it, neither would ever end.
            outside.write(f"orchestrator: {message} If a step of that run started this thread and waits for "
                          "it, neither ends: run a pipeline from a step in the step's own thread.\n")
            outside.flush()
        _run_in_progress.acquire()


@contextmanager
def _older_objects_frozen() -> Iterator[None]:
    """Keep CPython's full garbage collections off the objects that existed before the run.

    A run allocates many small records that live until it ends; each time
    enough of them pile up, a full collection scans every object in the
    process (imported libraries, a notebook's data), 30-40 ms at a time on a
    1,000-step run. Objects frozen here are skipped by collections and thawed
    when the run ends, so garbage among them is still collected later. A
    process that froze objects itself (a nested run, a pre-fork server) is
    left as it is.
    """
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _source_file(pipeline: Pipeline) -> str | None:
    module = sys.modules.get(getattr(pipeline.fn, "__module__", "") or "")
    path = getattr(module, "__file__", None)
    return os.path.abspath(path) if path else None
