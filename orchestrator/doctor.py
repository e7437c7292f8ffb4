"""``orch doctor``: check a store and say, for each problem found, which command fixes it.

Checks the metadata database (``PRAGMA integrity_check``, and that every
JSON value in it decodes to its kind), every object
(checksum, and the signature of pickled ones), rows whose object is gone,
objects no row records (orphans of a process that died between writing an
object and recording it, or of a metadata database that was lost or reset;
not in a store other metadata databases share, where they are theirs),
temporary files of dead writers, and whether a signing key is configured (when
the store records signed artifacts: the first run that stores one creates it).
When the database is damaged, it still checks what needs none (objects,
temporary files, the key). It reads only: fixing is left to the commands it
names, so that nothing is removed without the user asking.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from orchestrator import signing, store_users
from orchestrator.errors import DamagedDatabaseError
from orchestrator.lineage_schema import JSON_COLUMNS
from orchestrator.maintenance import signed_artifact_count, upkeep, verify_store
from orchestrator.remote_store import FsspecStore

if TYPE_CHECKING:
    from orchestrator.context import Context

# Damaged JSON values listed one by one per column; past that, counted.
_SHOWN_PER_COLUMN = 10


@dataclass(frozen=True)
class Finding:
    """One problem: what is wrong, and the command (or action) that fixes it."""

    check: str
    problem: str
    fix: str


@dataclass
class Checkup:
    """What ``orch doctor`` found."""

    checked_objects: int
    findings: list[Finding]

    @property
    def healthy(self) -> bool:
        return not self.findings


def _model_findings(context: Context, rows: set[str], damaged: dict[str, str]) -> list[Finding]:
    """Registered model versions whose artifact is gone or damaged: they can no longer be served."""
    found = []
    versions = context.lineage.conn.execute(
        "SELECT v.name, v.version, v.digest, v.run_id, r.file, m.production FROM model_versions v "
        "JOIN models m ON m.name = v.name LEFT JOIN runs r ON r.run_id = v.run_id ORDER BY v.name, v.version"
    ).fetchall()
    for name, version, digest, run_id, file, production in versions:
        problem = damaged.get(digest) or (None if digest in rows else "missing from the store")
        if problem is None:
            continue
        stage = " (production)" if production == version else ""
        # With that run's parameters: the pipeline's defaults may make another model (another name).
        rerun = f"re-run the run that made it (`orch run {file} --params-from {run_id}`)" if file \
            else f"re-run the pipeline that made it, with the parameters of run {run_id}"
        state = problem if problem == "missing from the store" else f"damaged ({problem})"
        found.append(Finding("model", f"{name}@{version}{stage}: its artifact {digest} is {state}; it cannot be "
                             "loaded or served", f"{rerun}: the same model is registered again under "
                             f"v{version}; or `orch models promote {name}@VERSION` another version"))
    return found


def examine(context: Context) -> Checkup:
    """Run every check on the store of ``context``.

    A damaged metadata database is reported, and the objects are still checked
    on their own (their checksums): they are what re-running the pipelines re-adopts.
    """
    findings: list[Finding] = []
    try:
        integrity = context.lineage.integrity_check()
    except DamagedDatabaseError as exc:
        return _examine_objects(context, Finding("database", exc.problem, exc.fix))
    if integrity != "ok":
        damage = DamagedDatabaseError(context.lineage.path, f"PRAGMA integrity_check: {integrity}")
        return _examine_objects(context, Finding("database", damage.problem, damage.fix))
    # A store that records no signed artifact needs no key yet: the first run that stores one
    # creates it. Only signed artifacts this process cannot verify make a missing key a problem.
    pickled = signed_artifact_count(context)
    key_ok = _signing_key_finding(findings, pickled) if pickled else signing.has_key()
    with upkeep(context, exclusive=False):  # not half-way through a gc in another terminal
        checked, damaged = verify_store(context, signatures=key_ok)
        rows = {r["digest"] for r in context.lineage.artifact_rows()}
    for d in damaged:
        check = "dangling row" if d.problem == "missing from the store" else "object"
        findings.append(Finding(check, f"artifact {d.digest}: {d.problem}", "orch cache verify --repair"))
    damaged_digests = {d.digest for d in damaged}
    # Statuses only: a run whose JSON values are damaged is reported below, not decoded here.
    runs = [status for (status,) in context.lineage.conn.execute("SELECT status FROM runs")]
    running = "running" in runs
    orphans = [d for d in context.store.iter_objects() if d not in rows and d not in damaged_digests]
    if orphans and store_users.other_databases(context.store, context.lineage.path):
        pass  # a shared store: objects this database does not record are, as a rule, another's
    elif orphans and not runs:
        # An emptied or recreated metadata.db, not a crash between writing and recording:
        # gc would delete every object that re-running the pipelines could re-adopt.
        findings.append(Finding(
            "orphans", f"the metadata database {context.lineage.path} records no runs, yet {len(orphans)} "
            "object(s) exist (metadata.db lost or reset?)",
            "re-run your pipelines: each run re-adopts the objects it produces once verified. Do not run "
            "`orch cache gc`: it would delete them all (it refuses without --force)"))
    elif orphans and not running:
        findings.append(Finding(
            "orphans", f"{len(orphans)} object(s) recorded by no row (a process died before recording them), "
            f"e.g. {orphans[0]}", "orch cache gc (or re-run the pipeline, which adopts them once verified)"))
    findings.extend(_model_findings(context, rows, {d.digest: d.problem for d in damaged}))
    findings.extend(_value_findings(context))
    findings.extend(_temp_findings(context, "orch cache gc"))
    return Checkup(checked, findings)


def _value_findings(context: Context) -> list[Finding]:
    """JSON values that do not decode to their kind: each stops the commands that read it (exit 2).

    ``artifacts.meta`` is left to the object check, whose fix (``orch cache verify
    --repair``) drops the row so that the next run recomputes the artifact.
    """
    found = []
    shown: dict[tuple[str, str], int] = {}
    path = context.lineage.path
    columns = [c for c in JSON_COLUMNS if c != ("artifacts", "meta")]
    for v in context.lineage.damaged_values(columns):
        count = shown[(v.table, v.column)] = shown.get((v.table, v.column), 0) + 1
        if count > _SHOWN_PER_COLUMN:
            continue
        if v.table == "cache":
            command, effect = f"DELETE FROM cache WHERE {v.where}", "the step runs again the next time"
        else:
            command = f"UPDATE {v.table} SET {v.column} = NULL WHERE {v.where}"
            effect = "this value is dropped, the rest of the record stays"
        found.append(Finding("damaged value", f"{v.table}.{v.column} where {v.where}: {v.detail}",
                             f'sqlite3 {path} "{command}" ({effect}); or restore {path.name} from a backup copy'))
    for (table, column), count in shown.items():
        if count > _SHOWN_PER_COLUMN:
            found.append(Finding("damaged value", f"{count - _SHOWN_PER_COLUMN} more damaged value(s) in "
                                 f"{table}.{column}", f"restore {path.name} from a backup copy, or clear "
                                 "each value as above"))
    return found


def _examine_objects(context: Context, database: Finding) -> Checkup:
    """The checks that need no database, for a store whose database cannot be trusted."""
    findings = [database]
    _signing_key_finding(findings, None)
    objects = list(context.store.iter_objects())
    for digest in objects:
        problem = context.store.verify(digest)
        if problem is not None:
            findings.append(Finding("object", f"artifact {digest}: {problem}",
                                    "nothing more once the database is fixed: re-running the pipeline that made "
                                    "it replaces a damaged object instead of adopting it"))
    findings.extend(_temp_findings(context, "orch cache gc, once the database is fixed"))
    return Checkup(len(objects), findings)


def _signing_key_finding(findings: list[Finding], pickled: int | None) -> bool:
    """Add a finding when no signing key is configured; return whether one is.

    ``pickled`` is how many pickled artifacts the database records (None when it cannot be read).
    """
    if signing.has_key():
        return True
    what = "the pickled artifacts" if pickled is None else f"the {pickled} pickled artifact(s) this store records"
    findings.append(Finding(
        "signing key", f"no signing key ({signing.key_source()}): {what} cannot be verified, so a run "
        "would recompute them rather than unpickle them",
        f"set {signing.KEY_ENV} to the key that signed them (your team's key, or this account's key file "
        "restored); otherwise the next run creates a key of its own and recomputes them"))
    return False


def _temp_findings(context: Context, fix: str) -> list[Finding]:
    """Temp files of dead writers, named where they are: the store's ``tmp/``, and for a store URL
    also the local staging folder its objects are encoded in before the upload."""
    store = context.store
    places = [(len(store.dead_temp_files()), str(store.root / "tmp"))]
    if isinstance(store, FsspecStore):
        places.append((len(store.dead_remote_temp()), f"{store.location}/tmp"))
    found = [f"{count} under {where}" for count, where in places if count]
    if not found:
        return []
    return [Finding("temp files", f"temporary file(s) left by dead writers: {', '.join(found)}", fix)]
