"""User-facing exceptions of the orchestrator.

Every error a user can cause is an ``OrchestratorError`` subclass whose
message is one line: what is wrong, where, and how to fix it. The CLI prints
that line and exits with the error's ``exit_code``: 2 for a ``UserError`` and
for a metadata database that is damaged or cannot be opened, 1 for a failed
run; it shows a traceback only under ``--verbose``. This module imports nothing from the rest
of the package, so every layer can raise these.
"""

from __future__ import annotations

import difflib
import functools
import os
import sys
from collections.abc import Callable, Iterable
from typing import ParamSpec, TypeVar

_P = ParamSpec("_P")
_R = TypeVar("_R")
_PACKAGE = os.path.dirname(os.path.abspath(__file__))


class OrchestratorError(Exception):
    """Base of every error the orchestrator raises on purpose."""

    exit_code = 1


class UserError(OrchestratorError):
    """A mistake in the user's input: a file, an argument, a name. Exit 2."""

    exit_code = 2


class PipelineDefinitionError(UserError):
    """A pipeline or step is used wrongly (unknown argument, missing input...).

    Several problems found in one pass are joined into one message, one per
    line, so the user fixes them all at once.
    """

    def __init__(self, problems: str | Iterable[str]) -> None:
        # dict.fromkeys: the same mistake made by every item of a map is reported once.
        self.problems = [problems] if isinstance(problems, str) else list(dict.fromkeys(problems))
        super().__init__("\n".join(self.problems))


class UnhashableValueError(UserError):
    """A value that must go into a cache key cannot be hashed deterministically."""


class LoadError(UserError):
    """A pipeline file cannot be found, imported, or holds no usable pipeline."""


class ParameterError(UserError):
    """A pipeline parameter is unknown or its value does not convert."""


class NotFoundError(UserError):
    """A run, step, artifact or model named on the command line does not exist."""


class StoreError(OrchestratorError):
    """The artifact store or metadata database cannot be used."""


class DamagedDatabaseError(StoreError):
    """The metadata database file is damaged or is not a SQLite database at all. Exit 2.

    The objects beside it are intact and self-describing, so the fix is to
    move the file aside and re-run: runs re-adopt the objects they produce.
    """

    exit_code = 2

    def __init__(self, path: str | os.PathLike[str], detail: str) -> None:
        self.path = os.fspath(path)
        self.detail = detail
        name = os.path.basename(self.path)
        self.problem = f"the metadata database {self.path} is damaged ({detail})"
        self.fix = (f"move {name} aside (with {name}-wal and {name}-shm, if present) and re-run your pipelines: "
                    "steps run again and re-adopt the objects already stored, as orphans are (see docs/store.md, "
                    "'A damaged, lost or read-only metadata database'); or restore it from a backup")
        super().__init__(f"{self.problem}. Check the objects with `orch doctor`, then {self.fix}.")


class DamagedRecordError(StoreError):
    """A JSON value of the metadata database does not decode, or is not of the kind recorded there. Exit 2.

    The file itself is sound: a hand edit, a crafted value or a bad sector hit one
    value. ``orch doctor`` lists every such value with the command that clears it.
    """

    exit_code = 2

    def __init__(self, path: str | os.PathLike[str] | None, what: str, detail: str) -> None:
        self.path = os.fspath(path) if path is not None else "metadata.db"
        self.what = what
        self.detail = detail
        self.problem = f"the metadata database {self.path} holds a damaged value in {what}: {detail}"
        self.fix = ("`orch doctor` lists every damaged value with the command that clears it; or restore "
                    f"{os.path.basename(self.path)} from a backup copy")
        super().__init__(f"{self.problem}. {self.fix}.")


class NewerStoreError(StoreError):
    """The store was written by a newer orchestrator (a later metadata schema). Exit 2.

    Nothing is read or changed: an older version could misread the newer records.
    """

    exit_code = 2


class DatabaseAccessError(StoreError):
    """SQLite cannot open or write the metadata database: a read-only store or file system. Exit 2."""

    exit_code = 2

    def __init__(self, path: str | os.PathLike[str], detail: str, store_option: str = "--store COPY") -> None:
        # store_option: how the user passes another store (`--store COPY`, or `store=COPY` from Python)
        self.path = os.fspath(path)
        folder = os.path.dirname(self.path) or "."
        self.detail = detail
        unwritable = _not_writable(folder, self.path)
        if unwritable is not None:
            # Commands that only read work on such a store (opened read-only); this one writes.
            what = f"the folder {unwritable}" if unwritable == folder else unwritable
            super().__init__(
                f"cannot write the metadata database {self.path}: {what} is not writable for you"
                f"{owner_of(unwritable)}. Commands that read (runs, show, lineage, logs, plan, doctor) work on such "
                f"a store; to run or change it, make {unwritable} writable for you, or copy the store to a "
                "writable place and pass --store COPY.")
            return
        super().__init__(
            f"cannot open the metadata database {self.path}: {detail}. SQLite needs write access to the folder "
            f"{folder}, even to read, since it keeps the database's WAL and index ({os.path.basename(self.path)}"
            f"-wal, -shm) beside it: make the folder and the database writable for you (chmod -R u+w {folder}), "
            f"or copy the store to a writable place and pass {store_option}.")


def _not_writable(folder: str, database: str) -> str | None:
    """The first of the database's folder, file, WAL and index that exists and this user cannot write."""
    for path in (folder, database, f"{database}-wal", f"{database}-shm"):
        if os.path.exists(path) and not os.access(path, os.W_OK):
            return path
    return None


def owner_of(path: str) -> str:
    """`` (owned by NAME)`` when another user owns ``path``: whom to ask."""
    try:
        uid = os.stat(path).st_uid
        if uid == os.geteuid():
            return ""
        import pwd

        return f" (owned by {pwd.getpwuid(uid).pw_name})"
    except (OSError, KeyError, ImportError, AttributeError):  # no such user name, or not POSIX
        return ""


class DatabaseWriteError(StoreError):
    """SQLite cannot write the metadata database: its file system is full or failing. Exit 2.

    What was committed stays; a run stopped by it is shown ``interrupted`` by the
    next command, and running it again resumes from the cache.
    """

    exit_code = 2

    def __init__(self, path: str | os.PathLike[str], detail: str, free: int | None) -> None:
        self.path = os.fspath(path)
        self.detail = detail
        folder = os.path.dirname(self.path) or "."
        if free is not None and free < 1 << 20:
            # gc works on a disk this full (the database opened with an exclusive lock): name it.
            cause = f"the file system holding {folder} is full ({free} bytes free)"
            fix = ("Free some space (`orch cache du` shows what the store takes, `orch cache gc --keep-last N` "
                   "removes what only older runs use)")
        else:
            cause = f"the disk holding {folder} failed a write or read (full, unmounted or failing?)"
            fix = "Free some space or fix the disk"
        super().__init__(
            f"cannot write the metadata database {self.path}: {detail}: {cause}. {fix}, then run the same "
            "command again: what finished is kept, and a run stopped by it resumes from the cache.")


class DatabaseLockedError(StoreError):
    """Another process held the metadata database's write lock longer than a command waits. Exit 2.

    A ``sqlite3`` shell or another tool with a transaction open, not a damaged
    store: nothing is lost, and the same command succeeds once it lets go. A
    run stopped by it is shown ``interrupted`` by the next command, and
    resumes from the cache.
    """

    exit_code = 2

    def __init__(self, path: str | os.PathLike[str], seconds: float) -> None:
        self.path = os.fspath(path)
        self.seconds = seconds
        super().__init__(
            f"the metadata database {self.path} is locked by another process, which held its write lock for "
            f"{seconds:g} s (a sqlite3 shell or another tool with a transaction open?). End that transaction or "
            "close that program, then run the same command again: what finished is kept.")


class CorruptArtifactError(StoreError):
    """A stored object's bytes do not match its recorded checksum.

    The object is never deserialized; callers treat it as a cache miss and
    recompute the step that produced it.
    """

    def __init__(self, digest: str, detail: str) -> None:
        self.digest = digest
        self.detail = detail
        super().__init__(f"artifact {digest} is damaged: {detail}")


class UndecodableArtifactError(StoreError):
    """An artifact that passed its checksum but that its materializer cannot turn back into a value.

    The store alone cannot tell why: ``advice`` is what the caller knows (the
    package versions of the run that stored it); without it, the message
    suggests comparing library versions. The decoding error is ``__cause__``.
    """

    def __init__(self, digest: str, type_name: str, materializer: str, error: str,
                 advice: str | None = None) -> None:
        self.digest, self.type_name, self.materializer, self.error = digest, type_name, materializer, error
        self.advice = advice or "Check that library versions match those of the process that stored it."
        super().__init__(f"artifact {digest} ({type_name}) passed its checksum but materializer "
                         f"'{materializer}' cannot decode it: {error}. {self.advice}")

    def with_advice(self, advice: str) -> UndecodableArtifactError:
        """The same failure, saying ``advice`` instead of the generic one (its cause kept)."""
        told = UndecodableArtifactError(self.digest, self.type_name, self.materializer, self.error, advice)
        told.__cause__ = self.__cause__
        return told


class MissingArtifactError(StoreError):
    """An artifact recorded in the metadata database has no object in the store."""

    def __init__(self, digest: str) -> None:
        self.digest = digest
        super().__init__(f"artifact {digest} is missing from the store")


class UntrustedArtifactError(CorruptArtifactError):
    """A pickled artifact whose signature is missing or does not verify.

    It is never unpickled. Being a ``CorruptArtifactError``, it takes the same
    path as damage: a run recomputes the producer, and
    ``orch cache verify --repair`` removes it.
    """

    def __init__(self, digest: str, detail: str) -> None:
        super().__init__(digest, detail)
        self.args = (
            f"artifact {digest} is not trusted: {detail}; it was not unpickled. "
            "Run `orch cache verify --repair` to remove it so that the next run recomputes it.",
        )


class StoreUnreachableError(StoreError):
    """The local store folder the driver names does not exist where a step runs (a Dask worker elsewhere).

    A worker that made the folder itself would write the step's outputs
    where the driver never looks: the run would succeed with outputs missing.
    """


class StoreMismatchError(StoreUnreachableError):
    """The folder a worker finds at the store's path is another store than the run's (its ``store-id`` differs).

    Each machine of a cluster may have its own folder at one path (``/data/store`` local on
    every node): a worker writing there would put the outputs where the driver never looks.
    """


class StoreDeletedError(StoreError):
    """The store's metadata database was deleted (or replaced) while a run used it: the run's records went with it.

    SQLite goes on writing to the open, deleted file, so the run would end
    "succeeded" and the next command say there is no store. Exit 1: the run's
    work is lost, as a failed run's is; nothing the user typed was wrong.
    """

    def __init__(self, location: str, database: str, run_id: str, replaced: bool) -> None:
        what = "replaced by another" if replaced else "deleted"
        super().__init__(
            f"store {location} was {what} while run {run_id} ran: the run's records ({database}) and "
            "outputs went with it, so nothing of it is kept or cached. Run the pipeline again once nothing "
            "removes the store meanwhile (a cleanup job, rm -rf)."
        )


class SigningKeyError(StoreError):
    """The signing key cannot be read or created: the user's setup (a read-only home), fixed on their side."""

    exit_code = 2


class RunFailedError(OrchestratorError):
    """A run finished with a failed step; the message names it and its error."""


class StepTimeoutError(OrchestratorError, TimeoutError):
    """A step attempt ran longer than its ``timeout`` and was stopped.

    It is also a ``TimeoutError``, so ``retry_on=(TimeoutError,)`` retries it.
    """


class WorkerDiedError(OrchestratorError):
    """The process running a step attempt died before reporting a result."""


class UnpicklableStepError(OrchestratorError):
    """A step's task could not be pickled for a worker (a module-level client, a ``multiprocessing`` lock).

    Not retried: another attempt would pickle the same values. The message names the value.
    """


class SchedulerLostError(OrchestratorError):
    """The run lost its Dask scheduler (it stopped, or the network failed): no attempt can run any more.

    Not retried: another attempt would go to the same lost scheduler.
    """


CURRENT_FOLDER_GONE = ("the current folder no longer exists (deleted or moved since this process entered it), "
                       "so relative paths (the default store ./cache too) name nothing: change to an existing "
                       "folder (cd; os.chdir in Python) and try again, or give absolute paths.")


def current_folder_gone() -> bool:
    """Whether the process's working folder was deleted: every relative path then fails as missing."""
    try:
        os.getcwd()
    except FileNotFoundError:
        return True
    return False


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest choice, or ``""``."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


def short_traceback(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Raise a ``UserError`` from ``fn`` (an entry point of the Python API) with the caller's frames only.

    The message names the mistake and the fix; the frames of the package
    between the user's call and the ``raise`` (``run`` → ``run_pipeline`` →
    ``build`` → ``build_dag``) only bury it in a notebook or a test report.
    What caused the error (a pipeline body's own exception) keeps its
    traceback, and ``verbose=True`` keeps the whole one, as does a call from
    the package itself (``orch run --verbose`` builds through ``build``).
    """
    @functools.wraps(fn)
    def entry(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            if kwargs.get("verbose") is True or sys._getframe(1).f_code.co_filename.startswith(_PACKAGE):
                raise
            error = exc  # raised below, outside the handler: its cause and context stay as they were
        raise error.with_traceback(None)  # the message says it all; verbose=True keeps the full traceback
    return entry
