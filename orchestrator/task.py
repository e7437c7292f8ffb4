"""One attempt of one node, as a worker runs it: load inputs, call, hash, store.

``run_task`` is what every executor runs, in the driver's process or in a
worker. It loads input artifacts (each checked against its checksum), calls
the step with its stdout, stderr and log records captured, hashes each output
once, writes it to the store and reports ``ArtifactInfo`` back. It never
opens the metadata database and never raises for a step's own failure: the
failure is part of the result, so the driver records it and applies the
retry policy.
"""

from __future__ import annotations

import io
import linecache
import os
import shutil
import signal
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import PurePath
from types import CoroutineType
from typing import Any

from orchestrator import store_identity
from orchestrator.capture import Capture
from orchestrator.class_refs import GONE_CODE, gone_user_code
from orchestrator.containers import like
from orchestrator.coroutines import run_to_end
from orchestrator.errors import (
    CorruptArtifactError,
    MissingArtifactError,
    StoreError,
    StoreUnreachableError,
    UndecodableArtifactError,
    UnhashableValueError,
)
from orchestrator.hashing import combine, hash_file, hash_value
from orchestrator.process_state import kept_process_state
from orchestrator.remote_store import is_url, open_store
from orchestrator.retry import Failure
from orchestrator.run_identity import running_for
from orchestrator.serialize import adopt_materializers
from orchestrator.stop_signals import ctrl_c_told_apart, stop_behind, stops_raised, swallowed_stop
from orchestrator.store import ArtifactInfo, ArtifactStore
from orchestrator.warning_files import attempt_warnings, filters_applied


@dataclass(frozen=True)
class ArtifactRef:
    """An input that the worker loads from the store itself."""

    info: ArtifactInfo

    def __repr__(self) -> str:  # as lineage shows an item of a map passed this way: never its bytes
        meta = self.info.meta or {}
        rows, columns = meta.get("rows"), meta.get("columns")
        if isinstance(rows, int):  # a frame or table: by its shape, as the value itself is shown (dag._shown)
            kind = self.info.type_name.rpartition(".")[2]
            return f"<{kind} {rows} × {len(columns)}>" if isinstance(columns, list) else f"<{kind} {rows}>"
        return f"<stored {self.info.type_name}, {self.info.size:,} bytes>"


# Stored types whose values hold no path the DAG would count by its file (``dag._with_file_refs``
# looks into lists, tuples, dicts, dataclasses and objects of the user's).
_OPAQUE_ITEM_TYPES = ("numpy.", "pandas.", "pyarrow.", "scipy.", "polars.", "torch.")


def stored_item(info: ArtifactInfo, load: Callable[[ArtifactInfo], Any]) -> Any:
    """An item of a map over a map's result, keyed by its producer's digest: left unread when it may be.

    An array, frame or table stored as a file stays a reference (``ArtifactRef``), loaded by the
    step that runs on it, and so does a small frame or table held in the database (decoding 20,000
    frames of three rows took half of a cached run); any other item is loaded with ``load``, since
    a path inside it counts by its file's content as it is now (a list of the paths a step wrote),
    and a small one (a numpy scalar, a short array) shows its value.
    """
    opaque = info.type_name.startswith(_OPAQUE_ITEM_TYPES) or info.type_name in ("bytes", "bytearray")
    held = info.inline is not None and not info.type_name.startswith(_TABULAR_ITEM_TYPES)
    return ArtifactRef(info) if opaque and not held else load(info)


# Items whose decoding costs far more than their size (an Arrow stream, a frame built from it).
_TABULAR_ITEM_TYPES = ("pandas.", "pyarrow.", "polars.")


@dataclass
class TaskSpec:
    """Everything a worker needs for one attempt; picklable with cloudpickle."""

    node: str
    step_name: str
    fn: Callable[..., Any]
    arguments: dict[str, Any]
    output_names: tuple[str, ...]
    store_root: str
    attempt: int = 1
    timeout: float | None = None
    echo: bool = False
    keep_values: bool = True
    fsync: bool = True
    spill: str | None = None  # a local folder the captured text also goes to, for a killed attempt
    layout: tuple[tuple[str, str], ...] | None = None  # ``Step.call_layout``: None calls ``fn(**arguments)``
    # The driver's root logger level when its logging is configured (``logging.basicConfig(level=DEBUG)``
    # at the top of the pipeline file runs there only): a worker captures what the driver would.
    log_level: int | None = None
    # The driver's warning filters when a pipeline file changed them (``warning_files.driver_filters``):
    # ``warnings.simplefilter("error")`` at the top of the file fails a step's warning on a worker too.
    warning_filters: tuple[Any, ...] | None = None
    # The materializers registered in the driver (``serialize.registered_materializers()``): a
    # worker received the step's code by value, without the pipeline file's register call.
    materializers: tuple[tuple[Any, ...], tuple[Any, ...]] = ((), ())
    # The driver's working folder, for a worker started in another one (a Dask cluster of the user's):
    # relative paths in the step (a ``Path("data.csv")`` parameter) name what they name for ``orch``.
    folder: str | None = None
    # The id in the run's store marker (``store_identity``): a worker checks that the folder it finds at
    # ``store_root`` is that store before writing. None: the store has no id (read-only), no check.
    store_id: str | None = None
    run_id: str = ""  # what ``current_run_id()`` answers in the step


@dataclass
class TaskResult:
    """What an attempt produced: output artifacts, captured output, or a failure."""

    node: str
    attempt: int
    started: float
    ended: float
    outputs: list[tuple[str, ArtifactInfo]] = field(default_factory=list)
    values: dict[str, Any] | None = None
    stdout: str = ""
    stderr: str = ""
    logs: str = ""
    failure: Failure | None = None
    damaged_input: str | None = None
    damaged_why: str | None = None  # why its producer runs again; None: the input was damaged

    @property
    def ok(self) -> bool:
        return self.failure is None and self.damaged_input is None


_stores: dict[tuple[str, bool], ArtifactStore] = {}
_PLAIN = frozenset({int, float, str, bytes, bool, type(None), list, tuple, dict})
_DYNAMIC_CODE = "<dynamic-code>"  # cloudpickle's file name for code it carried by value


def _store(root: str, fsync: bool, step_name: str, store_id: str | None = None) -> ArtifactStore:
    """The store a task reads its inputs from and writes its outputs to.

    Raises:
        StoreUnreachableError: ``root`` is a local folder that does not exist in this process
            (a Dask worker on another machine, or with another view of the filesystem). The
            driver made it before the run, and writing here would make it: the outputs would
            land where the driver never looks, and the run would succeed with them missing.
        StoreMismatchError: the folder at ``root`` here is another store than the run's (its
            marker holds another id, or none): the same mistake on a cluster whose machines
            each have their own folder at that path. Checked once per process and store.
    """
    store = _stores.get((root, fsync))
    if store is None:  # the folder's existence is checked when this process first opens it
        if not is_url(root) and not os.path.isdir(root):
            import socket

            raise StoreUnreachableError(
                f"the store folder {root} does not exist on {socket.gethostname()}, where step '{step_name}' ran: "
                "every worker must see the store at the same path. Mount it at that path on the workers, or use "
                "a store all workers reach by URL (s3://bucket/store, file:///mnt/shared/store; "
                "see docs/execution.md).")
        store = _stores[(root, fsync)] = open_store(root, fsync=fsync)
    store_identity.check(store, store_id, step_name)  # a lookup once this id matched here
    return store


def output_digest(value: Any) -> tuple[str, dict[str, str]]:
    """The digest of an output value, and what lineage should know about a path output.

    A path output (a step that writes a file and returns its path) is
    identified by the file's content too, and its absolute path and content
    digest are returned so lineage can list the file as data, like a file input.
    Paths to files in a list, tuple or dict output count by content too.
    """
    if isinstance(value, PurePath) and os.path.exists(value):
        content = hash_file(value)
        return combine("path-output", os.fspath(value), content), {"path": os.path.abspath(value),
                                                                    "content": content}
    if isinstance(value, (list, tuple, dict)):
        written: list[str] = []
        marked = _with_written_files(value, written)
        if written:
            # Paths of files the step wrote, in a list, tuple or dict (`return [train_csv, test_csv]`):
            # by their text alone, a re-run that wrote other content would keep the digest, and the
            # consumers that read the files would stay cached on the old content.
            return combine("path-outputs", hash_value(marked)), {}
    return hash_value(value), {}


def _with_written_files(value: Any, written: list[str]) -> Any:
    """``value`` with each path to an existing file (in lists, tuples and dicts) as its text and content."""
    if isinstance(value, PurePath):
        if not os.path.exists(value):
            return value
        written.append(os.fspath(value))
        return ("path-output", os.fspath(value), hash_file(value))
    if isinstance(value, (list, tuple)) and any(isinstance(v, (PurePath, list, tuple, dict)) for v in value):
        items = [_with_written_files(v, written) for v in value]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, dict) and any(isinstance(v, (PurePath, list, tuple, dict)) for v in value.values()):
        return {k: _with_written_files(v, written) for k, v in value.items()}
    return value


def run_task(spec: TaskSpec) -> TaskResult:
    """Run one attempt. Step exceptions are returned as a failure, never raised."""
    started = time.time()
    result = TaskResult(node=spec.node, attempt=spec.attempt, started=started, ended=started)
    adopt_materializers(spec.materializers)  # before loading: inputs may be in their formats
    try:
        store = _store(spec.store_root, spec.fsync, spec.step_name, spec.store_id)
        loaded = _load_arguments(spec.arguments, store)
    except (CorruptArtifactError, MissingArtifactError) as exc:
        result.damaged_input = exc.digest
        result.ended = time.time()
        if spec.spill:
            shutil.rmtree(spec.spill, ignore_errors=True)  # nothing ran, so nothing was captured
        return result
    except StoreError as exc:
        gone = gone_user_code(exc.__cause__) if isinstance(exc, UndecodableArtifactError) else None
        if gone is not None and isinstance(exc, UndecodableArtifactError):
            # An object of a class of the user's that moved or was renamed: a move is no edit, so
            # its producer's key still finds it; computed again, it names the class where it is now.
            result.damaged_input, result.damaged_why = exc.digest, f"{GONE_CODE}: `{gone}` (moved or renamed)"
            result.ended = time.time()
            if spec.spill:
                shutil.rmtree(spec.spill, ignore_errors=True)
            return result
        # An input this process cannot decode (its materializer is not registered here, or its
        # library version differs): a failure of this attempt with the store's message, not an
        # exception out of the task, which a pool worker would die of.
        result.failure = Failure.from_exception(exc)
        result.ended = time.time()
        if spec.spill:
            shutil.rmtree(spec.spill, ignore_errors=True)
        return result
    captured = Capture(spec.echo, spec.spill, spec.log_level)
    stops_before = stops_raised()
    try:
        with captured, kept_process_state(), filters_applied(spec.warning_filters), attempt_warnings(), \
                running_for(spec.run_id):
            try:
                if spec.layout is None:
                    value = spec.fn(**loaded)
                else:
                    args, kwargs = call_arguments(spec.layout, loaded)
                    value = spec.fn(*args, **kwargs)
                if isinstance(value, CoroutineType):  # an ``async def`` step: its result is what it awaits to
                    value = run_to_end(value)
            except BaseException as exc:  # the step's own failure, sys.exit() included
                stop = _stop_behind(exc)
                if stop is exc:
                    raise  # Ctrl-C, SIGTERM or SIGHUP: the run stops, below
                if stop is not None:
                    raise stop from exc  # ... also when the step turned it into an error of its own
                # Any other exception is the step's, a BaseException of its own too
                # (GeneratorExit, a library's cancellation): it fails this attempt, not the run.
                result.failure = Failure.from_exception(exc, _user_traceback(exc))
                value = None
            swallowed = swallowed_stop(stops_before)
            if swallowed is not None:
                raise swallowed  # the step caught the run's Ctrl-C or SIGTERM and went on: the run stops all the same
    except KeyboardInterrupt as stop:
        # Ctrl-C while the step runs in this process: what it printed so far is what explains a
        # hang, so it travels with the interrupt for the runner to record with the attempt.
        result.stdout, result.stderr, result.logs = captured.stdout, captured.stderr, captured.logs
        result.ended = time.time()
        stop.interrupted_attempt = result  # type: ignore[attr-defined]
        raise
    result.stdout, result.stderr, result.logs = captured.stdout, captured.stderr, captured.logs
    if result.failure is None:
        try:
            _store_outputs(spec, value, store, result)
        except Exception as exc:  # noqa: BLE001 - a bad output (arity, storing) fails the attempt
            result.failure = Failure.from_exception(exc, traceback.format_exc())
            result.outputs = []
            result.values = None
    result.ended = time.time()
    return result


def _stop_behind(exc: BaseException) -> BaseException | None:
    """The Ctrl-C, SIGTERM or SIGHUP that ``exc`` is or was raised while handling, or None: the step's own failure.

    Under ``orch run`` Ctrl-C arrives as ``CtrlC`` and SIGTERM or SIGHUP as
    ``StopSignal``, so a step's own KeyboardInterrupt fails that step, as on a
    pool or Dask worker (which ignore SIGINT: the driver stops them). Elsewhere
    (a notebook) Ctrl-C is Python's own KeyboardInterrupt and cannot be told
    from a step's ``raise``, so any KeyboardInterrupt stops the run, unless the
    process ignores SIGINT (``orch run ... &`` in a script, a worker).
    """
    behind = stop_behind(exc)
    if behind is not None:
        return behind
    if ctrl_c_told_apart():
        return None
    if isinstance(exc, KeyboardInterrupt) and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        return exc
    return None


def _store_outputs(spec: TaskSpec, value: Any, store: ArtifactStore, result: TaskResult) -> None:
    names = spec.output_names
    if len(names) == 1 and names[0] == "out":
        values = [value]
    elif isinstance(value, dict) and set(value) == set(names):  # Kedro's way: one entry per output
        values = [value[name] for name in names]
    else:
        if not isinstance(value, (tuple, list)) or len(value) != len(names):
            got = f"a {type(value).__name__} of length {len(value)}" if isinstance(value, (tuple, list)) \
                else f"a dict with keys {', '.join(map(str, value))}" if isinstance(value, dict) \
                else "None (did it forget `return`?)" if value is None \
                else f"a value of type {type(value).__name__}"
            raise TypeError(
                f"step '{spec.step_name}' declares {len(names)} outputs ({', '.join(names)}) "
                f"but returned {got}. Return a tuple with one value per output, in that order, "
                f"or a dict with exactly those keys."
            )
        values = list(value)
    kept: dict[str, Any] = {}
    for name, v in zip(names, values):
        if type(v) not in _PLAIN and isinstance(v, io.IOBase):  # an ABC check: skipped for plain values
            # Pickling a file opened for reading snapshots what is left of it: the result would be
            # some of the file's text, named after a handle that no later run can read again.
            shown = "its value" if tuple(names) == ("out",) else f"its output '{name}'"
            raise TypeError(f"step '{spec.step_name}' returned an open file ({type(v).__name__}) as {shown}, "
                            "which cannot be stored. Return what it holds (`f.read()`, a DataFrame) or "
                            "its path (a pathlib.Path), and close it inside the step.")
        try:
            digest, file_meta = output_digest(v)
        except UnhashableValueError as exc:
            shown = "its value" if tuple(names) == ("out",) else f"its output '{name}'"
            raise TypeError(f"step '{spec.step_name}' returned {type(v).__name__} as {shown}, which cannot be "
                            f"stored ({exc}). Return data (numbers, lists, dicts, frames, arrays) instead; "
                            "a generator, lock or open file stays inside the step.") from None
        info = store.put(v, digest)
        if file_meta:
            info = replace(info, meta={**info.meta, "file": file_meta})
        result.outputs.append((name, info))
        if spec.keep_values:
            kept[name] = v
    result.values = kept if spec.keep_values else None


def call_arguments(layout: tuple[tuple[str, str], ...],
                   arguments: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """The positional and keyword arguments of a call, from bound arguments by parameter name.

    Follows the signature's order (``layout``), not the dict's: the runner
    puts constants before inputs. Every parameter before ``*args`` goes by
    position, so that ``*args`` lands after them.
    """
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for name, kind in layout:
        value = arguments[name]
        if kind == "pos":
            args.append(value)
        elif kind == "*":
            args.extend(value)
        elif kind == "**":
            kwargs.update(value)
        else:
            kwargs[name] = value
    return args, kwargs


def _load_arguments(arguments: dict[str, Any], store: ArtifactStore) -> dict[str, Any]:
    return {k: _load(v, store) for k, v in arguments.items()}


def _load(value: Any, store: ArtifactStore) -> Any:
    if isinstance(value, ArtifactRef):
        return store.get(value.info)
    if isinstance(value, (list, tuple)):
        return like(value, [_load(v, store) for v in value])
    if isinstance(value, dict):
        return like(value, [(k, _load(v, store)) for k, v in value.items()])
    return value


def _user_traceback(exc: BaseException) -> str:
    """The traceback of ``exc`` without the orchestrator's own frames at the top.

    Code that travelled by value to a worker has lost its file name
    (cloudpickle names it ``<dynamic-code>``); its module's ``__file__``
    travelled along, so frames are shown with the real file and source line,
    as they are when the step runs in the driver.
    """
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return "".join(_format_chain(exc, tb, set()))


def _format_chain(exc: BaseException, tb: Any, seen: set[int]) -> list[str]:
    """``traceback.format_exception`` with real file names, causes and contexts included."""
    seen.add(id(exc))
    lines: list[str] = []
    cause, context = exc.__cause__, exc.__context__
    if cause is not None and id(cause) not in seen:
        lines += _format_chain(cause, cause.__traceback__, seen)
        lines.append("\nThe above exception was the direct cause of the following exception:\n\n")
    elif context is not None and not exc.__suppress_context__ and id(context) not in seen:
        lines += _format_chain(context, context.__traceback__, seen)
        lines.append("\nDuring handling of the above exception, another exception occurred:\n\n")
    frames = []
    for frame, lineno in traceback.walk_tb(tb):
        filename = frame.f_code.co_filename
        if filename == _DYNAMIC_CODE and isinstance(frame.f_globals.get("__file__"), str):
            filename = frame.f_globals["__file__"]
        frames.append(traceback.FrameSummary(filename, lineno, frame.f_code.co_name,
                                             line=linecache.getline(filename, lineno).strip() or None))
    if frames:
        lines.append("Traceback (most recent call last):\n")
        lines += traceback.StackSummary.from_list(frames).format()
    lines += traceback.format_exception_only(type(exc), exc)
    return lines
