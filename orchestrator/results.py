"""What a run hands back to Python: ``Run`` with one ``StepResult`` per node.

Plain records built by the runner (or rebuilt from the metadata database by
``orchestrator.get_run``); ``Run.output()`` and ``Run.metrics`` read the
store lazily, so a ``Run`` stays cheap to keep around. The shape of a
pipeline's return value is recorded with its run (``encode_result``), so a
run rebuilt later returns the same tuple, list or dict the live one did.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator import result_record
from orchestrator.class_refs import gone_user_code
from orchestrator.context import Context, database_file
from orchestrator.dag import substitute
from orchestrator.environment import stored_by_other_version
from orchestrator.errors import (
    CorruptArtifactError,
    MissingArtifactError,
    StoreError,
    UntrustedArtifactError,
    UserError,
)
from orchestrator.spelling import PYTHON
from orchestrator.steps_by_name import StepsByName
from orchestrator.tracing import Output


@dataclass
class StepResult:
    """How one node fared in a run."""

    name: str
    status: str
    reason: str = ""
    attempts: int = 0
    duration: float | None = None
    error: str | None = None
    key: str | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    # (store, metadata, run id) of the run this belongs to, set by ``Run``: where ``output()`` loads from.
    source: tuple[str, str | None, str] | None = field(default=None, repr=False, compare=False)

    def output(self) -> Any:
        """What the step returned, loaded from the store (a tuple in declared order for several outputs).

        A step cached in this run gives the output of the run it reused.

        Raises:
            UserError: the step failed, was skipped or interrupted; its artifact was removed or is damaged.
        """
        if self.status not in ("ran", "cached") or not self.outputs or self.source is None:
            why = f" ({self.error or self.reason})" if self.error or self.reason not in ("", self.status) else ""
            run = f" of run {self.source[2]}" if self.source else ""
            raise UserError(f"step '{self.name}'{run} {self.status}{why}: it has no output.")
        store, metadata, run_id = self.source
        ctx = open_store(store, metadata, run_id)
        values = [load_output(ctx, digest, f"output '{name}' of step '{self.name}' of run {run_id}", run_id)
                  for name, digest in self.outputs.items()]
        return values[0] if len(values) == 1 else tuple(values)

    @property
    def traceback(self) -> str | None:
        """The traceback of the step's last failed attempt in its run, as ``orch logs RUN:STEP`` shows it.

        None when the step did not fail. Read from the metadata database when
        asked, so a notebook sees why a step failed without a terminal.
        """
        if self.status != "failed" or self.source is None:
            return None
        store, metadata, run_id = self.source
        failed = [a for a in open_store(store, metadata, run_id).lineage.attempts(run_id, self.name)
                  if a["traceback"] or a["error"]]
        # A timeout or a dead worker leaves no traceback of the step's own: its error says what happened.
        return (failed[-1]["traceback"] or failed[-1]["error"]) if failed else self.error

    @property
    def stdout(self) -> str:
        """What the step printed in its last attempt, as ``orch logs RUN:STEP`` shows it (see ``logs``)."""
        return self._captured("stdout")

    @property
    def stderr(self) -> str:
        """What the step wrote to stderr in its last attempt (its warnings too); see ``logs``."""
        return self._captured("stderr")

    @property
    def logs(self) -> str:
        """The log records of the step's last attempt, as ``orch logs RUN:STEP`` shows them.

        With ``stdout`` and ``stderr``, what a notebook sees of a run without
        ``verbose=True`` or a terminal. A step cached in this run gives the text
        of the run that made the result it reused; one that did not run, "".
        Read from the metadata database when asked.
        """
        return self._captured("logs")

    def _captured(self, stream: str) -> str:
        if self.source is None or self.status == "skipped":
            return ""
        store, metadata, run_id = self.source
        lineage = open_store(store, metadata, run_id).lineage
        origin_run, origin_node = lineage.origin(run_id, self.name) if self.status == "cached" else (run_id, self.name)
        attempts = lineage.attempts(origin_run, origin_node)
        return str(attempts[-1][stream] or "") if attempts else ""

    def __repr__(self) -> str:
        # What a REPL user looks for; the key and output digests are one attribute away.
        shown = [self.status]
        if self.attempts:
            shown.append(f"{self.attempts} attempt{'s' if self.attempts != 1 else ''}")
        if self.duration is not None and self.status != "cached":
            shown.append(_seconds(self.duration))
        why = self.error or (self.reason if self.reason != self.status else "")
        return f"<result of step {self.name!r}: {', '.join(shown)}{f' ({why})' if why else ''}>"


@dataclass
class Run:
    """The outcome of ``Pipeline.run`` (or of an earlier run: ``orchestrator.get_run``): status, steps, outputs."""

    id: str
    pipeline: str
    status: str
    steps: dict[str, StepResult]
    store: str
    result: Any = None
    error: str | None = None
    metadata: str | None = None
    # A map's node -> (its item nodes, its step's output names): a map is no step of its own.
    maps: dict[str, tuple[list[str], tuple[str, ...]]] = field(default_factory=dict)
    # Why ``output()`` cannot rebuild the return value of a run rebuilt from old records, if so.
    unavailable: str | None = None

    def __post_init__(self) -> None:
        # A missing name says which there are.
        self.steps = StepsByName(self.steps, owner=f"run {self.id}", spelled="run.steps")
        for result in self.steps.values():  # so that ``run.steps["fit"].output()`` knows where to look
            result.source = (self.store, self.metadata, self.id)

    def __repr__(self) -> str:
        counts: dict[str, int] = {}
        for result in self.steps.values():
            counts[result.status] = counts.get(result.status, 0) + 1
        steps = ", ".join(f"{n} {status}" for status, n in counts.items())
        error = f": {self.error}" if self.error else ""
        return f"<run {self.id} of pipeline {self.pipeline!r}: {self.status} ({steps}){error}; store {self.store}>"

    @property
    def metrics(self) -> dict[str, Any]:
        """Metrics the run's steps returned (see ``orchestrator.Metrics``)."""
        return open_store(self.store, self.metadata, self.id).lineage.run(self.id)["metrics"] or {}

    @property
    def params(self) -> dict[str, Any]:
        """The parameters the run was given, defaults included, as recorded: JSON, as ``orch show --json``
        lists them (a dataclass as the dict of its fields, an Enum as its value, a Path as text).
        ``pipeline.run(params_from=run.id)`` runs with them again, converted back to their types."""
        return open_store(self.store, self.metadata, self.id).lineage.run(self.id)["params"] or {}

    def output(self) -> Any:
        """The pipeline's return value, loaded from the store (a tuple for a tuple)."""
        if self.status != "succeeded":
            # Why, in the line a test report or a notebook shows, not only behind `orch show`.
            if self.error:
                raise UserError(f"run {self.id} {self.status}, so it has no output: {self.error}")
            raise UserError(f"run {self.id} {self.status}; it has no output. See `orch show {self.id}`.")
        if self.unavailable:
            raise UserError(self.unavailable)
        ctx = open_store(self.store, self.metadata, self.id)
        return substitute(expand_maps(self.result, self.maps), lambda out: load_output(
            ctx, self.steps[out.node].outputs[out.name], f"output '{out.name}' of step '{out.node}' of run {self.id}",
            self.id))

    @property
    def failed_steps(self) -> list[StepResult]:
        return [s for s in self.steps.values() if s.status == "failed"]


def open_store(store: str, metadata: str | None, run_id: str) -> Context:
    """The store run ``run_id`` was made in, opened to read: one deleted since is said to be gone.

    Opening it to write would make a new, empty store where it was (a
    notebook's ``run.output()`` after its temporary folder was removed), and
    every output would then look removed by ``orch cache gc``.

    Raises:
        UserError: no metadata database where the run's store was.
    """
    database = database_file(store, metadata)
    if database is not None and not database.is_file():
        raise UserError(f"run {run_id} was made in the store {store}, which is gone (no {database}): it was "
                        "deleted or moved. Run the pipeline again to make its outputs again.")
    return Context.open(store, metadata, create=False, spelling=PYTHON)  # Run.output(), from Python


def expand_maps(template: Any, maps: dict[str, tuple[list[str], tuple[str, ...]]]) -> Any:
    """A result template with each map's placeholder replaced by its items' outputs.

    A map stands for the list of its items' outputs (tuples for a step with
    several), so every ``Output`` left names one output of one step run.
    """
    def leaf(out: Output) -> Any:
        if out.node not in maps:
            return out
        items, names = maps[out.node]
        if len(names) == 1:
            return [leaf(Output(item, names[0])) for item in items]
        return [tuple(leaf(Output(item, n)) for n in names) for item in items]

    return substitute(template, leaf)


def encode_result(template: Any, digest_of: Callable[[Output], str]) -> dict[str, Any]:
    """A result template (maps expanded) as the JSON that ``runs.result`` keeps (see ``result_record``)."""
    return result_record.record(template, lambda value: (
        (value.node, value.name, digest_of(value)) if isinstance(value, Output) else None))


def decode_result(column: Any) -> tuple[Any, list[tuple[Output, str]]]:
    """(the template ``encode_result`` recorded, with ``Output`` leaves; each leaf with its digest).

    Raises:
        ValueError: the record is not what ``encode_result`` writes (a damaged value).
    """
    leaves: list[tuple[Output, str]] = []

    def leaf(node: str, name: str, digest: str) -> Output:
        out = Output(node, name)
        leaves.append((out, digest))
        return out

    return result_record.decode_record(column, leaf), leaves


def load_output(ctx: Context, digest: str, what: str, run_id: str | None = None) -> Any:
    """Load ``digest`` through the checked path (checksum, signature), or say in one line why it cannot.

    Args:
        what: what the value is, for the message (``output 'out' of step 'fit' of run 1a2b``).
        run_id: the run it belongs to, whose pipeline file's folder the message names when
            the value is an object of code this process cannot import.

    Raises:
        UserError: the object was removed (``orch cache gc``) or is damaged, or it is an object of
            code (a class of the pipeline file) that this process cannot import.
    """
    try:
        return ctx.load(digest)
    except StoreError as exc:
        if isinstance(exc, (MissingArtifactError, CorruptArtifactError)):
            raise _unloadable(exc, digest, what, _remake_command(ctx, run_id, digest)) from None
        unimportable = _unimportable_code(exc.__cause__, _pipeline_folder(ctx, run_id, digest),
                                          lambda: _producer_packages(ctx, digest))
        if unimportable is None:
            raise
        raise UserError(f"{_named(what, digest)} cannot be loaded in this process: {unimportable}") from None


def _named(what: str, digest: str) -> str:
    """``output 'out' of step 'fit' of run 1a2b (artifact 9f86d081884c)``; an artifact named by digest once."""
    return what if what.startswith("artifact ") else f"{what} (artifact {digest[:12]})"


def _remake_command(ctx: Context, run_id: str | None, digest: str) -> str:
    """The command that makes ``digest`` again: its run's file with that run's parameters, when recorded.

    ``orch run FILE`` alone runs the pipeline's defaults: for the model of a run given `-p C=0.5`,
    it makes another one and leaves the user wondering why the old one is still missing.
    """
    if run_id is None:
        producers = ctx.lineage.producers(digest)
        run_id = producers[0][0] if producers else None
    row = ctx.lineage.row("SELECT file FROM runs WHERE run_id=?", (run_id,)) if run_id else None
    if not row or not row["file"]:
        return "orch run FILE"
    return f"orch run {shlex.quote(str(row['file']))} --params-from {run_id}"


def _unloadable(exc: StoreError, digest: str, what: str, remake: str = "orch run FILE") -> UserError:
    """The one line for an artifact that is gone or damaged, with the fix (``remake``: the command)."""
    if isinstance(exc, MissingArtifactError):
        # Not always orch's doing: an objects folder deleted or restored without it looks the same.
        return UserError(f"{_named(what, digest)} is no longer in the store: `orch cache gc` or "
                         "`orch cache verify --repair` removed it, or its file was deleted. Run the pipeline "
                         f"again ({remake}) to make it again.")
    if isinstance(exc, UntrustedArtifactError):
        # Often not damage at all: a notebook on another machine or account signs with another key,
        # and `verify --repair` would then delete what teammates' runs stored.
        from orchestrator.signing import other_key_advice

        return UserError(f"{_named(what, digest)} is not trusted: {exc.detail}; it was not unpickled. "
                         f"{other_key_advice('the run was made')}; otherwise run the pipeline again to recompute it.")
    detail = exc.detail if isinstance(exc, CorruptArtifactError) else str(exc)
    return UserError(f"{_named(what, digest)} cannot be loaded: {detail}. Run `orch cache verify "
                     "--repair`, then the pipeline again to recompute it.")


def _unimportable_code(cause: BaseException | None, folder: Path | None,
                       packages: Callable[[], Any] = lambda: None) -> str | None:
    """What an unpickled value needs and this process cannot import, with the fix; None for another failure.

    A class or function a pipeline file defines is pickled by reference to that
    file's module (``train.Model``), which a notebook started in another folder
    cannot import: the generic "check that library versions match" would send
    the user looking in the wrong place. The folder is only named, never added:
    the store does not get to choose what this process imports.
    """
    gone = gone_user_code(cause)
    if gone is not None:  # its package is importable: the folder is on the path, the code left
        return (f"it is an object of code of yours that moved or was renamed (`{gone}` is gone). Run the "
                "pipeline again to store it as the current code has it.")
    if isinstance(cause, ModuleNotFoundError) and cause.name:
        top = cause.name.partition(".")[0]
        if folder is not None and ((folder / f"{top}.py").is_file() or (folder / top).is_dir()):
            return (f"it is an object of code in the module '{cause.name}' of the pipeline's folder {folder}, "
                    f"which is not importable here. Put that folder on the import path first "
                    f"(sys.path.insert(0, {str(folder)!r}), or PYTHONPATH={folder}).")
        other_version = stored_by_other_version(cause.name, packages())
        if other_version is not None:
            return other_version
        return (f"it needs the module '{cause.name}', which is not importable here. Install it, or, if it is code "
                "of your pipeline's files, put their folder on the import path (sys.path.insert(0, FOLDER)).")
    if isinstance(cause, AttributeError) and str(cause).startswith("Can't get attribute"):
        return (f"it uses code the module no longer defines ({cause}). Restore that code, or run the pipeline "
                "again to store a value of the current code.")
    return None


def _pipeline_folder(ctx: Context, run_id: str | None, digest: str) -> Path | None:
    """The folder of the pipeline file of ``run_id`` (else of the first run that produced ``digest``)."""
    if run_id is None:
        producers = ctx.lineage.producers(digest)
        run_id = producers[0][0] if producers else None
    row = ctx.lineage.row("SELECT file FROM runs WHERE run_id=?", (run_id,)) if run_id else None
    return Path(row["file"]).parent if row and row["file"] else None


def _producer_packages(ctx: Context, digest: str) -> Any:
    """The package versions the first run that produced ``digest`` recorded, or None."""
    return ctx.lineage.producer_packages(digest)


def _seconds(duration: float) -> str:
    """``0.25 ms``, ``1.2 s``: a duration as a person reads it, not 17 digits."""
    return f"{duration * 1000:.3g} ms" if duration < 1 else f"{duration:.3g} s"
