"""``orch monitor NAME``: check a batch or the served request log for drift, or show the history.

Prints the verdict, the drifted columns and where the reports are. Exit
codes: 0 no alert, 1 an alert (the word ``alert`` is printed), 2 a user's
mistake. This CLI process writes the drift history directly (only ``orch``
processes write the metadata database). Must not be imported by the rest of
the package except ``cli``.
"""

from __future__ import annotations

import json
import math
import sys
import time
from typing import TYPE_CHECKING, Any

import click

from orchestrator.cli_common import Since, close_with_command, echo

if TYPE_CHECKING:
    from orchestrator.drift import DriftResult

EXIT_ALERT = 1


class _FiniteRange(click.FloatRange):
    """A float range that also refuses nan and inf (a nan threshold would switch the check off)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


_POSITIVE = _FiniteRange(min=0, min_open=True)
@click.command("monitor")
@click.argument("ref", metavar="NAME[@VERSION|@production]")
@click.option("--batch", type=click.Path(dir_okay=False), default=None,
              help="A .csv (also .csv.gz) or .parquet batch to compare (default: the requests served by the version).")
@click.option("--labels", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="A .csv or .parquet of outcomes known since (the key and label columns, named as at "
              "training): joined by key to the served requests to measure live performance (not with --batch).")
@click.option("--last", type=click.IntRange(min=1), default=5000, show_default=True,
              help="How many of the version's latest served requests to compare (not with --batch).")
@click.option("--since", type=Since(), default=None, metavar="WHEN",
              help="Only the requests served since WHEN: a time ago (30m, 2h, 7d) or a local date and time "
              "(2026-11-27, 2026-11-27T10:00); --last still caps them (not with --batch).")
@click.option("--history", is_flag=True, help="Show the drift history instead of running a check "
              "(of every version, or of @VERSION only).")
@click.option("--psi", type=_POSITIVE, default=None, help="PSI at which a column drifts, > 0 (default 0.2).")
@click.option("--p-value", "p_value", type=_FiniteRange(min=0, max=1, min_open=True, max_open=True),
              default=None, help="Test p-value below which a column drifts, between 0 and 1 "
              "(Bonferroni-corrected over columns; default 0.01); a metric's drop must also be this "
              "unlikely by chance.")
@click.option("--drop", type=_POSITIVE, default=None, help="Metric drop that raises an alert, > 0 (default 0.05; for rmse/mae a fraction of the "
              "training error), when --p-value says it is not chance.")
@click.option("--min-labels", "min_labels", type=click.IntRange(min=1), default=None,
              help="Fewest labelled rows a metric alert needs (default 100 when the model kept held-out "
              "rows to test the drop against, else 1000).")
@click.option("--json", "as_json", is_flag=True, help="Print the result (or history) as JSON.")
@click.pass_context
def monitor(ctx: click.Context, ref: str, batch: str | None, labels: str | None, last: int, since: float | None, history: bool,
            psi: float | None, p_value: float | None, drop: float | None, min_labels: int | None,
            as_json: bool) -> None:
    """Compare a batch or the served requests with the training reference; exit 1 on an alert.

    NAME alone is the production version; NAME@VERSION (or @latest) another
    one. Without --batch, the check reads the requests that `orch serve`
    logged for that version only: after a promotion, `orch monitor NAME`
    follows the new production version, and NAME@VERSION checks an older one.
    --since keeps the requests answered since then (each by its own time).
    --labels FILE joins those requests, by the version's key column, to
    outcomes that arrived later, and checks the gate metric on the matched
    rows as a labelled --batch would.
    A batch or window of fewer than 30 rows, or one that lacks feature
    columns, gives insufficient_data (exit 0) and says why. Exit codes: 0 no
    alert, 1 an alert, 2 a mistake (a bad file or option, a model that
    cannot be loaded or has no training reference).
    """
    from dataclasses import replace

    from orchestrator.context import Context
    from orchestrator.drift import Thresholds
    from orchestrator.monitor import check_model, history_rows, read_table, record_check
    from orchestrator.registry import Registry

    _check_options(ctx, batch, labels, history)
    obj = ctx.find_root().obj
    context = Context.open(obj["store"], obj["metadata"], create=False)  # reads a store; never makes one
    close_with_command(ctx, context)
    name = ref.partition("@")[0]
    registry = Registry(context.lineage)
    registry._check_model(name)
    if history:
        # NAME@VERSION narrows the history to that version; NAME alone shows every version's checks.
        version = int(registry.resolve(ref)["version"]) if "@" in ref else None
        rows = [r for r in history_rows(context, name) if version is None or r["version"] == version]
        if as_json:
            echo(json.dumps(rows, indent=2, default=str))
        elif not rows:
            echo(f"no drift checks of {ref} yet. Run `orch monitor {ref} --batch FILE`.")
        for r in rows if not as_json else []:
            s = r["summary"]
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["at"]))
            drifted = ", ".join(str(c) for c in s.get("drifted") or []) or "-"
            if drifted == "-" and (r["alert"] or r["status"] != "ok") and s.get("reasons"):
                # An alert on the predictions or the metric alone read as an alert with nothing behind it, and
                # insufficient_data did not say what was insufficient.
                drifted += "; " + "; ".join(str(reason) for reason in s["reasons"])
            echo(f"{when}  v{r['version']}  {'alert' if r['alert'] else r['status']:<17}  "
                       f"{s.get('rows_current', 0):>6} rows  drifted: {drifted}  ({r['source']})")
        if rows and rows[-1]["alert"]:
            echo(f"alert: the latest check of {ref} raised an alert", err=True)
            sys.exit(EXIT_ALERT)
        return
    thresholds = Thresholds()
    if psi is not None:
        thresholds = replace(thresholds, psi=psi)
    if p_value is not None:
        thresholds = replace(thresholds, p_value=p_value)
    if drop is not None:
        thresholds = replace(thresholds, performance_drop=drop)
    if min_labels is not None:
        thresholds = replace(thresholds, min_labels=min_labels)
    frame = read_table(batch) if batch else None
    source = f"batch {batch}" if batch else "batch"
    join, loaded = None, None
    if labels is not None:
        from orchestrator.monitor import _load, window_source
        from orchestrator.monitor_labels import join_labels

        loaded = _load(context, ref)
        frame, join = join_labels(context, loaded, labels, since=since, last=last)
        source = f"{window_source(loaded.version, since, len(frame) + join.unmatched)}, {join.describe()}"
    row, result, source = check_model(context, ref, frame, thresholds, last=last, source=source, since=since,
                                      loaded=loaded)
    json_path, html_path = record_check(context, row["name"], int(row["version"]), result, source)
    if as_json:
        echo(json.dumps({"model": row["name"], "version": row["version"], "source": source,
                               "status": result.status, "alert": result.alert, "reasons": result.reasons,
                               "drifted": result.drifted, "performance": result.performance,
                               **({"labels": join.to_dict()} if join is not None else {}),
                               "report_json": str(json_path),
                               "report_html": str(html_path)}, indent=2, default=str))
    else:
        echo(f"{row['name']} v{row['version']}: {source}, {result.rows_current} rows: "
                   + ("alert" if result.alert else result.status))
        for reason in result.reasons:
            echo(f"  {reason}")
        metric = (result.performance or {}).get("metric")
        if result.performance and result.rows_current >= result.thresholds.min_rows \
                and not any(r.startswith(f"{metric} ") for r in result.reasons):  # an alert on it says it already
            echo(f"  {_performance_line(result.performance)}")
        for line in feature_lines(result):
            echo(f"  {line}")
        echo(f"  report: {html_path}\n  json:   {json_path}")
    if result.alert:
        echo(f"alert: drift detected for {row['name']} v{row['version']} (see {html_path})", err=True)
        sys.exit(EXIT_ALERT)


FEATURE_LINES = 20  # columns that are not ok printed one per line; the report has every one


def feature_lines(result: DriftResult) -> list[str]:
    """A line per feature that is not ok (the first ``FEATURE_LINES``), then a count of the rest.

    A column the window lacks is named in the reasons already: one line per such column buried
    the verdict of a wide table's batch under dozens of "missing" lines, and a drifted batch of a
    500-column table printed 500 lines.
    """
    from orchestrator.drift import MISSING_COLUMN

    if result.rows_current < result.thresholds.min_rows:
        return []
    shown = [f"{f.name}: {f.status} {f.detail}" for f in result.features
             if f.status != "ok" and f.detail != MISSING_COLUMN]
    if len(shown) <= FEATURE_LINES:
        return shown
    return [*shown[:FEATURE_LINES], f"… and {len(shown) - FEATURE_LINES} more columns not ok: the report lists "
                                    "each one"]


def _performance_line(performance: dict[str, Any]) -> str:
    """The labelled rows' metric against its training value, and why it did not alert when it fell.

    A labelled batch whose RMSE tripled read only ``ok`` when it had fewer labelled rows than an
    alert needs: the metric and that note were in the JSON report alone.
    """
    metric, before, now = performance.get("metric"), performance.get("reference"), performance.get("current")
    rows = performance.get("rows", 0)
    if now is None:
        where = f" on the {rows} labelled rows" if rows > 1 else ""  # a note about 0 or 1 label counts it
        return f"performance: not measured{where}: {performance.get('note', '')}"
    line = f"performance: {metric} {now:.4f} on {rows} labelled rows"
    line += f", {before:.4f} at training" if isinstance(before, (int, float)) else ""
    return line + (f"; {performance['note']}" if performance.get("note") else "")


def _check_options(ctx: click.Context, batch: str | None, labels: str | None, history: bool) -> None:
    """Refuse options that the chosen mode would silently ignore.

    Raises:
        UserError: --history with an option of a new check, or --last, --since or --labels with --batch.
    """
    from click.core import ParameterSource

    from orchestrator.errors import UserError

    given = [f"--{p.replace('_', '-')}" for p in ("batch", "labels", "last", "since", "psi", "p_value", "drop", "min_labels")
             if ctx.get_parameter_source(p) not in (None, ParameterSource.DEFAULT)]
    if history and given:
        raise UserError(f"--history shows past checks and runs none, so {' and '.join(given)} would be ignored. "
                        "Drop --history to run a check, or drop the other option(s).")
    for option in ("--last", "--since", "--labels"):
        if batch is not None and option in given:
            does = "joins outcomes to the served requests" if option == "--labels" else "selects served requests"
            raise UserError(f"{option} {does}, and --batch replaces them with a file. "
                            f"Give one of --batch or {option}.")
