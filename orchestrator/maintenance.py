"""Store upkeep: verifying every object, repairing damage, and removing what no kept run references.

Both work on a ``runner.Context`` (store plus metadata database) and return
plain results for the CLI to print. Garbage collection never removes what a
run still in progress may need: objects and rows created since the oldest
running run started, or since the collection read the runs (a run that
reused an old object renews its time), are kept, since a worker may have
written them before the run recorded them.

Removing (gc, repair) and checking (verify, doctor) take the store's upkeep lock
(``locks.upkeep_lock``), exclusive and shared: a check run while another terminal
collects garbage waits for it, instead of finding objects gone whose rows are not
yet, and calling them damaged.
"""

from __future__ import annotations

import sys
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orchestrator import store_users
from orchestrator.locks import upkeep_lock

if TYPE_CHECKING:
    from orchestrator.context import Context


# File times come from a coarse kernel clock that lags time.time() by up to a tick (1-10 ms).
_CLOCK_SLACK = 0.01


@dataclass
class Damage:
    digest: str
    problem: str
    # The object's bytes verify; this database's record of it (its signature, its row) is what fails.
    records_only: bool = False


@dataclass
class GcResult:
    removed: list[str] = field(default_factory=list)
    freed_bytes: int = 0
    records_only: int = 0  # removed values held in metadata.db (inline), which frees no file
    kept_runs: int = 0
    spared_recent: int = 0


def upkeep(context: Context, *, exclusive: bool) -> AbstractContextManager[None]:
    """Hold the store's upkeep lock: ``exclusive`` to remove objects, shared to check them.

    Waiting for another process says so once on stderr, since a gc of a large store
    takes minutes and the command would otherwise look hung.
    """
    def say() -> None:
        print(f"waiting: another process is removing or checking the objects of the store {context.location} "
              "(orch cache gc or orch cache verify); this goes on when it is done", file=sys.stderr, flush=True)

    return upkeep_lock(context.root, exclusive=exclusive, on_wait=say)


def signed_artifact_count(context: Context) -> int:
    """How many recorded artifacts are pickled, so that loading them needs a valid signature."""
    from orchestrator.serialize import needs_signature

    return sum(count for materializer, count in context.lineage.conn.execute(
        "SELECT materializer, count(*) FROM artifacts GROUP BY materializer") if needs_signature(materializer))


def verify_store(context: Context, *, signatures: bool = True) -> tuple[int, list[Damage]]:
    """Check every object (recorded or merely present) against its checksum.

    Inline payloads are checked too, and a pickled artifact must also carry a
    valid signature (one that fails is listed as damaged: it would never be
    loaded, so the next run must recompute it).

    Args:
        signatures: also check signatures (``orch doctor`` turns this off when
            there is no key, rather than create one).

    The caller holds ``upkeep(context, exclusive=False)`` (or exclusive, to repair what it finds).

    Returns:
        How many objects were checked, and the damaged ones with a reason each.
    """
    from orchestrator.errors import CorruptArtifactError, MissingArtifactError, SigningKeyError, StoreError

    rows = {r["digest"]: r for r in context.lineage.artifact_rows()}
    recorded = {d: r for d, r in rows.items() if r["inline"] is None}
    on_disk = set(context.store.iter_objects())
    # A row whose metadata does not decode cannot be loaded: --repair drops it, the next run recomputes it.
    bad_rows = {v.key: v.detail for v in context.lineage.damaged_values([("artifacts", "meta")])}
    damaged = []
    for digest in sorted(set(rows) | on_disk):
        row = rows.get(digest)
        sound = False  # the object file checks out by itself: what follows is about this database's records
        if row is not None and row["inline"] is not None:
            problem = _inline_problem(row)
        elif digest not in on_disk:
            problem = "missing from the store"
        else:
            problem = context.store.verify(digest)
            sound = problem is None
            try:
                if problem is None and digest in recorded and digest not in bad_rows:
                    # Another database sharing the store may have written its own encoding of the value
                    # (a pickle differs between processes): its file is sound, only this record is stale.
                    problem = context.record_disagreement(digest)
            except MissingArtifactError:  # removed since it was checked (by hand: gc waits for this check)
                problem, sound = "object file is missing", False
        if problem is None and digest in bad_rows:
            problem = f"its record is damaged: {bad_rows[digest]}"
        if problem is None and row is not None and signatures:
            try:
                context.artifact_info(digest)  # checks the signature of a pickled artifact
            except (CorruptArtifactError, MissingArtifactError) as exc:
                problem = getattr(exc, "detail", str(exc))
            except SigningKeyError:
                raise  # a key problem is not damage: --repair must not remove everything pickled
            except StoreError as exc:
                problem = str(exc)
        if problem is not None:
            damaged.append(Damage(digest, problem, records_only=sound))
    return len(set(rows) | on_disk), damaged


def repair_store(context: Context, damaged: list[Damage]) -> set[str]:
    """Remove damaged artifacts (object, row, signature, cache entries) so the next run recomputes them.

    Returns the digests whose object stays (another database sharing the store uses it): only their records went.
    """
    from orchestrator.object_format import DIGEST

    digests = [d.digest for d in damaged]
    _forget(context, digests)
    # A row whose digest is no digest (a crafted metadata.db: "../x") names no file: the row alone goes.
    # In a store other databases share, an object whose bytes verify stays when only this database's
    # record of it failed (its signature, under another key): their runs still use it, and ours
    # re-encodes it (a pickled object is kept only if byte-identical, so a planted one is replaced).
    shared = bool(store_users.other_databases(context.store, context.lineage.path))
    kept = {d.digest for d in damaged if d.records_only} if shared else set()
    files = [d for d in digests if isinstance(d, str) and DIGEST.fullmatch(d) and d not in kept]
    for done, digest in enumerate(files):
        _delete(context, digest, done, len(files), "repair")
    return kept


def _forget(context: Context, digests: list[str]) -> None:
    """Drop the records of artifacts about to be removed: rows, cache entries naming them, signatures.

    Records go before their objects: gc or repair stopped in between (killed, Ctrl-C, a store
    that refuses a delete) leaves objects that no row records, orphans the next gc removes,
    never a row naming an object that is gone, which ``orch cache verify`` would call damaged.
    """
    context.lineage.delete_artifacts(digests)
    context.forget_signatures(digests)


def _delete(context: Context, digest: str, done: int, total: int, action: str) -> None:
    """Delete one object whose record is gone (``_forget``); a store that refuses is one clear line.

    The user gets the store and the cause instead of an ``OSError``, and what became of the
    objects not removed: no row names them, so they are orphans that gc removes once it can.
    """
    from orchestrator.errors import UserError

    try:
        context.store.delete(digest)
    except OSError as exc:
        raise UserError(
            f"cannot remove object {digest} from the store {context.location}: {exc.strerror or exc} (a read-only "
            f"store, or no permission to delete?); {action} removed {done} artifact(s) before it, and the "
            f"{total - done} left are recorded no more (orphans: `orch cache gc` removes them). Run it again where "
            "the store is writable.") from None


def _inline_problem(row: dict[str, object]) -> str | None:
    import xxhash

    payload = row["inline"]
    assert isinstance(payload, bytes)
    if len(payload) != row["size"] or xxhash.xxh3_128(payload).hexdigest() != row["checksum"]:
        return "inline payload checksum mismatch"
    return None


def collect_garbage(context: Context, keep_last: int | None = None, dry_run: bool = False, *,
                    force: bool = False) -> GcResult:
    """Remove artifacts that no kept run references and no registered model version uses.

    Args:
        keep_last: keep the artifacts of each pipeline's N most recent succeeded runs, and
            of every run of it started since the oldest of them (a newer failed run keeps
            what it finished, so the next run still resumes); default: of every run. A
            pipeline with no succeeded run keeps all its runs; 0 keeps running runs only.
        dry_run: only report what would be removed.
        force: remove objects even when the database records no runs at all, or when other
            metadata databases share the store (``store_users``).

    Raises:
        UserError: the database records no runs while objects exist, and not ``force``:
            a lost or reset ``metadata.db`` would otherwise cost every object; or other
            metadata databases use the store, and not ``force``.
    """
    with upkeep(context, exclusive=not dry_run):
        return _collect_garbage(context, keep_last, dry_run, force)


def _last_runs_of_each_pipeline(runs: list[dict[str, Any]], keep_last: int) -> set[str]:
    """The ids of each pipeline's last ``keep_last`` succeeded runs and of its runs started since.

    Counted per pipeline: counted over the whole store, ten runs of an hourly ``etl`` since
    the last ``training`` would leave ``training`` nothing under ``--keep-last 5``, and its
    next run would recompute everything. A pipeline with no succeeded run keeps all its runs.
    ``runs`` is newest first.
    """
    by_pipeline: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        by_pipeline.setdefault(run["pipeline"], []).append(run)
    kept: set[str] = set()
    for own in by_pipeline.values():
        good = [r for r in own if r["status"] == "succeeded"][:keep_last]
        since = good[-1]["started"] if good else float("-inf")
        kept |= {r["run_id"] for r in own if r["started"] >= since}
    return kept


def recorded_artifacts(context: Context) -> dict[str, dict[str, Any]]:
    """Every artifact row by digest, for a command that acts on each (``cache ls``, ``cache gc``).

    Raises:
        DamagedRecordError: a row whose digest is no digest (a crafted ``../x``): one line naming it
            and the fix, exit 2 (it stopped gc with a line that named neither the table nor the row).
    """
    from orchestrator.errors import DamagedRecordError
    from orchestrator.object_format import DIGEST

    rows = {r["digest"]: r for r in context.lineage.artifact_rows()}
    bad = next((d for d in rows if not isinstance(d, str) or not DIGEST.fullmatch(d)), None)
    if bad is not None:
        raise DamagedRecordError(context.lineage.path, f"artifacts.digest of the row {bad!r}",
                                 "not 32 lowercase hex characters; `orch cache verify --repair` removes that row")
    return rows


def _collect_garbage(context: Context, keep_last: int | None, dry_run: bool, force: bool) -> GcResult:
    from orchestrator.errors import UserError

    # The candidates are listed before the runs: a run that starts meanwhile (so is not among
    # them) cannot have its new objects or rows taken for garbage. One that reuses an old object
    # after that renews its mtime (``ArtifactStore.put``), which ``read_runs`` then spares.
    on_disk = set(context.store.iter_objects())
    rows = recorded_artifacts(context)
    runs = context.lineage.runs()  # newest first
    read_runs = time.time() - _CLOCK_SLACK
    if not runs and on_disk and not dry_run and not force:
        raise UserError(
            f"refusing to collect garbage: the metadata database {context.lineage.path} records no runs, yet the "
            f"store holds {len(on_disk)} objects (metadata.db lost or reset?), and gc would delete them all. "
            f"Re-run your pipelines to re-adopt them, or pass {context.spelling.force} to delete them.")
    others = [] if force else store_users.other_databases(context.store, context.lineage.path)
    if others:
        gone = store_users.gone_from_this_host(context.store, context.lineage.path)
        if gone:  # a store moved with its --metadata folder names its own database at the old path
            raise UserError(
                f"refusing to collect garbage: the store {context.location} names {len(others)} other metadata "
                f"database(s), of which {', '.join(path for path, _ in gone[:3])} no longer exist(s) on this host "
                "(this database before the store and it were moved, or one deleted?): if so, remove "
                f"{' '.join(file for _, file in gone)} and run gc again; if such a database is on a share not "
                f"mounted now, mount it first. Or pass {context.spelling.force} to delete their objects anyway.")
        # The store's own metadata.db has no file in databases/: it stops counting once it is gone.
        inside = str(context.store.root / "metadata.db")
        registered = [o for o in others if o != inside]
        which = (f"Delete the file of a database that no longer uses the store from "
                 f"{context.location}/{store_users.FOLDER}/, or pass" if registered else "Pass")
        raise UserError(
            f"refusing to collect garbage: the store {context.location} is shared with {len(others)} other "
            f"metadata database(s) ({', '.join(others[:3])}), whose runs this one cannot see: gc would delete "
            f"objects they still use. {which} {context.spelling.force} to delete their objects anyway.")
    running = [r for r in runs if r["status"] == "running"]
    kept = {r["run_id"] for r in running}
    if keep_last is None:
        kept |= {r["run_id"] for r in runs}
    elif keep_last > 0:
        kept |= _last_runs_of_each_pipeline(runs, keep_last)
    # Registered model versions stay loadable (serve, rollback) whatever runs are dropped. The record
    # of a path a step wrote (no object: a row holding the path and the content it had) frees nothing
    # and is what lineage knows of that file: the data a registered model trained on, after a gc too.
    referenced = context.lineage.referenced_digests(kept) | {
        r["digest"] for r in context.lineage.rows("SELECT digest FROM model_versions")} | {
        r["digest"] for r in context.lineage.rows(
            "SELECT digest FROM artifacts WHERE inline IS NOT NULL AND meta LIKE '%\"file\": {%'")}
    # A running run may have objects whose rows are not committed yet: spare anything newer.
    cutoff = min((r["started"] for r in running), default=None)
    result = GcResult(kept_runs=len(kept))
    files: list[str] = []  # the removed artifacts that have an object file
    for digest in sorted((on_disk | set(rows)) - referenced):
        stat = context.store.object_stat(digest)
        created = stat[0] if stat else (rows[digest]["created"] if digest in rows else 0)
        if (cutoff is not None and created >= cutoff - 1) or created >= read_runs:
            result.spared_recent += 1
            continue
        result.removed.append(digest)
        result.freed_bytes += stat[1] if stat else 0
        if stat is not None:
            files.append(digest)
        elif digest in rows:
            result.records_only += 1
    if not dry_run:
        _forget(context, result.removed)
        for done, digest in enumerate(files):
            stat = context.store.object_stat(digest)
            if stat is not None and stat[0] >= read_runs:
                # A run produced it again since its record went (a miss, now that its cache entry is
                # gone, whose write adopted the file): it is that run's, recorded by it.
                continue
            _delete(context, digest, done, len(files), "gc")
        context.store.sweep_temp()
    return result
