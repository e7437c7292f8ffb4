"""``orch cache ls | du | verify | gc`` and ``orch doctor``: the store's objects, checked and cleaned.

Registered on the ``orch`` group by ``cli``.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import click

from orchestrator.cli_common import EXIT_FAILED, echo, emit_json, open_context, plural
from orchestrator.cli_usage import OrderedGroup
from orchestrator.errors import OrchestratorError

if TYPE_CHECKING:
    from orchestrator.context import Context


@click.group(cls=OrderedGroup)
def cache() -> None:
    """Inspect, verify and clean the artifact store."""


@cache.command("ls")
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON array of {hash, size, type, path, materializer}.")
@click.pass_context
def cache_ls(ctx: click.Context, as_json: bool) -> None:
    """List stored artifacts."""
    context = open_context(ctx.parent)  # type: ignore[arg-type]
    from orchestrator.maintenance import recorded_artifacts

    rows = []
    for r in recorded_artifacts(context).values():
        stored = r["inline"] is not None
        rows.append({"hash": r["digest"], "size": r["size"], "type": r["type"],
                     "path": None if stored else context.store.url_of(r["digest"]),
                     "materializer": r["materializer"]})
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        echo(f"{r['hash']}  {r['size']:>12}  {r['type']:<24} {r['path'] or '(inline in metadata.db)'}")
    echo(plural(len(rows), "artifact"), err=True)


@cache.command("du")
@click.option("--by", "by", type=click.Choice(["pipeline", "step", "run"]), default="pipeline", show_default=True,
              help="Sum the object files by the pipeline, the step (of a pipeline) or the run that first wrote each.")
@click.option("--json", "as_json", is_flag=True,
              help="Print {by, groups: [{pipeline, objects, bytes, ...}], objects, bytes, metadata_bytes, "
                   "inline_objects, inline_bytes, request_log_bytes, reports_bytes} "
                   "(a group of --by step adds step; of --by run, run, status and started).")
@click.pass_context
def cache_du(ctx: click.Context, by: str, as_json: bool) -> None:
    """Show what takes the store's space: its objects' size by pipeline, step or run, largest first."""
    from orchestrator.disk_use import disk_use

    context = open_context(ctx.parent)  # type: ignore[arg-type]
    use = disk_use(context, by)
    if as_json:
        emit_json({"by": use.by, "groups": [{**g.fields, "objects": g.objects, "bytes": g.bytes} for g in use.groups],
                   "objects": use.objects, "bytes": use.bytes, "metadata_bytes": use.metadata_bytes,
                   "inline_objects": use.inline_objects, "inline_bytes": use.inline_bytes,
                   "request_log_bytes": use.request_log_bytes, "reports_bytes": use.reports_bytes})
        return
    if use.groups:
        names = list(use.groups[0].fields)
        table = [[_du_cell(name, g.fields[name]) for name in names] + [str(g.objects), _size(g.bytes)]
                 for g in use.groups]
        header = names + ["objects", "size"]
        widths = [max(len(row[i]) for row in [header, *table]) for i in range(len(header))]
        for row in [header, *table]:
            left = [cell.ljust(width) for cell, width in zip(row[:-2], widths)]
            right = [cell.rjust(width) for cell, width in zip(row[-2:], widths[-2:])]
            echo("  ".join(left + right).rstrip())
    besides = "".join(f"; {what} {_size(n)}" for what, n in (("request logs (serving/)", use.request_log_bytes),
                                                             ("drift reports (reports/)", use.reports_bytes)) if n)
    inline = (f" (with {plural(use.inline_objects, 'value')} of 4 KB or less, {_size(use.inline_bytes)}, "
              "that orch cache ls lists)") if use.inline_objects else ""
    echo(f"{plural(use.objects, 'object')}, {_size(use.bytes)}; metadata.db {_size(use.metadata_bytes)}"
               f"{inline}{besides}. What gc would remove: orch cache gc --keep-last N --dry-run", err=True)


def _du_cell(name: str, value: object) -> str:
    if value is None:
        return ""
    if name == "started":
        import time

        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(value)))  # type: ignore[arg-type]
    return str(value)


def _size(n: int) -> str:
    """A size as du -h shows it, in decimal units: what du counts and what gc frees (26.2 kB, not 0.0 MB)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


@cache.command("verify")
@click.option("--repair", is_flag=True, help="Remove damaged artifacts so that the next run recomputes them.")
@click.option("--json", "as_json", is_flag=True, help="Print {checked, damaged: [...], repaired, signatures_checked} as JSON.")
@click.pass_context
def cache_verify(ctx: click.Context, repair: bool, as_json: bool) -> None:
    """Re-check every stored object (checksum, signature); exit 1 if any is damaged and not repaired."""
    from orchestrator import signing
    from orchestrator.maintenance import repair_store, signed_artifact_count, upkeep, verify_store

    context = open_context(ctx.parent)  # type: ignore[arg-type]
    # With no key here, every signature would fail: that is no damage (a copied store, a new
    # account), and --repair would remove every pickled artifact. Checksums are checked alone.
    keyed = signing.has_key()
    kept: set[str] = set()
    with upkeep(context, exclusive=repair):
        checked, found = verify_store(context, signatures=keyed)
        if repair and found:
            kept = repair_store(context, found)
        unchecked = 0 if keyed else signed_artifact_count(context)
    if unchecked:
        echo(f"warning: the signatures of {plural(unchecked, 'pickled artifact')} were not checked: no "
                   f"signing key here ({signing.key_source()}). Set {signing.KEY_ENV} to the key that signed "
                   "them to check them (see docs/security.md).", err=True)
    damaged = [{"hash": d.digest, "problem": d.problem} for d in found]
    if as_json:
        emit_json({"checked": checked, "damaged": damaged, "repaired": repair and bool(found),
                   "signatures_checked": not unchecked})
    else:
        for d in damaged:
            if d["hash"] in kept:  # the file is sound and another database's: only this one's record went
                echo(f"removed this database's record of {d['hash']} ({d['problem']}); its object stays: "
                     "another database sharing the store uses it")
            else:
                echo(f"{'removed' if repair else 'damaged'} {d['hash']}: {d['problem']}")
        them = "it" if len(damaged) == 1 else "them"
        tail = f"; the next run recomputes {them}" if repair and damaged else \
            f": `orch cache verify --repair` removes {them}, and the next run recomputes {them}" if damaged else ""
        echo(f"{plural(checked, 'object')} checked, {len(damaged)} damaged{tail}", err=True)
    if damaged and not repair:
        sys.exit(EXIT_FAILED)


@cache.command("gc")
@click.option("--keep-last", type=click.IntRange(min=0), default=None, metavar="N",
              help="Keep the artifacts of each pipeline's last N succeeded runs and of every run of it "
                   "since (default: of every run).")
@click.option("--dry-run", is_flag=True, help="List each artifact that would be removed, and remove nothing.")
@click.option("--force", is_flag=True,
              help="Remove objects even when the metadata database records no runs at all (it was lost or "
                   "reset?), which deletes every object, or when other metadata databases share the store "
                   "(their objects look unused from this one).")
@click.pass_context
def cache_gc(ctx: click.Context, keep_last: int | None, dry_run: bool, force: bool) -> None:
    """Remove stored objects that no kept run references and no registered model version uses.

    Also folds the small segments of each served model's request log (one per request, as `orch
    serve` wrote them before it batched them) into segments of up to 10,000 requests.
    """
    from orchestrator.maintenance import collect_garbage

    context = open_context(ctx.parent)  # type: ignore[arg-type]
    result = collect_garbage(context, keep_last, dry_run, force=force)
    if dry_run:  # which ones, as `orch cache ls` shows them, so each can be looked up before it goes
        rows = {r["digest"]: r for r in context.lineage.artifact_rows()}
        for digest in result.removed:
            row = rows.get(digest)
            echo(f"{digest}  {row['size']:>12}  {row['type']}" if row else f"{digest}  (an orphan: no record)")
    verb = "would remove" if dry_run else "removed"
    spared = f"; spared {result.spared_recent} written during a running run" if result.spared_recent else ""
    # A small value lives in metadata.db: removing its record frees no file (`(0 B)` read as nothing removed).
    inline = f", {result.records_only} of them values held in metadata.db" if result.records_only else ""
    echo(f"{verb} {plural(len(result.removed), 'artifact')} ({_size(result.freed_bytes)}{inline}); "
               f"kept those of {plural(result.kept_runs, 'run')}{spared}")
    _compact_request_logs(context, dry_run)


def _compact_request_logs(context: Context, dry_run: bool) -> None:
    """Fold the small segments of each model's request log (one per request, before batching) into few."""
    from orchestrator.request_compaction import compact_segments, small_segments

    names = [row[0] for row in context.lineage.conn.execute("SELECT DISTINCT name FROM request_segments")]
    for name in names:
        try:
            folded, written = (small_segments(context, name), 0) if dry_run else compact_segments(context, name)
        except (OSError, OrchestratorError) as exc:  # a full disk: the space gc freed stands, and so does the log
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0]
            echo(f"the request log of {name} was not folded ({reason}); it reads as before, and the next "
                       "`orch cache gc` folds it", err=True)
            continue
        if folded:
            echo(f"would fold {folded} small request-log segments of {name}" if dry_run else
                       f"folded {folded} small request-log segments of {name} into {written}")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print {checked, findings: [...], store, metadata, store_source} as JSON.")
@click.pass_context
def doctor(ctx: click.Context, as_json: bool) -> None:
    """Check the store and say which command fixes each problem; exit 1 if any is found."""
    from orchestrator.doctor import examine

    context = open_context(ctx, damaged_ok=True)
    checkup = examine(context)
    where = _store_description(context)
    if as_json:
        emit_json({"checked": checkup.checked_objects, "findings": [
            {"check": f.check, "problem": f.problem, "fix": f.fix} for f in checkup.findings],
            "store": where["store"], "metadata": where["metadata"], "store_source": where["source"]})
    else:
        # Which store, and why: run from a subfolder, ./cache would be another store than the project's.
        source = where["source"] or ""
        echo(f"store {where['store']} ({source if source.startswith('the default') else 'from ' + source})",
                   err=True)
        for f in checkup.findings:
            echo(f"{f.check}: {f.problem}\n  fix: {f.fix}")
        count = len(checkup.findings)
        verdict = "healthy" if checkup.healthy else f"has {count} problem{'s' if count != 1 else ''}"
        objects = checkup.checked_objects
        echo(f"{objects} object{'s' if objects != 1 else ''} checked; store {verdict}", err=True)
    if not checkup.healthy:
        sys.exit(EXIT_FAILED)


def _store_description(context: Context) -> dict[str, str | None]:
    """The store and metadata database a command opened, as absolute paths, and why that store."""
    from orchestrator.remote_store import is_url

    location = context.location
    store = location if is_url(location) else os.path.abspath(location)
    database = os.path.abspath(context.lineage.path)
    return {"store": store, "metadata": database, "source": context.source or "the default ./cache"}
