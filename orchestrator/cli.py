"""The ``orch`` command line.

Each command parses its options, calls the runner or reads the metadata
database, and prints. A user's mistake prints one line on stderr and exits
2; a failed run exits 1; a traceback appears only with ``--verbose``.
Listing commands take ``--json`` and then print exactly one JSON document on
stdout. Only ``run``, ``plan`` and ``dag`` may create a store; every other
command reads one, and a store that does not exist is a user's mistake there
(nothing is created). Heavy modules (rich, pandas, the runner) are imported
inside the commands so that ``orch --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shlex
import sys
import time
from typing import TYPE_CHECKING, Any

import click

from orchestrator.cli_usage import OrderedGroup, usage_message
from orchestrator.errors import CURRENT_FOLDER_GONE, OrchestratorError, UserError, current_folder_gone
from orchestrator.spelling import CLI
from orchestrator.stop_signals import StopSignal, signals_as_interrupt
from orchestrator.text_streams import printable_streams
from orchestrator.timestamps import iso_time

if TYPE_CHECKING:
    from orchestrator.context import Context

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
_VERBOSE = [False]  # set once click has parsed -v/--verbose, for the error handler in main()
_STORE: dict[str, str | None] = {}  # --store and --metadata, so that main() can name a damaged database


@click.group(cls=OrderedGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--store", envvar="ORCH_STORE", default=None, metavar="DIR|URL",
              help="Artifact store: a folder, or an fsspec URL such as s3://bucket/store (or set ORCH_STORE). "
                   "Default: `store` of [tool.orchestrator] in the nearest pyproject.toml that has one, "
                   "else ./cache.")
@click.option("--metadata", envvar="ORCH_METADATA", default=None, metavar="PATH",
              help="Local folder of the metadata database; needed with a store URL "
                   "(default: inside the store folder; or set ORCH_METADATA, or `metadata` of "
                   "[tool.orchestrator]).")
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks and live step output.")
@click.version_option(package_name="orchestrator", prog_name="orch")
@click.pass_context
def cli(ctx: click.Context, store: str | None, metadata: str | None, verbose: bool) -> None:
    """orchestrator: run content-hashed, cached, retried pipelines and inspect their lineage.

    \b
    Start with:
      orch run pipelines/quickstart.py        run a pipeline (lifecycle.py: the full ML demo)
      orch plan pipelines/quickstart.py       what would re-run, and why
      orch runs / orch show RUN_ID            what happened
      orch diff A B                           what differs between two runs, and why
      orch lineage RUN:step --upstream        what produced it, from what
      orch models ls / orch monitor NAME      registered models, drift
    """
    if ctx.get_parameter_source("store") is click.core.ParameterSource.ENVIRONMENT:
        store = None  # the store's resolution reads ORCH_STORE itself, and so can say that it came from there
    ctx.obj = {"store": store, "metadata": metadata, "verbose": verbose}
    _VERBOSE[0] = verbose
    _STORE.update(store=store, metadata=metadata)


def _context(ctx: click.Context, *, damaged_ok: bool = False) -> Context:
    """The store a command reads; one that does not exist is a user error, and is not created.

    Args:
        damaged_ok: return the store even when its metadata database is damaged
            (``orch doctor`` reports that and still checks the objects).
    """
    from orchestrator.context import Context
    from orchestrator.errors import DamagedDatabaseError

    context = Context.open(ctx.obj["store"], ctx.obj["metadata"], create=False, short=True)
    try:
        context.lineage.mark_dead_runs()
    except DamagedDatabaseError:
        if not damaged_ok:
            raise
    return context


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _emit_json(doc: Any) -> None:
    from orchestrator.json_values import strict_json

    click.echo(json.dumps(strict_json(doc), indent=2, default=str))  # NaN/inf as null: strict JSON


def _prints_to_stderr(active: bool = True) -> contextlib.AbstractContextManager[Any]:
    """While a command's stdout is a document (``--json``, a diagram), user code prints to stderr.

    A pipeline file that prints when imported, or a step's output echoed with
    ``--verbose``, must not land in the middle of the JSON a script parses.
    """
    return contextlib.redirect_stdout(sys.stderr) if active else contextlib.nullcontext()


def _load_target(target: str, params: tuple[str, ...], params_files: tuple[str, ...]) -> tuple[Any, dict[str, Any]]:
    """The pipeline and its converted parameters; a warning for a relative path found beside the file only.

    Several ``--params`` files are layered as Kedro layers ``conf/base`` and ``conf/local``:
    a later file's value wins, key by key, and ``-p`` wins over them all.
    """
    from orchestrator.loader import load_pipeline, split_target
    from orchestrator.params import (
        convert_params,
        load_params_file,
        parse_assignments,
        paths_beside_the_file,
        pipeline_section,
    )

    pipeline = load_pipeline(target)
    typed: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for params_file in params_files:
        section = pipeline_section(load_params_file(params_file), pipeline.name, pipeline.signature)
        typed.update(section)
        sources.update(dict.fromkeys(section, params_file))
    values = convert_params(pipeline.signature, pipeline.fn, pipeline.name, parse_assignments(params), typed,
                            source=sources)
    for warning in paths_beside_the_file(pipeline.signature, values, split_target(target)[0]):
        click.echo(f"warning: {warning}", err=True)
    return pipeline, values


_param_option = click.option("-p", "--param", "params", multiple=True, metavar="NAME=VALUE",
                             help="Set a pipeline parameter (repeatable); converted to its type.")
_params_file_option = click.option("--params", "params_files", type=click.Path(dir_okay=False), multiple=True,
                                   metavar="FILE",
                                   help="Read parameters from a .toml, .json or .yml file (repeatable: a later file "
                                        "wins, as conf/local.toml over conf/base.toml).")


@cli.command()
@click.argument("target", metavar="FILE[:PIPELINE]")
@_param_option
@_params_file_option
@click.option("--rerun", multiple=True, metavar="STEP",
              help="Force STEP to run again (repeatable); NAME.map forces every item of a map, NAME_3 its third.")
@click.option("--no-cache", is_flag=True, help="Run every step, ignoring stored results.")
@click.option("--executor", type=click.Choice(["sequential", "process", "dask"]), default="sequential",
              show_default=True, help="Where steps run: in this process, a local process pool, or Dask.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Parallel workers for process/dask (default: the number of cores).")
@click.option("--address", default=None, metavar="tcp://HOST:PORT",
              help="A running Dask scheduler (with --executor dask); default: a local cluster.")
@click.option("--verbose", "run_verbose", is_flag=True, help="Show each step's output live and tracebacks.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the run as one JSON document on stdout, as orch show --json does: also when it failed "
                   "or was interrupted.")
@click.pass_context
def run(ctx: click.Context, target: str, params: tuple[str, ...], params_files: tuple[str, ...],
        rerun: tuple[str, ...], no_cache: bool, executor: str, workers: int | None, address: str | None,
        run_verbose: bool, as_json: bool) -> None:
    """Run a pipeline. Exit 0 when it succeeds, 1 when a step failed."""
    from orchestrator.loader import split_target
    from orchestrator.report import ConsoleReporter
    from orchestrator.runner import run_pipeline

    verbose = run_verbose or ctx.obj["verbose"]
    ctx.obj["verbose"] = verbose
    _VERBOSE[0] = verbose
    if workers is not None and ctx.get_parameter_source("executor") is click.core.ParameterSource.DEFAULT:
        # Else ignored: the run would be as slow as without it, and nothing would say why. A
        # script that names the executor (--executor "$EXECUTOR" --workers 2) may give both.
        raise UserError(f"--workers {workers} sizes a process pool or a Dask cluster, but steps run one at a time "
                        f"without --executor: add --executor process (or dask), or drop --workers.")
    try:
        with _prints_to_stderr(as_json), signals_as_interrupt():
            pipeline, values = _load_target(target, params, params_files)
            reporter = ConsoleReporter(verbose=verbose, summary=not as_json)
            result = run_pipeline(pipeline, values, store=ctx.obj["store"], metadata=ctx.obj["metadata"],
                                  executor=executor, workers=workers, address=address,
                                  rerun=rerun, no_cache=no_cache, verbose=verbose, progress=reporter,
                                  file=os.path.abspath(split_target(target)[0]), spelling=CLI)
    except KeyboardInterrupt as exc:
        _stopped(ctx, exc, as_json)
    if as_json:
        _emit_json(_show_doc(_context(ctx), result.id))
    else:
        _print_run_metrics((_context(ctx).lineage.run(result.id) or {}).get("metrics") or {}, result.id)
    if result.status != "succeeded":
        if result.error:
            click.echo(f"error: {_cut_error(result.error)}", err=True)
        if verbose:
            _print_tracebacks(_context(ctx), result.id)
        sys.exit(EXIT_FAILED)


def _stopped(ctx: click.Context, exc: KeyboardInterrupt, as_json: bool) -> None:
    """End ``orch run`` stopped by Ctrl-C, SIGTERM or SIGHUP: 130, or 128 + the signal's number.

    With ``--json`` the interrupted run's document is still printed, so that a job's wrapper
    gets its run id and status whatever ended it. On a terminal that hung up (SIGHUP) the
    line cannot be written; the run is recorded all the same, and the exit code says why.
    """
    run_id = getattr(exc, "orch_run_id", None)
    if as_json and run_id:
        with contextlib.suppress(OSError):
            _emit_json(_show_doc(_context(ctx), run_id))
    how = f"terminated ({exc.signal_name})" if isinstance(exc, StopSignal) else "interrupted"
    with contextlib.suppress(OSError):
        click.echo(f"{how}: finished steps are kept; run the same command again to resume.", err=True)
    sys.exit(exc.exit_code if isinstance(exc, StopSignal) else EXIT_INTERRUPTED)


_ERROR_SHOWN = 600  # characters of a failed step's error on the last line of `orch run`


def _cut_error(error: str) -> str:
    """A failed step's error, its middle cut when it is long, keeping where the details are.

    A user's exception can hold a whole array (scikit-learn lists every class of a stratified
    split that has too few members): thousands of characters on what should be one line.
    """
    if len(error) <= _ERROR_SHOWN:
        return error
    head, sep, details = error.rpartition(" (details: ")
    tail = sep + details if sep and len(details) < 200 else ""
    body = head if tail else error
    return f"{body[:_ERROR_SHOWN - 100]} … [{len(body) - (_ERROR_SHOWN - 100)} more characters]{tail}"


_METRICS_SHOWN = 20  # numbers on the metrics line after a run, and lines of other values; `orch show` has all


def _print_run_metrics(metrics: dict[str, Any], run_id: str) -> None:
    """After the summary: the run's numbers, then what each effect did (the model, its gate verdict, drift).

    A run that trains a worse model succeeds like one that deploys a better one; the gate's verdict
    says which, so it is printed rather than left to `orch show`. A map whose every item reports
    metrics records them per item (``evaluate_7.accuracy``): past ``_METRICS_SHOWN`` the rest are
    counted, not printed, so 2,000 items do not print 4,000 of them on one line.
    """
    from orchestrator.report import one_line

    numbers = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    others = [(k, v) for k, v in metrics.items() if k not in numbers]
    if numbers:
        shown = list(numbers.items())
        if len(shown) > _METRICS_SHOWN:
            # Cut: names one node reported (best_accuracy) before those several did, kept per node
            # (fit_7.accuracy), so that the search's result is not among the ones left out.
            shown = sorted(shown, key=lambda kv: "." in kv[0])[:_METRICS_SHOWN]
        more = f", … and {len(numbers) - len(shown)} more (orch show {run_id} lists them)" \
            if len(numbers) > len(shown) else ""
        click.echo("metrics " + ", ".join(f"{k}={one_line(v)}" for k, v in shown) + more, err=True)
    for key, value in others[:_METRICS_SHOWN]:
        click.echo(f"{key}: {one_line(value, 300)}", err=True)
    if len(others) > _METRICS_SHOWN:
        click.echo(f"… and {len(others) - _METRICS_SHOWN} more (orch show {run_id} lists them)", err=True)


def _print_tracebacks(context: Context, run_id: str) -> None:
    for step in context.lineage.steps(run_id):
        if step["status"] == "failed":
            attempts = context.lineage.attempts(run_id, step["node"])
            if attempts and attempts[-1]["traceback"]:
                click.echo(f"--- traceback of {step['node']} (attempt {attempts[-1]['attempt']}) ---", err=True)
                click.echo(attempts[-1]["traceback"].rstrip(), err=True)


@cli.command()
@click.argument("target", metavar="FILE[:PIPELINE]")
@_param_option
@_params_file_option
@click.option("--rerun", multiple=True, metavar="STEP",
              help="Plan as if STEP were forced (repeatable); NAME.map forces every item of a map, NAME_3 its third.")
@click.option("--no-cache", is_flag=True, help="Plan as orch run --no-cache would run: every step.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.pass_context
def plan(ctx: click.Context, target: str, params: tuple[str, ...], params_files: tuple[str, ...],
         rerun: tuple[str, ...], no_cache: bool, as_json: bool) -> None:
    """Show what a run would do: cached, will run, or may run, and why."""
    from orchestrator.planner import plan_pipeline

    with _prints_to_stderr(as_json):
        pipeline, values = _load_target(target, params, params_files)
        result = plan_pipeline(pipeline, values, store=ctx.obj["store"], metadata=ctx.obj["metadata"], short=True,
                               rerun=rerun, no_cache=no_cache, spelling=CLI)
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        _emit_json({"pipeline": result.pipeline, "steps": [
            {"name": e.node, "status": e.status, "reason": e.reason, "key": e.key} for e in result.entries],
            "warnings": result.warnings})
        return
    from rich.table import Table
    from rich.text import Text

    from orchestrator.report import fold_note, fold_rows, folded_name, folded_reason, step_cell
    from orchestrator.tables import stdout_console

    console = stdout_console()
    table = Table(box=None, pad_edge=False)
    for col in ("step", "plan", "why"):
        table.add_column(col, no_wrap=col != "why")
    style = {"cached": "cyan", "will run": "green", "may run": "yellow"}
    entries = result.entries
    groups = fold_rows([(e.node, e.status, e.reason) for e in entries])
    for group in groups:
        e = entries[group[0]]
        table.add_row(step_cell(folded_name([entries[i].node for i in group]), console.width, 40),
                      Text(e.status, style=style.get(e.status, "")),
                      Text("" if e.status == "cached" else folded_reason([entries[i].reason for i in group])))
    console.print(table)
    note = fold_note(len(entries), len(groups), "orch plan --json lists each")
    if note:
        console.print(note, style="dim")
    counts = result.counts()
    console.print(", ".join(f"{n} {s}" for s, n in counts.items()) or "no steps")


@cli.command()
@click.option("-n", "--limit", type=click.IntRange(min=1), default=20, show_default=True,
              help="How many runs to list.")
@click.option("--pipeline", default=None, help="Only runs of this pipeline.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array, newest first.")
@click.pass_context
def runs(ctx: click.Context, limit: int, pipeline: str | None, as_json: bool) -> None:
    """List runs, the last started first."""
    context = _context(ctx)
    rows = context.lineage.runs(limit=limit, pipeline=pipeline)
    if not rows and pipeline:
        _no_runs_of(context, pipeline)
    if as_json:
        _emit_json([{"run_id": r["run_id"], "pipeline": r["pipeline"], "status": r["status"],
                     "started": iso_time(r["started"]), "ended": iso_time(r["ended"]),
                     "duration": _duration(r), "metrics": r["metrics"] or {}} for r in rows])
        return
    if not rows:
        click.echo("no runs yet. Start one with `orch run FILE`.")
        return
    from rich.text import Text

    from orchestrator.report import format_duration, one_line, status_text
    from orchestrator.tables import print_table, stdout_console

    columns: list[tuple[str, dict[str, Any]]] = [
        (col, {"no_wrap": col != "pipeline"}) for col in ("run", "pipeline", "status", "started", "time")]
    columns.append(("metrics", {"overflow": "fold"}))  # a narrow or piped terminal: wrapped, never cut to `name…`
    console = stdout_console()
    print_table(console, columns, [
        [Text(r["run_id"]), Text(one_line(r["pipeline"])), status_text(r["status"]),
         time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["started"])),
         format_duration(_duration(r)), Text(one_line(_short_metrics(r["metrics"])))] for r in rows])
    total = context.lineage.count_runs(pipeline) if len(rows) == limit else len(rows)
    if total > len(rows):  # else 20 rows read as all there is
        of = f" --pipeline {shlex.quote(pipeline)}" if pipeline else ""
        console.print(Text(f"the last {len(rows)} of {total} runs{of and f' of {pipeline}'}; "
                           f"orch runs{of} -n {total} lists them all"), style="dim")


def _no_runs_of(context: Context, pipeline: str) -> None:
    """Raise for ``--pipeline NAME`` when other pipelines have runs but NAME has none."""
    from orchestrator.errors import NotFoundError, did_you_mean

    names = context.lineage.pipelines()
    if names:
        shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
        raise NotFoundError(f"no runs of pipeline '{pipeline}' in this store; pipelines with runs: {shown}."
                            f"{did_you_mean(pipeline, names)}")


def _short_metrics(metrics: dict[str, Any] | None, limit: int = 4) -> str:
    """The first few numeric metrics of a run, for one table cell.

    When some are left out, names one node reported go first (see ``_print_run_metrics``).
    """
    numbers = [(k, v) for k, v in (metrics or {}).items() if isinstance(v, (int, float))]
    if len(numbers) > limit:
        numbers.sort(key=lambda kv: "." in kv[0])
    return " ".join(f"{k}={v:.4g}" for k, v in numbers[:limit])


def _duration(row: dict[str, Any]) -> float | None:
    return None if row["ended"] is None else row["ended"] - row["started"]


def _computed_in(run_id: str, node: str, computed_by: str) -> str:
    """Where a cached step of ``run_id`` was computed: ``run X``, or ``STEP`` of the same run."""
    origin_run, _, origin_node = computed_by.partition(":")
    if origin_run == run_id:
        return origin_node
    return f"run {origin_run}" + (f" {origin_node}" if origin_node != node else "")


def _show_doc(context: Context, run_id: str) -> dict[str, Any]:
    run = context.lineage.run(run_id)
    steps = []
    for s in context.lineage.steps(run_id):
        # A cached step's result, logs and lineage are those of the step run that computed it.
        origin = context.lineage.origin(run_id, s["node"], s) if s["status"] == "cached" else None
        steps.append({
            "name": s["node"], "step": s["step"], "status": s["status"], "attempts": int(s["attempts"] or 0),
            "reason": s["reason"], "duration": s["duration"], "error": s["error"], "key": s["key"],
            "inputs": s["inputs"], "outputs": s["outputs"],
            "computed_by": f"{origin[0]}:{origin[1]}" if origin else None,
        })
    return {
        "run_id": run["run_id"], "pipeline": run["pipeline"], "status": run["status"],
        "started": iso_time(run["started"]), "ended": iso_time(run["ended"]), "duration": _duration(run),
        "file": run["file"], "params": run["params"], "user": run["user"], "host": run["host"],
        "git_commit": run["git_commit"], "python": run["python"], "packages": run["packages"],
        "executor": run["executor"], "error": run["error"], "metrics": run["metrics"] or {},
        "outputs": run["outputs"], "steps": steps,
    }


@cli.command()
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print the run as one JSON object.")
@click.pass_context
def show(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """Show one run: parameters, environment, and every step with why it ran.

    RUN_ID is a run id, a unique prefix of one, or latest.
    """
    context = _context(ctx)
    run_ref, sep, node = run_id.partition(":")
    if sep and node:  # `orch show RUN:STEP`: the step's run, or its logs and lineage
        context.lineage.step_row(context.lineage.resolve_run(run_ref), node)
        raise UserError(f"orch show takes a run, not a step: `orch show {run_ref}` shows every step of it; for "
                        f"step '{node}' alone, `orch logs {run_id}` or `orch lineage {run_id}`.")
    doc = _show_doc(context, context.lineage.resolve_run(run_id))
    if as_json:
        _emit_json(doc)
        return
    from rich.text import Text

    from orchestrator.report import STOPPED, escape, format_duration, one_line, status_text, step_cell, styled
    from orchestrator.tables import print_table, stdout_console

    console = stdout_console()
    console.print(f"run [bold]{escape(doc['run_id'])}[/]  pipeline [bold]{escape(doc['pipeline'])}[/]  "
                  f"{styled(doc['status'])}")
    # A run looked at from a second terminal while it goes on has taken nothing yet: say how long it has run.
    took = f"took {format_duration(doc['duration'])}" if doc["duration"] is not None else (
        f"running for {format_duration(max(0.0, time.time() - context.lineage.run(doc['run_id'])['started']))}"
        if doc["status"] == "running" else "took -")
    console.print(Text(f"  started {doc['started']}  {took}  "
                       f"by {doc['user']}@{doc['host']}  commit {(doc['git_commit'] or '-')[:12]}"))
    if doc["file"]:
        console.print(Text(f"  file {doc['file']}"))
    # Values are cut to one line each here; `orch show --json` has them in full.
    if doc["params"]:
        console.print(Text("  params " + ", ".join(f"{k}={one_line(v)}" for k, v in doc["params"].items())),
                      soft_wrap=True)
    if doc["metrics"]:
        console.print(Text("  metrics " + ", ".join(f"{k}={one_line(v)}" for k, v in doc["metrics"].items())),
                      soft_wrap=True)
    if doc["error"]:
        console.print(f"  [red]error[/] {escape(doc['error'])}")
    rows: list[list[str | Text]] = []
    for s in doc["steps"]:
        outs = " ".join(f"{o['name']}={o['hash'][:10]}" for o in s["outputs"])
        why = s["error"] if s["status"] in STOPPED and s["error"] else s["reason"]
        if s["computed_by"]:
            why = f"{why or 'cached'} (from {_computed_in(doc['run_id'], s['name'], s['computed_by'])})"
        rows.append([step_cell(s["name"], console.width, 66), status_text(s["status"]), str(s["attempts"] or ""),
                     format_duration(s["duration"]), Text(outs), Text(why or "")])
    # An output is `out=` and 10 hex digits: wrapped between outputs, not cut inside one.
    columns = [(col, {"no_wrap": col in ("step", "status", "attempts", "time"),
                      "min_width": 14 if col == "outputs" else None})
               for col in ("step", "status", "attempts", "time", "outputs", "why")]
    print_table(console, columns, rows)


@cli.command()
@click.argument("a", metavar="[A]", required=False)
@click.argument("b", metavar="[B]", default="latest")
@click.option("--json", "as_json", is_flag=True, help="Print what differs as one JSON object.")
@click.option("--exit-code", is_flag=True, help="Exit 1 when anything differs, 0 when nothing does (as git diff).")
@click.pass_context
def diff(ctx: click.Context, a: str | None, b: str, as_json: bool, exit_code: bool) -> None:
    """What differs between two runs: parameters, environment, steps and why, metrics.

    A and B are run ids, unique prefixes, latest, latest~N (N runs before the
    newest), or a model version NAME@VERSION (its training run, with its gate
    and metrics). B defaults to latest, A to the run of B's pipeline before
    B. Exits 0 whether or not they differ, unless --exit-code.
    """
    from orchestrator.run_diff import diff_runs

    context = _context(ctx)
    found = diff_runs(context.lineage, a, b)
    if as_json:
        _emit_json(found.to_json())
    else:
        from orchestrator.cli_diff import print_diff

        print_diff(found)
    if exit_code and found.differs:
        sys.exit(EXIT_FAILED)


@cli.command()
@click.argument("ref", metavar="RUN:STEP")
@click.option("--attempt", type=click.IntRange(min=1), default=None, help="Only this attempt (default: all).")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object: run_id, step, status, cached_from and attempts (each with attempt, "
                   "status, started, ended, error, traceback, stdout, stderr, logs).")
@click.pass_context
def logs(ctx: click.Context, ref: str, attempt: int | None, as_json: bool) -> None:
    """Print the captured stdout, stderr and log records of a step's attempts.

    RUN is a run id, a unique prefix of one, or latest; STEP a step as `orch show` lists it
    (`orch logs latest:fit_2`).
    """
    context = _context(ctx)
    run_ref, sep, node = ref.partition(":")
    if not sep or not node:
        raise UserError(f"'{ref}' is not RUN:STEP. Write it like `orch logs 3f2a:train`.")
    run_id = context.lineage.resolve_run(run_ref)
    row = context.lineage.step_row(run_id, node)
    attempts = context.lineage.attempts(run_id, node)
    if as_json:
        click.echo(json.dumps(_logs_document(context, run_id, node, row, attempts, attempt), indent=2))
        return
    if not attempts:
        origin_run, origin_node = context.lineage.origin(run_id, node, row)
        if row["status"] == "cached" and origin_run != run_id:
            click.echo(f"step '{node}' of run {run_id} was cached: it reused the result of run {origin_run}. "
                       f"Its output: `orch logs {origin_run}:{origin_node}`.")
            return
        if _unrecorded_attempt(node, row, 0, attempt):
            return
        made = _attempts_made(row)
        if attempt is not None and made:
            raise UserError(f"step '{node}' of run {run_id} has no attempt {attempt}; it made {made}. "
                            "Pass one of them to --attempt, or leave it out.")
        click.echo(f"step '{node}' of run {run_id} did not run in that run ({row['status']}); nothing captured.")
        return
    numbers = [a["attempt"] for a in attempts]
    if attempt is not None and attempt not in numbers and _unrecorded_attempt(node, row, max(numbers), attempt):
        return
    if attempt is not None and attempt not in numbers:
        raise UserError(f"step '{node}' of run {run_id} has no attempt {attempt}; its attempts are "
                        f"{', '.join(map(str, numbers))}. Pass one of them to --attempt, or leave it out.")
    for a in attempts:
        if attempt is not None and a["attempt"] != attempt:
            continue
        click.echo(f"=== {node} attempt {a['attempt']} ({a['status']}) ===")
        for label in ("stdout", "stderr", "logs"):
            if a[label]:
                click.echo(f"--- {label} ---")
                click.echo(_settle_carriage_returns(a[label]).rstrip("\n"))
        if a["traceback"]:
            click.echo("--- traceback ---")
            click.echo(a["traceback"].rstrip("\n"))
        elif a["error"]:  # a timeout or a dead worker: no traceback of the step's own
            click.echo("--- error ---")
            click.echo(a["error"].rstrip("\n"))
    if attempt is None:
        _unrecorded_attempt(node, row, max(numbers), None)


def _settle_carriage_returns(text: str) -> str:
    """Each line as a terminal left it: a progress bar redrawn after ``\r`` (tqdm) shows its last state.

    Raw, the redraws of one bar are one line of hundreds of states, unreadable in ``less``, a file
    or a CI log. A later part overwrites the start of an earlier one, as on a terminal.
    """
    if "\r" not in text:
        return text
    lines = text.split("\n")
    for k, line in enumerate(lines):
        if "\r" in line:
            shown = ""
            for part in line.split("\r"):
                shown = part + shown[len(part):]
            lines[k] = shown
    return "\n".join(lines)


def _attempts_made(row: dict[str, Any]) -> int:
    """How many attempts a step made. Its row counts them as they end: a step still running, or
    cut short in its first attempt (a killed `orch`), is in its first though the row says 0."""
    return int(row["attempts"] or (1 if row["status"] in ("interrupted", "running") else 0))


def _logs_document(context: Context, run_id: str, node: str, row: dict[str, Any], attempts: list[dict[str, Any]],
                   wanted: int | None) -> dict[str, Any]:
    """``orch logs --json``: the step's attempts as recorded (the one ``--attempt`` names, if given).

    An attempt cut short without a record (Ctrl-C, a killed process, still running) is listed with
    its status and ``recorded: false``; a step cached from another run has none, and
    ``cached_from`` names the ``RUN:STEP`` whose attempts made its result.
    """
    origin_run, origin_node = context.lineage.origin(run_id, node, row)
    cached_from = f"{origin_run}:{origin_node}" if row["status"] == "cached" and origin_run != run_id else None
    listed = [{"attempt": a["attempt"], "status": a["status"], "started": iso_time(a["started"]), "ended": iso_time(a["ended"]),
               "error": a["error"], "traceback": a["traceback"], "stdout": a["stdout"] or "",
               "stderr": a["stderr"] or "", "logs": a["logs"] or "", "recorded": True} for a in attempts]
    last = _unrecorded_last(row, max((a["attempt"] for a in attempts), default=0))
    if last is not None:
        listed.append({"attempt": last, "status": row["status"], "started": None, "ended": None, "error": None,
                       "traceback": None, "stdout": "", "stderr": "", "logs": "", "recorded": False})
    if wanted is not None:
        chosen = [a for a in listed if a["attempt"] == wanted]
        if not chosen:
            numbers = ", ".join(str(a["attempt"]) for a in listed) or "none"
            raise UserError(f"step '{node}' of run {run_id} has no attempt {wanted}; its attempts: {numbers}. "
                            "Pass one of them to --attempt, or leave it out.")
        listed = chosen
    return {"run_id": run_id, "step": node, "status": row["status"], "cached_from": cached_from, "attempts": listed}


def _unrecorded_last(row: dict[str, Any], recorded: int) -> int | None:
    """The number of the step's last attempt when it left no record (cut short, or still running), else None."""
    last = _attempts_made(row)
    return last if row["status"] in ("interrupted", "running") and last > recorded else None


def _unrecorded_attempt(node: str, row: dict[str, Any], recorded: int, wanted: int | None) -> bool:
    """Say so when the step's last attempt was cut short (Ctrl-C, a killed process) and left no record."""
    last = _unrecorded_last(row, recorded)
    if last is None or wanted not in (None, last):
        return False
    why = ("it is still running; what it prints is recorded when it ends" if row["status"] == "running" else
           "it was stopped before it finished (Ctrl-C or a killed process), and what it printed was lost")
    click.echo(f"=== {node} attempt {last} ({row['status']}) ===\n--- nothing recorded: {why} ---")
    return True


@cli.command()
@click.argument("ref", metavar="REF")
@click.option("--upstream", is_flag=True, help="What produced REF, from what (default).")
@click.option("--downstream", is_flag=True, help="What was built from REF.")
@click.option("--depth", type=click.IntRange(min=0), default=None,
              help="Show N steps beyond REF (artifacts between them do not count).")
@click.option("--format", "fmt", type=click.Choice(["tree", "json", "dot", "mermaid"]), default="tree",
              show_default=True, help="Print a tree, a JSON graph, or a Graphviz dot or Mermaid diagram.")
@click.pass_context
def lineage(ctx: click.Context, ref: str, upstream: bool, downstream: bool, depth: int | None, fmt: str) -> None:
    """Trace lineage of REF across runs: a run id, RUN:STEP, NAME@VERSION, a file path (also one since deleted), or
    a digest prefix."""
    from orchestrator.provenance import render, walk

    if upstream and downstream:
        raise UserError("choose one of --upstream or --downstream: a lineage is traced one way at a time.")
    direction = "downstream" if downstream else "upstream"
    click.echo(render(walk(_context(ctx).lineage, ref, direction, depth), fmt))


@cli.command()
@click.argument("target", metavar="FILE[:PIPELINE]")
@_param_option
@_params_file_option
@click.option("--format", "fmt", type=click.Choice(["tree", "dot", "mermaid"]), default="tree",
              show_default=True, help="Print a tree, or a Graphviz dot or Mermaid diagram.")
def dag(target: str, params: tuple[str, ...], params_files: tuple[str, ...], fmt: str) -> None:
    """Show a pipeline's DAG without running it."""
    with _prints_to_stderr():
        pipeline, values = _load_target(target, params, params_files)
        pipeline.resolve_params(values, CLI)  # a missing parameter is asked for as -p NAME=VALUE
        built = pipeline.build(**values)
    if fmt in ("dot", "mermaid"):
        from orchestrator.diagrams import render_dag

        click.echo(render_dag(built, fmt))
    else:
        # Counted as `orch run` counts them: a map over a step's output becomes one step per item
        # only once that output exists, so the map itself is not a step.
        steps = sum(not node.is_map for node in built.nodes.values())
        mapped = " + mapped items" if any(node.is_map for node in built.nodes.values()) else ""
        click.echo(f"pipeline {built.pipeline} ({steps} step{'s' if steps != 1 else ''}{mapped})")
        for node in built.nodes.values():
            deps = f" ← {', '.join(node.upstream)}" if node.upstream else ""
            each = ": one step per item of its list" if node.is_map and node.map_over is not None else ""
            click.echo(f"  {node.name} ({node.site}){deps}{each}")


@cli.group(cls=OrderedGroup)
def cache() -> None:
    """Inspect, verify and clean the artifact store."""


@cache.command("ls")
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON array of {hash, size, type, path, materializer}.")
@click.pass_context
def cache_ls(ctx: click.Context, as_json: bool) -> None:
    """List stored artifacts."""
    context = _context(ctx.parent)  # type: ignore[arg-type]
    rows = []
    for r in context.lineage.artifact_rows():
        stored = r["inline"] is not None
        rows.append({"hash": r["digest"], "size": r["size"], "type": r["type"],
                     "path": None if stored else context.store.url_of(r["digest"]),
                     "materializer": r["materializer"]})
    if as_json:
        _emit_json(rows)
        return
    for r in rows:
        click.echo(f"{r['hash']}  {r['size']:>12}  {r['type']:<24} {r['path'] or '(inline in metadata.db)'}")
    click.echo(_plural(len(rows), "artifact"), err=True)


@cache.command("verify")
@click.option("--repair", is_flag=True, help="Remove damaged artifacts so that the next run recomputes them.")
@click.option("--json", "as_json", is_flag=True, help="Print {checked, damaged: [...], repaired} as JSON.")
@click.pass_context
def cache_verify(ctx: click.Context, repair: bool, as_json: bool) -> None:
    """Re-check every stored object (checksum, signature); exit 1 if any is damaged and not repaired."""
    from orchestrator.maintenance import repair_store, upkeep, verify_store

    context = _context(ctx.parent)  # type: ignore[arg-type]
    with upkeep(context, exclusive=repair):
        checked, found = verify_store(context)
        if repair and found:
            repair_store(context, found)
    damaged = [{"hash": d.digest, "problem": d.problem} for d in found]
    if as_json:
        _emit_json({"checked": checked, "damaged": damaged, "repaired": repair and bool(found)})
    else:
        for d in damaged:
            click.echo(f"{'removed' if repair else 'damaged'} {d['hash']}: {d['problem']}")
        tail = "; the next run recomputes them" if repair and damaged else ""
        click.echo(f"{checked} objects checked, {len(damaged)} damaged{tail}", err=True)
    if damaged and not repair:
        sys.exit(EXIT_FAILED)


@cache.command("gc")
@click.option("--keep-last", type=click.IntRange(min=0), default=None, metavar="N",
              help="Keep the artifacts of the last N succeeded runs and of every run since "
                   "(default: of every run).")
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

    context = _context(ctx.parent)  # type: ignore[arg-type]
    result = collect_garbage(context, keep_last, dry_run, force=force)
    if dry_run:  # which ones, as `orch cache ls` shows them, so each can be looked up before it goes
        rows = {r["digest"]: r for r in context.lineage.artifact_rows()}
        for digest in result.removed:
            row = rows.get(digest)
            click.echo(f"{digest}  {row['size']:>12}  {row['type']}" if row else f"{digest}  (an orphan: no record)")
    verb = "would remove" if dry_run else "removed"
    spared = f"; spared {result.spared_recent} written during a running run" if result.spared_recent else ""
    click.echo(f"{verb} {_plural(len(result.removed), 'artifact')} ({result.freed_bytes / 1e6:.1f} MB); "
               f"kept those of {_plural(result.kept_runs, 'run')}{spared}")
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
            click.echo(f"the request log of {name} was not folded ({reason}); it reads as before, and the next "
                       "`orch cache gc` folds it", err=True)
            continue
        if folded:
            click.echo(f"would fold {folded} small request-log segments of {name}" if dry_run else
                       f"folded {folded} small request-log segments of {name} into {written}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print {checked, findings: [...], store, metadata, store_source} as JSON.")
@click.pass_context
def doctor(ctx: click.Context, as_json: bool) -> None:
    """Check the store and say which command fixes each problem; exit 1 if any is found."""
    from orchestrator.doctor import examine

    context = _context(ctx, damaged_ok=True)
    checkup = examine(context)
    where = _store_description(context)
    if as_json:
        _emit_json({"checked": checkup.checked_objects, "findings": [
            {"check": f.check, "problem": f.problem, "fix": f.fix} for f in checkup.findings],
            "store": where["store"], "metadata": where["metadata"], "store_source": where["source"]})
    else:
        # Which store, and why: run from a subfolder, ./cache would be another store than the project's.
        source = where["source"] or ""
        click.echo(f"store {where['store']} ({source if source.startswith('the default') else 'from ' + source})",
                   err=True)
        for f in checkup.findings:
            click.echo(f"{f.check}: {f.problem}\n  fix: {f.fix}")
        count = len(checkup.findings)
        verdict = "healthy" if checkup.healthy else f"has {count} problem{'s' if count != 1 else ''}"
        objects = checkup.checked_objects
        click.echo(f"{objects} object{'s' if objects != 1 else ''} checked; store {verdict}", err=True)
    if not checkup.healthy:
        sys.exit(EXIT_FAILED)


def _store_description(context: Context) -> dict[str, str | None]:
    """The store and metadata database a command opened, as absolute paths, and why that store."""
    from orchestrator.remote_store import is_url

    location = context.location
    store = location if is_url(location) else os.path.abspath(location)
    database = os.path.abspath(context.lineage.path)
    return {"store": store, "metadata": database, "source": context.source or "the default ./cache"}


def _misplaced_global_option(exc: click.UsageError) -> str | None:
    """The fix for ``orch run FILE --store DIR``: ``--store`` is an option of ``orch``, given before the command.

    Messages tell users to "pass --store cache"; appended to the command they typed,
    click's own answer (no such option, did you mean --json?) points nowhere useful.
    So it is for ``-v`` (``orch runs -v``), which the docs list among orch's options.
    """
    if not isinstance(exc, click.NoSuchOption) or exc.ctx is None or exc.ctx.parent is None:
        return None
    for param in cli.params:
        if isinstance(param, click.Option) and exc.option_name in param.opts and not param.is_eager:
            command = exc.ctx.command_path.partition(" ")[2]
            given = exc.option_name if param.is_flag else f"{exc.option_name} {param.metavar or 'VALUE'}"
            return (f"{exc.option_name} is an option of orch, not of `{exc.ctx.command_path}`: give it before the "
                    f"command, `orch {given} {command} ...`.")
    return None


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``orch``: maps errors to one line and an exit code."""
    _VERBOSE[0] = False
    _STORE.clear()
    printable_streams()  # a latin-1 or ASCII locale (a cron job's) must not stop a command at its first `…`
    try:
        if any("\0" in arg for arg in (argv if argv is not None else sys.argv[1:])):
            raise UserError("an argument contains a NUL character. Names and paths cannot contain one.")
        cli.main(args=argv, prog_name="orch", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # `orch` or `orch cache` alone: the help it asks for
            exc.show()
            sys.exit(exc.exit_code)
        # One line, as for every other mistake: what is wrong, then where the usage is.
        where = exc.ctx.command_path if exc.ctx is not None else "orch"
        misplaced = _misplaced_global_option(exc)
        click.echo(f"error: {misplaced or usage_message(exc)} See `{where} --help`.", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except OrchestratorError as exc:
        if _VERBOSE[0]:
            import traceback

            traceback.print_exc()
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except (OSError, UnicodeError) as exc:  # a name the file system or database cannot take
        if _VERBOSE[0]:
            import traceback

            traceback.print_exc()
        click.echo(f"error: {_bad_name(exc)}", err=True)
        sys.exit(EXIT_USAGE)
    except Exception as exc:
        error = _database_error(exc)
        if error is None:
            raise
        if _VERBOSE[0]:
            import traceback

            traceback.print_exc()
        click.echo(f"error: {error}", err=True)
        sys.exit(error.exit_code)
    sys.exit(EXIT_OK)


def _database_error(exc: Exception) -> OrchestratorError | None:
    """The one-line error for a SQLite failure of the metadata database met after it opened.

    Opening converts its own failures; this catches damage SQLite meets only when a
    query reaches a bad page, and a read-only file met at the first write.
    """
    sqlite3 = sys.modules.get("sqlite3")
    if sqlite3 is None or not isinstance(exc, sqlite3.Error):
        return None
    from orchestrator.context import database_file
    from orchestrator.lineage_schema import database_error

    try:
        path = database_file(_STORE.get("store"), _STORE.get("metadata"))
    except OrchestratorError:
        path = None
    return database_error(path, exc)


def _bad_name(exc: OSError | UnicodeError) -> str:
    if isinstance(exc, UnicodeError):
        return "an argument is not valid UTF-8 text. Pass names as UTF-8."
    if isinstance(exc, FileNotFoundError) and exc.filename is None and current_folder_gone():
        return CURRENT_FOLDER_GONE  # os.getcwd(), behind every relative path (--store cache too), names no file
    name = exc.filename if isinstance(exc.filename, str) else ""
    shown = f" {name[:60]}…" if len(name) > 60 else f" {name}" if name else ""
    return f"{exc.strerror or exc}:{shown}. {_OS_FIXES.get(exc.errno or 0, 'Check the path or name.')}"


# What to do about an OSError that is no bad name: "Check the path or name" sent a user whose disk
# was full (a drift report that did not fit) looking for a typo.
_OS_FIXES = {
    errno.ENOSPC: "Free some space, then run the same command again.",
    errno.EDQUOT: "Free some space within your quota, then run the same command again.",
    errno.EROFS: "It is on a read-only file system: pass --store with a writable folder, or remount it.",
    errno.EACCES: "Make it accessible for you, or pass --store with a folder you may write.",
    errno.EPERM: "Make it accessible for you, or pass --store with a folder you may write.",
    errno.EIO: "The disk failed a read or write: check it, then run the same command again.",
}


def _add_lifecycle_commands() -> None:
    # The model lifecycle commands live in their own modules; they only register here.
    from orchestrator.cli_models import models, serve
    from orchestrator.cli_monitor import monitor

    for command in (models, serve, monitor):
        cli.add_command(command)


_add_lifecycle_commands()
