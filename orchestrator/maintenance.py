"""Store upkeep: verifying every object and removing what no kept run references.

Both work on a ``runner.Context`` (store plus metadata database) and return
plain results for the CLI to print. Garbage collection never removes what a
run still in progress may need: objects and rows created since the oldest
running run started are kept, since a worker may have written them before
the run recorded them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestrator.context import Context


@dataclass
class Damage:
    digest: str
    problem: str


@dataclass
class GcResult:
    removed: list[str] = field(default_factory=list)
    freed_bytes: int = 0
    kept_runs: int = 0
    spared_recent: int = 0


def verify_store(context: Context) -> tuple[int, list[Damage]]:
    """Check every object (recorded or merely present) against its checksum.

    Returns:
        How many objects were checked, and the damaged ones with a reason each.
    """
    recorded = {r["digest"]: r for r in context.lineage.artifact_rows() if r["inline"] is None}
    on_disk = set(context.store.iter_objects())
    damaged = []
    for digest in sorted(set(recorded) | on_disk):
        if digest not in on_disk:
            damaged.append(Damage(digest, "missing from the store"))
            continue
        problem = context.store.verify(digest)
        recorded_sum = recorded[digest]["checksum"] if digest in recorded else None
        if problem is None and recorded_sum and context.store.read_header(digest).checksum != recorded_sum:
            problem = "checksum differs from the one recorded"
        if problem is not None:
            damaged.append(Damage(digest, problem))
    return len(set(recorded) | on_disk), damaged


def collect_garbage(context: Context, keep_last: int | None = None, dry_run: bool = False) -> GcResult:
    """Remove artifacts that no kept run references.

    Args:
        keep_last: keep the artifacts of the N most recent runs only (default: of every run).
        dry_run: only report what would be removed.
    """
    runs = context.lineage.runs()
    running = [r for r in runs if r["status"] == "running"]
    kept = {r["run_id"] for r in running}
    kept |= {r["run_id"] for r in (runs if keep_last is None else runs[:keep_last])}
    referenced = context.lineage.referenced_digests(kept)
    # A running run may have objects whose rows are not committed yet: spare anything newer.
    cutoff = min((r["started"] for r in running), default=None)
    rows = {r["digest"]: r for r in context.lineage.artifact_rows()}
    result = GcResult(kept_runs=len(kept))
    for digest in sorted((set(context.store.iter_objects()) | set(rows)) - referenced):
        path = context.store.path_of(digest)
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            stat = None
        created = stat.st_mtime if stat else (rows[digest]["created"] if digest in rows else 0)
        if cutoff is not None and created >= cutoff - 1:
            result.spared_recent += 1
            continue
        result.removed.append(digest)
        result.freed_bytes += stat.st_size if stat else 0
        if not dry_run and stat is not None:
            context.store.delete(digest)
    if not dry_run:
        context.lineage.delete_artifacts(result.removed)
        context.store.sweep_temp()
    return result
