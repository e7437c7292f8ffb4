"""``orch doctor``: check a store and say, for each problem found, which command fixes it.

Checks the metadata database (``PRAGMA integrity_check``), every object
(checksum, and the signature of pickled ones), rows whose object is gone,
objects no row records (orphans of a process that died between writing an
object and recording it), temporary files of dead writers, and whether a
signing key is configured. It reads only: fixing is left to the commands it
names, so that nothing is removed without the user asking.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from orchestrator import signing
from orchestrator.maintenance import verify_store

if TYPE_CHECKING:
    from orchestrator.context import Context


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
        rerun = f"re-run the pipeline that made it (`orch run {file}`, run {run_id})" if file \
            else "re-run the pipeline that made it"
        found.append(Finding("model", f"{name}@{version}{stage}: its artifact {digest} is {problem}; it cannot be "
                             "loaded or served", f"{rerun}: the same model is registered again under "
                             f"v{version}; or `orch models promote {name}@VERSION` another version"))
    return found


def examine(context: Context) -> Checkup:
    """Run every check on the store of ``context``."""
    findings: list[Finding] = []
    integrity = context.lineage.integrity_check()
    if integrity != "ok":
        findings.append(Finding(
            "database", f"{context.lineage.path} fails PRAGMA integrity_check: {integrity}",
            f"move {context.lineage.path} aside (results are recomputed) or restore it from a backup"))
    key_ok = signing.has_key()
    if not key_ok:
        findings.append(Finding(
            "signing key", f"no signing key ({signing.key_source()}): pickled artifacts cannot be verified "
            "and would be recomputed",
            f"set {signing.KEY_ENV} to your team's key, or run `orch run` once to create one"))
    checked, damaged = verify_store(context, signatures=key_ok)
    rows = {r["digest"] for r in context.lineage.artifact_rows()}
    for d in damaged:
        check = "dangling row" if d.problem == "missing from the store" else "object"
        findings.append(Finding(check, f"artifact {d.digest}: {d.problem}", "orch cache verify --repair"))
    damaged_digests = {d.digest for d in damaged}
    running = any(r["status"] == "running" for r in context.lineage.runs())
    orphans = [d for d in context.store.iter_objects() if d not in rows and d not in damaged_digests]
    if orphans and not running:
        findings.append(Finding(
            "orphans", f"{len(orphans)} object(s) recorded by no row (a process died before recording them), "
            f"e.g. {orphans[0]}", "orch cache gc (or re-run the pipeline, which adopts them once verified)"))
    findings.extend(_model_findings(context, rows, {d.digest: d.problem for d in damaged}))
    stale = len(context.store.dead_temp_files())
    if stale:
        findings.append(Finding("temp files", f"{stale} temporary file(s) left by dead writers under "
                                f"{context.root / 'tmp'}", "orch cache gc"))
    return Checkup(checked, findings)
