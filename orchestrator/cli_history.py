"""``orch runs``, ``orch show`` and ``orch logs``: what happened, read from the metadata database.

Each reads the store as it is (nothing is created), prints a table or, with
``--json``, one document whose keys are part of the public contract
(docs/cli.md). Registered on the ``orch`` group by ``cli``.
"""

from __future__ import annotations

import shlex
import time
from typing import TYPE_CHECKING, Any

import click

from orchestrator.cli_common import Since, echo, emit_json, open_context
from orchestrator.errors import NotFoundError, UserError
from orchestrator.timestamps import iso_time

if TYPE_CHECKING:
    from orchestrator.context import Context

# What a run's status can be: under way, or how it ended.
RUN_STATUSES = ("succeeded", "failed", "interrupted", "running")


@click.command()
@click.option("-n", "--limit", type=click.IntRange(min=1), default=20, show_default=True,
              help="How many runs to list.")
@click.option("--pipeline", default=None, help="Only runs of this pipeline.")
@click.option("--status", "statuses", multiple=True, type=click.Choice(RUN_STATUSES),
              help="Only runs with this status; repeat it for several (--status failed --status interrupted).")
@click.option("--since", type=Since(), default=None, metavar="WHEN",
              help="Only runs started since WHEN: a time ago (30m, 2h, 7d, 1w) or a local date and time "
              "(2026-11-27, 2026-11-27T10:00).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array, newest first.")
@click.pass_context
def runs(ctx: click.Context, limit: int, pipeline: str | None, statuses: tuple[str, ...], since: float | None,
         as_json: bool) -> None:
    """List runs, the last started first."""
    context = open_context(ctx)
    statuses = tuple(dict.fromkeys(statuses))
    rows = context.lineage.runs(limit=limit, pipeline=pipeline, statuses=statuses, since=since)
    narrowed = bool(statuses) or since is not None
    if not rows and pipeline and (not narrowed or not context.lineage.count_runs(pipeline)):
        _no_runs_of(context, pipeline)
    if as_json:
        emit_json([{"run_id": r["run_id"], "pipeline": r["pipeline"], "status": r["status"],
                     "started": iso_time(r["started"]), "ended": iso_time(r["ended"]),
                     "duration": _duration(r), "metrics": r["metrics"] or {}, "error": r["error"]} for r in rows])
        return
    if not rows and narrowed and context.lineage.count_runs(pipeline):
        of = f" of {pipeline}" if pipeline else ""
        which = f"{' or '.join(statuses)} " if statuses else ""
        echo(f"no {which}runs{of}{_since_text(since)}; `orch runs{_options(pipeline, (), None)}` lists them "
                   "all.")
        return
    if not rows:
        echo("no runs yet. Start one with `orch run FILE`.")
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
    total = context.lineage.count_runs(pipeline, statuses, since) if len(rows) == limit else len(rows)
    if total > len(rows):  # else 20 rows read as all there is
        which = f"{' or '.join(statuses)} " if statuses else ""
        console.print(Text(f"the last {len(rows)} of {total} {which}runs{f' of {pipeline}' if pipeline else ''}"
                           f"{_since_text(since)}; orch runs{_options(pipeline, statuses, since)} -n {total} lists "
                           "them all"), style="dim")


def _since_text(since: float | None) -> str:
    return "" if since is None else f" since {_local_time(since)}"


def _local_time(moment: float) -> str:
    """A moment as ``--since`` takes it back, local time to the second (``2026-11-20T10:00:00``)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(moment))


def _options(pipeline: str | None, statuses: tuple[str, ...], since: float | None) -> str:
    """The ``--pipeline``, ``--status`` and ``--since`` options that list the same runs again, as a shell takes them."""
    return ((f" --pipeline {shlex.quote(pipeline)}" if pipeline else "") + "".join(f" --status {s}" for s in statuses)
            + (f" --since {_local_time(since)}" if since is not None else ""))


def _no_runs_of(context: Context, pipeline: str) -> None:
    """Raise for ``--pipeline NAME`` when other pipelines have runs but NAME has none."""
    from orchestrator.errors import did_you_mean

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
    more = f" … +{len(numbers) - limit}" if len(numbers) > limit else ""  # left out, not unsaid
    return " ".join(f"{k}={v:.4g}" for k, v in numbers[:limit]) + more


def _duration(row: dict[str, Any]) -> float | None:
    return None if row["ended"] is None else row["ended"] - row["started"]


def _computed_in(run_id: str, node: str, computed_by: str) -> str:
    """Where a cached step of ``run_id`` was computed: ``run X``, or ``STEP`` of the same run."""
    origin_run, _, origin_node = computed_by.partition(":")
    if origin_run == run_id:
        return origin_node
    return f"run {origin_run}" + (f" {origin_node}" if origin_node != node else "")


def show_doc(context: Context, run_id: str) -> dict[str, Any]:
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
    # An output whose object `orch cache gc` removed since is still part of the run's record; say it
    # is gone, or `orch cache cat` of a digest `orch show` printed fails with no hint why.
    gone = context.lineage.unrecorded_artifacts(o["hash"] for s in steps for o in s["outputs"])
    for s in steps:
        for o in s["outputs"]:
            o["stored"] = o["hash"] not in gone
    return {
        "run_id": run["run_id"], "pipeline": run["pipeline"], "status": run["status"],
        "started": iso_time(run["started"]), "ended": iso_time(run["ended"]), "duration": _duration(run),
        "file": run["file"], "params": run["params"], "user": run["user"], "host": run["host"],
        "git_commit": run["git_commit"], "python": run["python"], "packages": run["packages"],
        "executor": run["executor"], "error": run["error"], "metrics": run["metrics"] or {},
        "outputs": run["outputs"], "steps": steps,
    }


@click.command()
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print the run as one JSON object.")
@click.pass_context
def show(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """Show one run: parameters, environment, and every step with why it ran.

    RUN_ID is a run id, a unique prefix of one, latest, or latest~N (N runs before the newest).
    """
    context = open_context(ctx)
    run_ref, sep, node = run_id.partition(":")
    if sep and node:  # `orch show RUN:STEP`: the step's run, or its logs and lineage
        context.lineage.step_row(context.lineage.resolve_run(run_ref), node)
        raise UserError(f"orch show takes a run, not a step: `orch show {run_ref}` shows every step of it; for "
                        f"step '{node}' alone, `orch logs {run_id}` or `orch lineage {run_id}`.")
    doc = show_doc(context, context.lineage.resolve_run(run_id))
    if as_json:
        emit_json(doc)
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
        outs = " ".join(f"{o['name']}={o['hash'][:10]}" + ("" if o["stored"] else " (removed)") for o in s["outputs"])
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


@click.command()
@click.argument("ref", metavar="RUN:STEP")
@click.option("--attempt", type=click.IntRange(min=1), default=None, help="Only this attempt (default: all).")
@click.option("--json", "as_json", is_flag=True,
              help="Print {run_id, step, status, cached_from, attempts: [{attempt, status, started, ended, error, "
                   "traceback, stdout, stderr, logs, recorded}]} as JSON.")
@click.pass_context
def logs(ctx: click.Context, ref: str, attempt: int | None, as_json: bool) -> None:
    """Print the captured stdout, stderr and log records of a step's attempts.

    RUN is a run id, a unique prefix of one, latest or latest~N; STEP a step as `orch show` lists it
    (`orch logs latest:fit_2`).
    """
    context = open_context(ctx)
    run_ref, sep, node = ref.partition(":")
    if not sep:
        raise UserError(_run_without_step(context, ref))
    run_id = context.lineage.resolve_run(run_ref)
    row = context.lineage.step_row(run_id, node)
    attempts = context.lineage.attempts(run_id, node)
    if as_json:
        emit_json(_logs_document(context, run_id, node, row, attempts, attempt))
        return
    if not attempts:
        origin_run, origin_node = context.lineage.origin(run_id, node, row)
        if row["status"] == "cached" and origin_run != run_id:
            there = f"orch logs {origin_run}:{origin_node}" + (f" --attempt {attempt}" if attempt else "")
            said = (f"step '{node}' of run {run_id} was cached: it reused the result of run {origin_run}. "
                    f"Its output: `{there}`")
            if attempt is not None:  # an attempt it did not make, as for a step that ran: exit 2
                raise UserError(f"{said}; it made no attempt of its own.")
            echo(said + ".")
            return
        if _unrecorded_attempt(node, row, 0, attempt):
            return
        made = _attempts_made(row)
        if attempt is not None and made:
            raise UserError(f"step '{node}' of run {run_id} has no attempt {attempt}; it made {made}. "
                            "Pass one of them to --attempt, or leave it out.")
        echo(f"step '{node}' of run {run_id} did not run in that run ({row['status']}); nothing captured.")
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
        echo(f"=== {node} attempt {a['attempt']} ({a['status']}) ===")
        for label in ("stdout", "stderr", "logs"):
            if a[label]:
                echo(f"--- {label} ---")
                echo(_settle_carriage_returns(a[label]).rstrip("\n"))
        if a["traceback"]:
            echo("--- traceback ---")
            echo(a["traceback"].rstrip("\n"))
        elif a["error"]:  # a timeout or a dead worker: no traceback of the step's own
            echo("--- error ---")
            echo(a["error"].rstrip("\n"))
    if attempt is None:
        _unrecorded_attempt(node, row, max(numbers), None)


def _run_without_step(context: Context, ref: str) -> str:
    """What to write instead of ``orch logs REF`` without ``:STEP``: the run's own steps when REF names a run,
    the newest run's step when it names one of those."""
    try:
        run_id = context.lineage.resolve_run(ref)
    except NotFoundError:
        try:  # a step's name alone (`orch logs fit`): of the newest run, most likely
            latest = context.lineage.resolve_run("latest")
        except NotFoundError:
            latest = None
        if latest is not None and ref in context.lineage.step_names(latest):
            return f"'{ref}' is not RUN:STEP. For step {ref} of the newest run, write `orch logs latest:{ref}`."
        return f"'{ref}' is not RUN:STEP. Write it like `orch logs 3f2a:train`."
    names = context.lineage.step_names(run_id)
    if not names:
        return f"'{ref}' names run {run_id[:12]}, which recorded no step yet. Write RUN:STEP once it has."
    listed = ", ".join(names[:5]) + (f", … ({len(names)} in all)" if len(names) > 5 else "")
    return (f"'{ref}' names run {run_id[:12]}, not one of its steps. Write RUN:STEP, such as "
            f"`orch logs {ref}:{names[-1]}` (its steps: {listed}).")


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
    """How many attempts a step made. A running row of a step in its first attempt says 0: a step
    still running, or cut short in its first attempt (a killed `orch`), is in its first. In a retry
    the row counts the attempt running, beyond the failed ones recorded (``_unrecorded_last``)."""
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
    echo(f"=== {node} attempt {last} ({row['status']}) ===\n--- nothing recorded: {why} ---")
    return True
