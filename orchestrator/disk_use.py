"""What takes the store's space: object files summed by the pipeline, step or run that wrote them.

``orch cache du`` answers "what takes the space, and what can I delete?" as ``du`` and DVC's
``dvc du`` answer it for a folder: each object file counts once, for the step run that first
produced it (a cached step reuses what an earlier run wrote and adds nothing; a re-run that
produced the same object again does not count it twice), so the groups add up to the total.
Objects that no record names (orphans; in a store other metadata databases share, as a rule
theirs; written since a running run began, as a rule its own, not recorded yet) and objects
whose producing step is not recorded have groups of their own. Values kept inline in ``metadata.db`` are that file's size, said apart (how many and their size: "0 objects" alone would contradict ``orch cache ls``), as
are the request logs of ``orch serve`` and the drift reports of ``orch monitor``, which months of
serving grow as much as runs do.

It only reads: it never removes anything, nor takes the upkeep lock (a gc meanwhile makes
objects it lists vanish, which it counts as gone, not as an error).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator import store_users

if TYPE_CHECKING:
    from orchestrator.context import Context

GROUPINGS = ("pipeline", "step", "run")
ORPHANS = "(orphans: no record)"
# In a store other metadata databases share, what this one does not record is, as a rule, theirs.
OTHERS = "(not recorded here: other databases share the store)"
UNKNOWN = "(no step recorded)"
# An object written since a running run began may be its own, stored before its row is committed.
WRITING = "(not recorded yet: a running run's?)"


@dataclass
class Group:
    """The objects one pipeline, step or run wrote, and their size on disk."""

    fields: dict[str, Any]
    objects: int = 0
    bytes: int = 0


@dataclass
class DiskUse:
    by: str
    groups: list[Group] = field(default_factory=list)  # largest first
    objects: int = 0
    bytes: int = 0
    metadata_bytes: int = 0
    inline_objects: int = 0  # values of 4 KB or less, kept in metadata.db (its size counts them) instead of a file
    inline_bytes: int = 0
    request_log_bytes: int = 0  # serving/: what `orch serve` logged, which `orch monitor` reads
    reports_bytes: int = 0  # reports/: the drift reports of `orch monitor`


def disk_use(context: Context, by: str = "pipeline") -> DiskUse:
    """Sum the store's object files by the ``by`` ("pipeline", "step" or "run") that first wrote each."""
    if by not in GROUPINGS:
        raise ValueError(f"by must be one of {', '.join(GROUPINGS)}, not {by!r}")
    producers = _first_producers(context)
    recorded = {r["digest"] for r in context.lineage.rows("SELECT digest FROM artifacts WHERE inline IS NULL")}
    unrecorded = ORPHANS
    if store_users.other_databases(context.store, Path(context.lineage.path)):
        unrecorded = OTHERS
    # As gc spares them: written since the oldest running run started (1 s for file time granularity).
    cutoff = min((r["started"] for r in context.lineage.runs(statuses=("running",))), default=None)
    groups: dict[tuple[Any, ...], Group] = {}
    root = Path(context.root)
    result = DiskUse(by=by, metadata_bytes=_database_bytes(context.lineage.path),
                     request_log_bytes=_folder_bytes(root / "serving"), reports_bytes=_folder_bytes(root / "reports"))
    # Said beside the files: a store of small values has no object file, and "0 objects" alone
    # contradicts orch cache ls, verify and doctor, which count these too.
    inline = context.lineage.rows("SELECT COUNT(*) AS n, COALESCE(SUM(LENGTH(inline)), 0) AS bytes "
                                  "FROM artifacts WHERE inline IS NOT NULL")[0]
    result.inline_objects, result.inline_bytes = int(inline["n"]), int(inline["bytes"])
    for digest in context.store.iter_objects():
        stat = context.store.object_stat(digest)
        if stat is None:  # removed since it was listed (a gc in another terminal)
            continue
        producer = producers.get(digest)
        if producer is not None:
            fields = _fields(producer, by)
        else:
            label = UNKNOWN if digest in recorded else unrecorded
            if label == ORPHANS and cutoff is not None and stat[0] >= cutoff - 1:
                label = WRITING
            fields = {name: (label if i == 0 else None) for i, name in enumerate(_columns(by))}
        group = groups.setdefault(tuple(fields.values()), Group(fields))
        group.objects += 1
        group.bytes += stat[1]
        result.objects += 1
        result.bytes += stat[1]
    result.groups = sorted(groups.values(), key=lambda g: (-g.bytes, str(list(g.fields.values()))))
    return result


def _columns(by: str) -> tuple[str, ...]:
    return {"pipeline": ("pipeline",), "step": ("pipeline", "step"),
            "run": ("run", "pipeline", "status", "started")}[by]


def _fields(producer: dict[str, Any], by: str) -> dict[str, Any]:
    if by == "pipeline":
        return {"pipeline": producer["pipeline"]}
    if by == "step":
        return {"pipeline": producer["pipeline"], "step": producer["step"]}
    return {"run": producer["run_id"], "pipeline": producer["pipeline"], "status": producer["status"],
            "started": producer["started"]}


def _first_producers(context: Context) -> dict[str, dict[str, Any]]:
    """For each digest a step output, the earliest step run that output it (one statement).

    Earliest by run, then within a run by the step's place in it (its row's position, then
    when it ended): a step that returns its input unchanged outputs the object of the step
    before it, which made it, and ordering by run alone credited whichever the database
    listed last. A step without a row of its own comes last in its run.
    """
    rows = context.lineage.rows(
        "SELECT e.digest, e.run_id, COALESCE(s.step, e.node) AS step, r.pipeline, r.status, r.started "
        "FROM edges e JOIN runs r ON r.run_id = e.run_id "
        "LEFT JOIN steps s ON s.run_id = e.run_id AND s.node = e.node "
        "WHERE e.direction = 'out' "
        "ORDER BY r.started, s.position IS NULL, s.position, s.ended IS NULL, s.ended")
    first: dict[str, dict[str, Any]] = {}
    for row in rows:  # oldest first: the first producer of a digest is kept
        first.setdefault(row["digest"], row)
    return first


def _folder_bytes(folder: Path) -> int:
    """The size of the files under ``folder`` (0 if there is none); a file removed meanwhile counts nothing."""
    total = 0
    for base, _, names in os.walk(folder):
        for name in names:
            try:
                total += os.lstat(os.path.join(base, name)).st_size
            except OSError:
                continue
    return total


def _database_bytes(path: str | os.PathLike[str]) -> int:
    """The metadata database's size with its write-ahead log (a memory database has none)."""
    total = 0
    for name in (os.fspath(path), f"{os.fspath(path)}-wal"):
        try:
            total += os.path.getsize(name)
        except OSError:
            continue
    return total
