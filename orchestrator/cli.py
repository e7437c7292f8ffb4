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
import os
import sys
from typing import TYPE_CHECKING, Any, cast

import click

from orchestrator.cli_common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    echo,
    emit_json,
    open_context,
    prints_to_stderr,
)
from orchestrator.cli_history import show_doc
from orchestrator.cli_usage import OrderedGroup, usage_message
from orchestrator.errors import CURRENT_FOLDER_GONE, OrchestratorError, UserError, current_folder_gone
from orchestrator.spelling import CLI
from orchestrator.stop_signals import (
    StopSignal,
    signals_as_interrupt,
    stops_said_after_the_run,
)
from orchestrator.text_streams import printable_streams

if TYPE_CHECKING:
    from orchestrator.context import Context

_VERBOSE = [False]  # set once click has parsed -v/--verbose, for the error handler in main()
_PROCESS = [False]  # main() is the process itself (`orch`, python -m orchestrator), not a call from Python
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


def _load_target(target: str, params: tuple[str, ...], params_files: tuple[str, ...],
                 params_from: str | None = None, ctx: click.Context | None = None) -> tuple[Any, dict[str, Any]]:
    """The pipeline and its converted parameters; a warning for a relative path found beside the file only,
    and for a misspelt name that ``**options`` took.

    Several ``--params`` files are layered as Kedro layers ``conf/base`` and ``conf/local``:
    a later file's value wins, key by key, and ``-p`` wins over them all. ``--params-from RUN``
    (read from the store of ``ctx``) lies under them all: the run's parameters, changed by the others.
    """
    from orchestrator.loader import load_pipeline, split_target
    from orchestrator.params import (
        convert_params,
        load_params_file,
        options_like_parameters,
        parse_assignments,
        paths_beside_the_file,
        pipeline_section,
    )

    pipeline = load_pipeline(target)
    typed: dict[str, Any] = {}
    sources: dict[str, str] = {}
    if params_from is not None and ctx is not None:
        from orchestrator.run_params import recorded_params

        recorded = recorded_params(open_context(ctx).lineage, params_from, pipeline.name, "--params-from")
        kept, note = recorded.for_signature(pipeline.signature, pipeline.name)
        if note:
            echo(f"warning: {note}", err=True)
        typed.update(kept)
        sources.update(dict.fromkeys(kept, recorded.source))
    for params_file in params_files:
        section = pipeline_section(load_params_file(params_file), pipeline.name, pipeline.signature)
        typed.update(section)
        sources.update(dict.fromkeys(section, params_file))
    values = convert_params(pipeline.signature, pipeline.fn, pipeline.name, parse_assignments(params), typed,
                            source=sources)
    for warning in (*options_like_parameters(pipeline.signature, pipeline.name, values),
                    *paths_beside_the_file(pipeline.signature, values, split_target(target)[0])):
        echo(f"warning: {warning}", err=True)
    return pipeline, values


_param_option = click.option("-p", "--param", "params", multiple=True, metavar="NAME=VALUE",
                             help="Set a pipeline parameter (repeatable); converted to its type.")
_params_file_option = click.option("--params", "params_files", type=click.Path(dir_okay=False), multiple=True,
                                   metavar="FILE",
                                   help="Read parameters from a .toml, .json or .yml file (repeatable: a later file "
                                        "wins, as conf/local.toml over conf/base.toml).")
_params_from_option = click.option("--params-from", "params_from", metavar="RUN", default=None,
                                   help="Start from the parameters run RUN of this pipeline was given (an id, a "
                                        "prefix, latest, latest~N); --params and -p change them.")


@cli.command()
@click.argument("target", metavar="FILE[:PIPELINE]")
@_param_option
@_params_file_option
@_params_from_option
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
        params_from: str | None, rerun: tuple[str, ...], no_cache: bool, executor: str, workers: int | None, address: str | None,
        run_verbose: bool, as_json: bool) -> None:
    """Run a pipeline. Exit 0 when it succeeds, 1 when a step failed.

    Stopped by Ctrl-C, SIGTERM or SIGHUP, the run is recorded interrupted and exits 130, 143 or 129;
    the same command again resumes it, reusing each finished step.
    """
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
        # `orch` itself, not main([...]) called in a process that goes on: from the run's recorded end to
        # the exit, a stop signal is said, and the exit is as the run is recorded.
        process = _PROCESS[0]
        said = stops_said_after_the_run(lambda name, run_id, status: echo(
            f"{name} arrived as run {run_id} ended: it is recorded {status}.", err=True)) \
            if process else contextlib.nullcontext()
        with prints_to_stderr(as_json), signals_as_interrupt(until_exit=process), said as end_recorded:
            pipeline, values = _load_target(target, params, params_files, params_from, ctx)
            reporter = ConsoleReporter(verbose=verbose, summary=not as_json)
            result = run_pipeline(pipeline, values, store=ctx.obj["store"], metadata=ctx.obj["metadata"],
                                  executor=executor, workers=workers, address=address,
                                  rerun=rerun, no_cache=no_cache, verbose=verbose, progress=reporter,
                                  file=os.path.abspath(split_target(target)[0]), spelling=CLI,
                                  end_recorded=end_recorded)
    except KeyboardInterrupt as exc:
        _stopped(ctx, exc, as_json)
    if as_json:
        try:
            emit_json(show_doc(open_context(ctx), result.id))
        except BrokenPipeError:  # `orch run --json | true`: no reader for it; the exit still says how it went
            from orchestrator.text_streams import silence

            silence(sys.stdout)
    else:
        _print_run_metrics((open_context(ctx).lineage.run(result.id) or {}).get("metrics") or {}, result.id)
    if result.status != "succeeded":
        if result.error:
            echo(f"error: {_cut_error(result.error)}", err=True)
        if verbose:
            _print_tracebacks(open_context(ctx), result.id)
        sys.exit(EXIT_FAILED)


def _stopped(ctx: click.Context, exc: KeyboardInterrupt, as_json: bool) -> None:
    """End ``orch run`` stopped by Ctrl-C, SIGTERM or SIGHUP: 130, or 128 + the signal's number.

    A signal that arrived as the run's end was recorded (``orch_recorded``) ends it as
    that status does instead: 0 for a run recorded succeeded, 1 for one recorded failed.

    With ``--json`` the interrupted run's document is still printed, so that a job's wrapper
    gets its run id and status whatever ended it. On a terminal that hung up (SIGHUP) the
    line cannot be written; the run is recorded all the same, and the exit code says why.
    """
    run_id = getattr(exc, "orch_run_id", None)
    if as_json and run_id:
        with contextlib.suppress(OSError):
            emit_json(show_doc(open_context(ctx), run_id))
    recorded = getattr(exc, "orch_recorded", None)
    if recorded is not None and isinstance(exc, StopSignal):
        # It arrived as the run's end was recorded and its summary printed: the run is over, and
        # the exit says what it is recorded as, not "terminated, resume" for a run that succeeded.
        with contextlib.suppress(OSError):
            echo(f"{exc.signal_name} arrived as run {run_id} ended: it is recorded {recorded}.", err=True)
        sys.exit(EXIT_OK if recorded == "succeeded" else EXIT_FAILED)
    how = f"terminated ({exc.signal_name})" if isinstance(exc, StopSignal) else "interrupted"
    with contextlib.suppress(OSError):
        echo(f"{how}: finished steps are kept; run the same command again to resume.", err=True)
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
        echo("metrics " + ", ".join(f"{k}={one_line(v)}" for k, v in shown) + more, err=True)
    for key, value in others[:_METRICS_SHOWN]:
        echo(f"{key}: {one_line(value, 300)}", err=True)
    if len(others) > _METRICS_SHOWN:
        echo(f"… and {len(others) - _METRICS_SHOWN} more (orch show {run_id} lists them)", err=True)


def _print_tracebacks(context: Context, run_id: str) -> None:
    for step in context.lineage.steps(run_id):
        if step["status"] == "failed":
            attempts = context.lineage.attempts(run_id, step["node"])
            if attempts and attempts[-1]["traceback"]:
                echo(f"--- traceback of {step['node']} (attempt {attempts[-1]['attempt']}) ---", err=True)
                echo(attempts[-1]["traceback"].rstrip(), err=True)


@cli.command()
@click.argument("target", metavar="FILE[:PIPELINE]")
@_param_option
@_params_file_option
@_params_from_option
@click.option("--rerun", multiple=True, metavar="STEP",
              help="Plan as if STEP were forced (repeatable); NAME.map forces every item of a map, NAME_3 its third.")
@click.option("--no-cache", is_flag=True, help="Plan as orch run --no-cache would run: every step.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.pass_context
def plan(ctx: click.Context, target: str, params: tuple[str, ...], params_files: tuple[str, ...],
         params_from: str | None, rerun: tuple[str, ...], no_cache: bool, as_json: bool) -> None:
    """Show what a run would do: cached, will run, or may run, and why."""
    from orchestrator.planner import plan_pipeline

    with prints_to_stderr(as_json):
        pipeline, values = _load_target(target, params, params_files, params_from, ctx)
        result = plan_pipeline(pipeline, values, store=ctx.obj["store"], metadata=ctx.obj["metadata"], short=True,
                               rerun=rerun, no_cache=no_cache, spelling=CLI)
    for warning in result.warnings:
        echo(f"warning: {warning}", err=True)
    if as_json:
        emit_json({"pipeline": result.pipeline, "steps": [
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

    context = open_context(ctx)
    found = diff_runs(context.lineage, a, b)
    if as_json:
        emit_json(found.to_json())
    else:
        from orchestrator.cli_diff import print_diff

        print_diff(found)
    if exit_code and found.differs:
        sys.exit(EXIT_FAILED)


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
    """Trace lineage of REF across runs: a run id, RUN:STEP, RUN:STEP.OUTPUT (as orch show lists it), NAME@VERSION,
    a file path (also one since deleted), or a digest prefix."""
    from orchestrator.provenance import render, walk

    if upstream and downstream:
        raise UserError("choose one of --upstream or --downstream: a lineage is traced one way at a time.")
    direction = "downstream" if downstream else "upstream"
    echo(render(walk(open_context(ctx).lineage, ref, direction, depth), fmt))


@cli.command()
@click.argument("target", metavar="FILE[:PIPELINE]")
@_param_option
@_params_file_option
@_params_from_option
@click.option("--format", "fmt", type=click.Choice(["tree", "dot", "mermaid"]), default="tree",
              show_default=True, help="Print a tree, or a Graphviz dot or Mermaid diagram.")
@click.pass_context
def dag(ctx: click.Context, target: str, params: tuple[str, ...], params_files: tuple[str, ...],
        params_from: str | None, fmt: str) -> None:
    """Show a pipeline's DAG without running it."""
    with prints_to_stderr():
        # A pipeline whose shape follows a parameter (a step per fold) draws the DAG that run had.
        pipeline, values = _load_target(target, params, params_files, params_from, ctx)
        pipeline.resolve_params(values, CLI)  # a missing parameter is asked for as -p NAME=VALUE
        built = pipeline.build(**values)
    from orchestrator.diagrams import render_dag, render_tree

    echo(render_dag(built, fmt) if fmt in ("dot", "mermaid") else "\n".join(render_tree(built)))


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


def _command_named(args: list[str]) -> str:
    """``orch run`` for ``orch run f.py -p``: the parser's error about a missing value comes without the
    command it belongs to, and pointing at ``orch --help`` sent the user to the wrong page."""
    path, group = ["orch"], cast(click.Command, cli)
    for arg in args:
        command = group.commands.get(arg) if isinstance(group, click.Group) else None
        if command is None:
            if arg.startswith("-") or len(path) == 1:
                continue  # a global option (`--store DIR`), or its value
            break
        path.append(arg)
        group = command
    return " ".join(path)


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``orch``: maps errors to one line and an exit code."""
    _VERBOSE[0] = False
    # Per call: main([...]) called by a step of `orch run` (or by its pipeline file) is not the process.
    process, _PROCESS[0] = _PROCESS[0], argv is None
    _STORE.clear()
    printable_streams()  # a latin-1 or ASCII locale (a cron job's) must not stop a command at its first `…`
    try:
        _main(argv)
    finally:
        _PROCESS[0] = process


def _main(argv: list[str] | None) -> None:
    try:
        if any("\0" in arg for arg in (argv if argv is not None else sys.argv[1:])):
            raise UserError("an argument contains a NUL character. Names and paths cannot contain one.")
        cli.main(args=argv, prog_name="orch", standalone_mode=False)
    except click.exceptions.Abort:
        echo("aborted", err=True)
        sys.exit(130)
    except click.UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # `orch` or `orch cache` alone: the help it asks for
            exc.show()
            sys.exit(exc.exit_code)
        # One line, as for every other mistake: what is wrong, then where the usage is.
        where = exc.ctx.command_path if exc.ctx is not None else \
            _command_named(argv if argv is not None else sys.argv[1:])
        misplaced = _misplaced_global_option(exc)
        echo(f"error: {misplaced or usage_message(exc)} See `{where} --help`.", err=True)
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
        echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        echo("interrupted", err=True)
        sys.exit(130)
    except (OSError, UnicodeError) as exc:  # a name the file system or database cannot take
        if _VERBOSE[0]:
            import traceback

            traceback.print_exc()
        echo(f"error: {_bad_name(exc)}", err=True)
        sys.exit(EXIT_USAGE)
    except Exception as exc:
        error = _database_error(exc)
        if error is None:
            raise
        if _VERBOSE[0]:
            import traceback

            traceback.print_exc()
        echo(f"error: {error}", err=True)
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


def _add_commands() -> None:
    """Register the commands of the other ``cli_*`` modules, in the order ``orch --help`` lists them."""
    from orchestrator.cli_cache import cache, doctor
    from orchestrator.cli_history import logs, runs, show
    from orchestrator.cli_models import models, serve
    from orchestrator.cli_monitor import monitor

    own = dict(cli.commands)
    cli.commands.clear()
    for command in (own["run"], own["plan"], runs, show, own["diff"], logs, own["lineage"], own["dag"],
                    cache, doctor, models, serve, monitor):
        cli.add_command(command)


_add_commands()
