"""The store a command works on: the artifact store and its metadata database, opened together.

Resolves where the store is (argument, ``$ORCH_STORE``, the project's
``[tool.orchestrator]`` table, ``./cache``) and reads the durability settings from the environment. Loading an artifact by
digest goes through here so that its recorded checksum (and, for pickled
objects, its signature) is checked before anything is deserialized.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator import signing
from orchestrator.errors import (
    CURRENT_FOLDER_GONE,
    CorruptArtifactError,
    DamagedRecordError,
    StoreError,
    UndecodableArtifactError,
    UntrustedArtifactError,
    UserError,
    current_folder_gone,
    owner_of,
)
from orchestrator.lineage_db import Lineage
from orchestrator.project import anchored, find_project
from orchestrator.remote_store import FsspecStore, is_process_local, is_url
from orchestrator.serialize import needs_unpickling
from orchestrator.spelling import CLI, Spelling
from orchestrator.store import ArtifactInfo, ArtifactStore, header_disagreement
from orchestrator.store_users import other_databases

DEFAULT_STORE = "cache"


@dataclass(frozen=True)
class StoreChoice:
    """Which store and metadata database a command uses, and why (for ``orch doctor`` and messages).

    ``store`` is as given, or an absolute path when it comes from a project's table,
    so that a run recorded from a subfolder names the same store as one from the root.
    """

    store: str
    metadata: str | None
    source: str  # "--store", "ORCH_STORE", "[tool.orchestrator] in /p/pyproject.toml", "the default"

    @property
    def from_project(self) -> bool:
        return self.source.startswith("[tool.orchestrator]")


def choose_store(store: str | os.PathLike[str] | None, metadata: str | os.PathLike[str] | None = None,
                 spelling: Spelling = CLI) -> StoreChoice:
    """The store and metadata database to use: the first of the argument, ``$ORCH_STORE``, the table, ``./cache``.

    The table's ``metadata`` goes with its store: it is used only when the store comes
    from the table too (an explicit ``--store`` elsewhere paired with the project's
    database would be refused as a mistyped store). ``--metadata``/``$ORCH_METADATA``
    win over it, as they pair with any store.

    Raises:
        UserError: a project table that cannot be read, or that holds a URL missing its ``//``; an
            empty (or blank) ``store`` or ``metadata``.
    """
    for value, name, placeholder, usual in (
            (store, "store", "DIR", "ORCH_STORE, the project's [tool.orchestrator] store, or ./cache"),
            (metadata, "metadata", "PATH", "the metadata.db in the store folder")):
        if value is not None and not os.fspath(value).strip():
            # `--store "$STORE"` with $STORE unset: taken as not given, it ran in ./cache, a new and
            # empty store, re-running every step (a blank one made a folder named by spaces).
            why = " (an unset shell variable?)" if spelling.cli else ""
            raise UserError(f"{spelling.option(name)} is empty{why}: pass {spelling.option(name, placeholder)}, "
                            f"or leave it out for {usual}.")
    chosen_metadata = os.fspath(metadata) if metadata else os.environ.get("ORCH_METADATA") or None
    if store:
        return StoreChoice(os.fspath(store), chosen_metadata, spelling.option("store"))
    if os.environ.get("ORCH_STORE"):
        return StoreChoice(os.environ["ORCH_STORE"], chosen_metadata, "ORCH_STORE")
    project = find_project()
    if project is None:
        return StoreChoice(DEFAULT_STORE, chosen_metadata, f"the default ./{DEFAULT_STORE}")
    text = project.store or DEFAULT_STORE
    _refuse_half_url(text, f"store = {text!r} in {project.source}")
    store_text = anchored(project, text, is_url(text))
    if chosen_metadata is None and project.metadata:
        _refuse_half_url(project.metadata, f"metadata = {project.metadata!r} in {project.source}")
        chosen_metadata = anchored(project, project.metadata, is_url(project.metadata))
    return StoreChoice(store_text, chosen_metadata, project.source)


def store_root(store: str | os.PathLike[str] | None) -> Path:
    """The store folder: the argument, else ``$ORCH_STORE``, else the project's table, else ``./cache``."""
    return _local_path(choose_store(store).store)


def store_location(store: str | os.PathLike[str] | None) -> str | Path:
    """Like ``store_root``, but a ``proto://`` URL stays a string for fsspec.

    Raises:
        UserError: a URL missing its ``//`` (``file:/mnt/store``, ``s3:/bucket``).
    """
    chosen = choose_store(store).store
    if is_url(chosen):
        _refuse_pathless_file_url(str(chosen))
        return str(chosen)
    _refuse_half_url(os.fspath(chosen), f"store {os.fspath(chosen)}")
    return _local_path(chosen)


# ``scheme:/path``: a URL whose ``//`` was lost (a typo, or a shell or config that collapsed it).
_HALF_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]+):/(?!/)")


def _refuse_half_url(text: str, given: str) -> None:
    """Refuse ``scheme:/path``, which would otherwise be a local folder named ``scheme:`` in the current folder.

    A one-letter scheme is a Windows drive (``C:/stores``), not a URL.
    """
    match = _HALF_URL.match(text)
    if match:
        scheme, path = match.group(1), text[match.end() - 1:]
        # A file URL keeps the absolute path's own slash (file:///mnt/x); others name bucket/key.
        fixed = f"{scheme}://{path if scheme.lower() == 'file' else path.lstrip('/')}"
        raise UserError(f"{given} looks like a URL missing its '//', and would be a local folder named "
                        f"'{scheme}:' in the current folder: write {fixed} (or ./{text} if you mean such a folder).")


def _refuse_pathless_file_url(url: str) -> None:
    """Refuse ``file://`` and ``file:///``: what ``file:///$DIR`` gives with ``DIR`` unset.

    The first was a new store in the current folder (every step run again, as an empty
    ``--store`` would be); the second wrote the store's files at the root of the file
    system, while its workers took ``file://`` for the current folder and failed every step.
    """
    scheme, _, path = url.partition("://")
    if scheme.lower() in ("file", "local") and (not path.strip("/") or
                                                 (path.startswith("/") and posixpath.normpath(path) in ("/", "//"))):
        raise UserError(f"store {url} names no folder ({'the root of the file system' if path else 'an empty path'}"
                        f"): write the store's folder, as file:///mnt/stores/project (is a variable in it unset?).")


def _local_path(text: str | os.PathLike[str]) -> Path:
    """A local store or metadata path, a leading ``~`` the home folder.

    A shell expands ``~`` only unquoted at the start of a word: ``ORCH_STORE="~/stores/x"``
    in a ``.env`` file, a Makefile or a CI setting keeps it, and it would make a folder
    named ``~`` in the current folder (one ``rm -rf ~`` away from the real home).
    """
    return Path(os.path.expanduser(os.fspath(text)))


def metadata_home(metadata: str | os.PathLike[str], spelling: Spelling = CLI) -> tuple[Path, Path]:
    """(local folder for locks and reports, metadata database file) for ``--metadata PATH``.

    PATH is a folder (the database is ``PATH/metadata.db``) or, when it ends
    in ``.db`` or names an existing file, the database file itself. A mistake
    is named as ``spelling`` writes the option (``--metadata``, ``metadata=``).
    """
    text = os.fspath(metadata)
    if is_url(text):
        raise UserError(f"{spelling.given('metadata', text)} is a URL; the metadata database must stay on this "
                        "machine. Pass a local folder.")
    if "\0" in text:
        raise UserError(f"the metadata path contains a NUL character. Pass {spelling.option('metadata')} with a "
                        "plain path.")
    _refuse_half_url(text, spelling.given("metadata", text))
    path = _local_path(text)
    if path.suffix != ".db" and path.is_file() and not _could_be_database(path):
        # Not a damaged database (whose fix is to move it aside) but the wrong argument: a pipeline file, a CSV.
        raise UserError(f"{spelling.given('metadata', text)} is a file that is not an SQLite database. Pass a "
                        "folder (the database is FOLDER/metadata.db) or a path ending in .db.")
    if path.suffix == ".db" or path.is_file():
        return path.parent, path
    return path, path / "metadata.db"


def _could_be_database(path: Path) -> bool:
    """Whether ``path`` starts as an SQLite database does (an empty file is one SQLite would create)."""
    try:
        with path.open("rb") as f:
            head = f.read(16)
    except OSError:
        return True  # unreadable: let opening it say why
    return not head or head == b"SQLite format 3\x00"


def database_file(store: str | os.PathLike[str] | None, metadata: str | os.PathLike[str] | None) -> Path | None:
    """Where the metadata database of a store is, as ``Context.open`` finds it (None: a URL without one)."""
    choice = choose_store(store, metadata)
    if choice.metadata:
        return metadata_home(choice.metadata)[1]
    location = store_location(choice.store)
    return None if isinstance(location, str) else location / "metadata.db"


def _dangling_link(path: Path) -> Path | None:
    """``path`` or the first of its folders that is a symbolic link to nothing, or None."""
    if path.exists():
        return None
    for part in (path, *path.parents):
        if part.is_symlink() and not part.exists():
            return part
    return None


def _closed_to_you(location: Path, spelling: Spelling) -> str | None:
    """The one-line error for a store folder this user may not open, or None.

    A teammate's store made by a job under ``umask 077`` (cron's, a container's) is
    ``drwx------``: every command stopped with a bare "Permission denied: STORE/objects"
    that named neither whose store it is nor how it is shared.
    """
    if not location.is_dir() or os.access(location, os.R_OK | os.X_OK):
        return None
    return (f"the store {location}{owner_of(str(location))} cannot be read by you (mode "
            f"{stat.filemode(location.stat().st_mode)}): a store made under umask 077, as jobs often run, is its "
            f"user's alone. To share it, its owner runs `chmod -R g+rwX {location}` (and `chgrp -R GROUP`), and "
            f"the job `umask 002`; or pass {spelling.option('store', 'DIR')} with a store of your own.")


# The folders a local store keeps its files in, and what for (the message for one that is not a folder).
_OWN_FOLDERS = {"objects": "its stored objects", "tmp": "the objects being written"}


def _not_a_folder(location: Path) -> str | None:
    """The one-line error for a store whose ``objects`` or ``tmp`` is a file or a link to nothing, or None.

    A file there (made by hand, a botched copy or sync) failed every step that writes
    an object with a bare ``[Errno 17] File exists`` or ``Not a directory`` (exit 1),
    while ``orch doctor`` called the store healthy and ``orch cache verify`` listed every
    object as missing. Nothing can be stored until it is moved, so it is said up front.
    """
    for name, holds in _OWN_FOLDERS.items():
        path = location / name
        if path.is_symlink() and not path.exists():
            # An objects/ on a share not mounted: every object looked missing, and `orch cache verify
            # --repair` would have dropped the records of every one of them.
            return (f"the store's {name}/ ({path}) is a symbolic link to {os.readlink(path)}, which does not "
                    "exist (a share not mounted?). Mount or create it, then run the same command again.")
        if path.exists() and not path.is_dir():
            return (f"the store's {name}/ ({path}) is a file, not a folder: the store keeps {holds} there. "
                    "Move the file aside, then run the same command again.")
    return None


def _no_store(location: str | Path, database: Path, chosen_metadata: bool, spelling: Spelling, where: str = "",
              source: str = "") -> str:
    fix = f"run a pipeline first with {spelling.first_run}, or pass {spelling.option('store', 'DIR')}"
    if isinstance(location, Path) and next(ArtifactStore(location).iter_objects(), None) is not None:
        others = other_databases(ArtifactStore(location), database) if chosen_metadata else []
        if others:
            # A teammate's first command on a shared store: nothing was lost, their database is new.
            return (f"no metadata database {database} yet; the store at {location} is shared with "
                    f"{len(others)} other database(s) ({', '.join(others[:3])}{', …' if len(others) > 3 else ''}), "
                    f"whose runs are theirs: {spelling.first_run} with this {spelling.option('metadata', 'PATH')} "
                    "starts this one (their stored objects are reused, not copied)")
        # The database was deleted or moved, not the store: say so, as `orch doctor` does for an emptied one.
        return (f"the store at {location} holds objects but no metadata database {database} (lost or moved?): "
                f"re-run your pipelines, which re-adopt the stored objects, or pass {spelling.option('metadata', 'PATH')} "
                "if the database is elsewhere")
    here = ""
    if isinstance(location, Path) and not location.is_absolute():
        # `ORCH_STORE=cache` (or the default ./cache) read from a subfolder: "no store at cache" alone
        # did not say that the path was looked for here, not where the runs were made.
        here = f" in the current folder {Path.cwd()}" + (f", from {source}" if source == "ORCH_STORE" else "")
    if not chosen_metadata:
        return f"no store at {location}{where} (no metadata.db){here}: {fix}"
    return (f"no store at {location}{where} (no metadata database {database}){here}: {fix} and "
            f"{spelling.option('metadata', 'PATH')}")


def _former_default(location: str | Path, spelling: Spelling) -> str:
    """A note that ``./cache`` here is a store, when the project's table points elsewhere.

    A project that adds ``[tool.orchestrator]`` after running for a while has its
    history in ``./cache``; told only that the table's store does not exist, its
    user would think the history lost.
    """
    former = Path(DEFAULT_STORE)
    if (former / "metadata.db").is_file() and former.resolve() != Path(location).resolve():
        return (f". ./{DEFAULT_STORE} here is a store too (the default before the table): read it with "
                f"{spelling.option('store', DEFAULT_STORE)}, or move it to {location}")
    return ""


def former_default_warning(ctx: Context) -> str | None:
    """A warning for a run that starts a project's new store while ``./cache`` here holds the earlier runs.

    A project that adds ``[tool.orchestrator]`` after running for a while would
    otherwise re-run everything into an empty store, and its user would find
    the history gone from ``orch runs``, with no word of where it is.
    """
    if not ctx.new or not (ctx.source or "").startswith("[tool.orchestrator]"):
        return None
    former = Path(DEFAULT_STORE)
    if not (former / "metadata.db").is_file() or former.resolve() == Path(ctx.location).resolve():
        return None
    # --store is an option of `orch`, not of `orch run`: name where it goes.
    keep = (f"orch --store {DEFAULT_STORE} run ..." if ctx.spelling.cli else f"store={DEFAULT_STORE!r}")
    return (f"this run starts a new, empty store at {ctx.location} (from {ctx.source}), but ./{DEFAULT_STORE} "
            f"here holds the runs made before the table: to keep using it, run with {keep} (or make it the "
            f"table's store), or move it to {ctx.location} before running again.")


def _check_store_has_objects(artifacts: ArtifactStore, lineage: Lineage, database: Path, spelling: Spelling) -> None:
    """Refuse a store apart from its database with no objects when the database records stored objects.

    That is a mistyped URL or path, or a forgotten ``--store`` (``ORCH_METADATA`` set, the
    store left at ``./cache``). Without this, every object would look missing, and
    ``cache verify --repair`` would drop the records of a store that is fine at its real address.
    """
    if artifacts.has_objects():
        return
    row = lineage.conn.execute("SELECT count(*) FROM artifacts WHERE inline IS NULL").fetchone()
    if row and row[0]:
        lineage.close()
        if is_process_local(artifacts.location):
            # A memory:// store is gone once the process that wrote it ends: likelier than a typo.
            what = ("URL (a memory:// store lives only as long as the process that wrote it, and each orch "
                    "command is a new one: use a folder or a file:// URL to keep one)")
        elif isinstance(artifacts, FsspecStore):
            what = "URL (and that your credentials can list it)"  # an object store may answer "not there"
        else:
            what = f"folder ({spelling.option('store')} or ORCH_STORE)"
        raise UserError(f"no store at {artifacts.location} (no objects/ there), but the metadata database "
                        f"{database} records {row[0]} stored objects: check the store {what}, or pass a "
                        f"new {spelling.option('metadata')} folder to start a new store there.")


@dataclass
class Context:
    """The store and metadata database a run or a CLI command works on.

    ``root`` is the local folder beside the metadata database (key locks,
    monitoring reports, request logs): the store folder itself, unless the
    store is a URL or ``--metadata`` puts the database elsewhere.
    """

    root: Path
    store: ArtifactStore
    lineage: Lineage
    metadata: str | None = None
    source: str | None = None  # why this store: "--store", "ORCH_STORE", a project's table, the default
    spelling: Spelling = CLI  # how the user gave its options, for messages that name one (`--force`, `force=True`)
    new: bool = False  # whether opening it made its metadata database: no run has used this store before

    @classmethod
    def open(cls, store: str | os.PathLike[str] | None = None,
             metadata: str | os.PathLike[str] | None = None, *, create: bool = True,
             spelling: Spelling = CLI, short: bool = False) -> Context:
        """Open the store (a folder or an fsspec URL) and its metadata database.

        Args:
            create: whether a store that does not exist yet is made on first use (a run).
                Commands that only read pass False: then a missing metadata database is
                the user's mistake, and nothing is created.
            spelling: how the user gave the store (``--store``, or ``store=`` from Python),
                for the messages that name it.
            short: a command that ends soon (``orch runs``, ``cache gc``, ``doctor``): on a disk
                too full for SQLite's shared-memory file it opens the database with an
                exclusive lock rather than fail, so that ``gc`` can free space. Never a run, a
                server or a notebook, which would keep everyone else out while they last.

        Raises:
            UserError: an unusable path, a store URL without a local ``metadata`` path, or
                (with ``create=False``) no metadata database where the store should be.
        """
        choice = choose_store(store, metadata, spelling)
        location = store_location(choice.store)
        chosen = choice.metadata
        paths = [location] if isinstance(location, Path) else []
        if chosen and not is_url(os.fspath(chosen)):
            paths.append(Path(os.path.expanduser(os.fspath(chosen))))
        if any(not p.is_absolute() for p in paths) and current_folder_gone():
            raise UserError(CURRENT_FOLDER_GONE)  # a notebook whose folder was removed: not a bare FileNotFoundError
        durable = os.environ.get("ORCH_FSYNC", "1") != "0"
        sync = "FULL" if os.environ.get("ORCH_FSYNC") == "all" else "NORMAL"
        if isinstance(location, str):
            if not chosen:
                raise UserError(f"store {location} is a URL, and the metadata database stays on this "
                                f"machine: pass {spelling.option('metadata', 'PATH')} (a local folder) or set "
                                "ORCH_METADATA.")
            home, database = metadata_home(chosen, spelling)
            artifacts: ArtifactStore = FsspecStore(location, fsync=durable)
        else:
            if "\0" in str(location):
                raise UserError(f"the store path contains a NUL character. Pass {spelling.option('store', 'DIR')} "
                                "with a plain path.")
            if location.exists() and not location.is_dir():
                raise UserError(f"store path {location} is a file, not a folder. Pass {spelling.option('store', 'DIR')}.")
            closed = _closed_to_you(location, spelling)
            if closed is not None:
                raise UserError(closed)
            broken = _not_a_folder(location)
            if broken is not None:
                raise UserError(broken)
            dangling = _dangling_link(location)
            if dangling is not None:
                # `cache -> /mnt/team/store` with the share not mounted: creating it would fail as "File exists".
                raise UserError(f"store path {location}: {dangling} is a symbolic link to {os.readlink(dangling)}, "
                                "which does not exist (a share not mounted?). Mount or create it, or pass "
                                f"{spelling.option('store', 'DIR')}.")
            home, database = metadata_home(chosen, spelling) if chosen else (location, location / "metadata.db")
            artifacts = ArtifactStore(location, fsync=durable)
        if home.exists() and not home.is_dir():
            raise UserError(f"metadata path {home} is a file, not a folder. Pass {spelling.option('metadata', 'DIR')}.")
        if not create and not database.is_file():
            where = f" (from {choice.source})" if choice.from_project else ""
            raise UserError(_no_store(location, database, bool(chosen), spelling, where, choice.source)
                            + (_former_default(location, spelling) if choice.from_project else ""))
        had_database = database.is_file()
        lineage = Lineage(database, synchronous=sync, spelling=spelling, exclusive_if_full=short)
        if (isinstance(artifacts, FsspecStore) or chosen) and had_database:
            _check_store_has_objects(artifacts, lineage, database, spelling)
        return cls(home, artifacts, lineage, metadata=os.fspath(chosen) if chosen else None, source=choice.source,
                   spelling=spelling, new=not had_database)

    def own_folders(self) -> list[Path]:
        """The local folders this store writes to (its metadata folder, and its objects' when local).

        A directory input that holds them leaves them out of its digest (``hashing.skipping_folders``).
        """
        folders = [self.root]
        if isinstance(self.store, FsspecStore):
            if self.store.location.startswith("file://"):  # a folder on this machine too (file://data/store)
                folders.append(Path(self.store.location.removeprefix("file://")))
        elif isinstance(self.store, ArtifactStore):
            folders.append(self.store.root)
        return folders

    @property
    def location(self) -> str:
        """The store as workers open it: a folder path or a URL."""
        return self.store.location

    def load(self, digest: str) -> Any:
        """Load an artifact by digest, verified against its signature and checksum first.

        Raises:
            UndecodableArtifactError: its materializer cannot decode it; the message says whether the
                run that stored it had this process's package versions (then the materializer is at fault).
        """
        try:
            return self.store.get(self.artifact_info(digest))
        except UndecodableArtifactError as exc:
            raise self._undecodable(exc) from exc.__cause__

    def _undecodable(self, exc: UndecodableArtifactError) -> UndecodableArtifactError:
        """``exc`` with advice from the package versions the run that stored its artifact recorded."""
        from orchestrator.environment import undecodable_advice
        from orchestrator.serialize import get_materializer, is_builtin

        try:
            builtin = is_builtin(get_materializer(exc.materializer))
        except StoreError:
            builtin = False
        advice = undecodable_advice(exc.materializer, exc.type_name, self.lineage.producer_packages(exc.digest),
                                    builtin)
        return exc if advice is None else exc.with_advice(advice)

    def artifact_info(self, digest: str) -> ArtifactInfo:
        """What is recorded about ``digest``, checked so that loading it is safe.

        A pickled artifact must carry a valid signature; one that has no row
        (only an object file) is refused, since nobody signed it. The checksum
        returned then protects the bytes: ``store.get`` checks it before decoding.

        Raises:
            UntrustedArtifactError: A pickled artifact is unsigned or its signature is wrong.
            MissingArtifactError: Neither a row nor an object exists.
            CorruptArtifactError: The object file's header is unreadable (no row), or its row is damaged.
        """
        try:
            recorded = self.recorded_info(digest)
        except DamagedRecordError as exc:  # a damaged record is a damaged artifact: recomputed, or repaired
            raise CorruptArtifactError(digest, f"its record is damaged: {exc.detail}") from None
        if recorded is None:
            info = self.store.read_header(digest)
            if needs_unpickling(info.materializer):
                raise UntrustedArtifactError(digest, "its object file has no signed record")
            return info
        info = recorded
        if needs_unpickling(info.materializer):
            problem = signing.verify(info, self.signature(digest))
            if problem:
                raise UntrustedArtifactError(digest, problem)
        return info

    def recorded_info(self, digest: str) -> ArtifactInfo | None:
        """What this database records of ``digest``, or None without a row; unchecked (``artifact_info`` checks).

        Raises:
            DamagedRecordError: its row's ``meta`` does not decode.
        """
        row = self.lineage.artifact_row(digest)
        if row is None:
            return None
        return ArtifactInfo(digest=row["digest"], materializer=row["materializer"], type_name=row["type"],
                            size=row["size"], checksum=row["checksum"], meta=row["meta"], inline=row["inline"])

    def record_disagreement(self, digest: str) -> str | None:
        """How the object file's header differs from this database's record of it, or None (also without a row).

        No checksum covers the header, and decoding follows it; in a store other databases
        share, another's encoding of the same value may have replaced the file.

        Raises:
            MissingArtifactError, CorruptArtifactError: no object file, or an unreadable header.
            DamagedRecordError: the row's ``meta`` does not decode.
        """
        header = self.store.read_header(digest)
        recorded = self.recorded_info(digest)
        return None if recorded is None else header_disagreement(vars(header), recorded)

    def signature(self, digest: str) -> str | None:
        """The recorded signature of ``digest``, if any."""
        row = self.lineage.conn.execute("SELECT hmac FROM signatures WHERE digest=?", (digest,)).fetchone()
        return str(row[0]) if row else None

    def forget_signatures(self, digests: list[str]) -> None:
        """Drop the signatures of artifacts that were removed."""
        with self.lineage.transaction() as c:
            c.executemany("DELETE FROM signatures WHERE digest=?", [(d,) for d in digests])
