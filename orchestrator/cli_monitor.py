"""``orch monitor NAME``: check a batch or the served request log for drift, or show the history.

Prints the verdict, the drifted columns and where the reports are. Exit
codes: 0 no alert, 1 an alert (the word ``alert`` is printed), 2 a user's
mistake. This CLI process writes the drift history directly (only ``orch``
processes write the metadata database). Must not be imported by the rest of
the package except ``cli``.
"""

from __future__ import annotations

import json
import sys
import time

import click

EXIT_ALERT = 1


@click.command("monitor")
@click.argument("ref", metavar="NAME[@VERSION|@production]")
@click.option("--batch", type=click.Path(dir_okay=False), default=None,
              help="A .csv or .parquet batch to compare (default: the served request log).")
@click.option("--last", type=click.IntRange(min=1), default=5000, show_default=True,
              help="How many of the latest served requests to compare.")
@click.option("--history", is_flag=True, help="Show the drift history instead of running a check.")
@click.option("--psi", type=float, default=None, help="PSI at which a column drifts (default 0.2).")
@click.option("--p-value", "p_value", type=float, default=None, help="Test p-value below which a column drifts "
              "(Bonferroni-corrected over columns; default 0.01).")
@click.option("--drop", type=float, default=None, help="Metric drop that raises an alert (default 0.05).")
@click.option("--json", "as_json", is_flag=True, help="Print the result (or history) as JSON.")
@click.pass_context
def monitor(ctx: click.Context, ref: str, batch: str | None, last: int, history: bool, psi: float | None,
            p_value: float | None, drop: float | None, as_json: bool) -> None:
    """Compare a batch or the served requests with the training reference; exit 1 on an alert."""
    from dataclasses import replace

    from orchestrator.context import Context
    from orchestrator.drift import Thresholds
    from orchestrator.monitor import check_model, history_rows, read_table, record_check
    from orchestrator.registry import Registry

    obj = ctx.find_root().obj
    context = Context.open(obj["store"], obj["metadata"], create=False)  # reads a store; never makes one
    name = ref.partition("@")[0]
    Registry(context.lineage)._check_model(name)
    if history:
        rows = history_rows(context, name)
        if as_json:
            click.echo(json.dumps(rows, indent=2, default=str))
        elif not rows:
            click.echo(f"no drift checks of {name} yet. Run `orch monitor {name} --batch FILE`.")
        for r in rows if not as_json else []:
            s = r["summary"]
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["at"]))
            drifted = ", ".join(s.get("drifted") or []) or "-"
            click.echo(f"{when}  v{r['version']}  {'alert' if r['alert'] else r['status']:<17}  "
                       f"{s.get('rows_current', 0):>6} rows  drifted: {drifted}  ({r['source']})")
        if rows and rows[-1]["alert"]:
            click.echo(f"alert: the latest check of {name} raised an alert", err=True)
            sys.exit(EXIT_ALERT)
        return
    thresholds = Thresholds()
    if psi is not None:
        thresholds = replace(thresholds, psi=psi)
    if p_value is not None:
        thresholds = replace(thresholds, p_value=p_value)
    if drop is not None:
        thresholds = replace(thresholds, performance_drop=drop)
    frame = read_table(batch) if batch else None
    row, result, source = check_model(context, ref, frame, thresholds, last=last)
    source = f"batch {batch}" if batch else source
    json_path, html_path = record_check(context, row["name"], int(row["version"]), result, source)
    if as_json:
        click.echo(json.dumps({"model": row["name"], "version": row["version"], "source": source,
                               "status": result.status, "alert": result.alert, "reasons": result.reasons,
                               "drifted": result.drifted, "report_json": str(json_path),
                               "report_html": str(html_path)}, indent=2, default=str))
    else:
        click.echo(f"{row['name']} v{row['version']}: {source}, {result.rows_current} rows: "
                   + ("alert" if result.alert else result.status))
        for reason in result.reasons:
            click.echo(f"  {reason}")
        for f in result.features:
            if f.status != "ok":
                click.echo(f"  {f.name}: {f.status} {f.detail}")
        click.echo(f"  report: {html_path}\n  json:   {json_path}")
    if result.alert:
        click.echo(f"alert: drift detected for {row['name']} v{row['version']} (see {html_path})", err=True)
        sys.exit(EXIT_ALERT)
