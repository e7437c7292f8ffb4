"""Reach earlier runs from Python (a notebook) without running anything: ``get_run``, ``load``, ``diff`` and ``lineage``.

``get_run`` rebuilds the ``Run`` that ``Pipeline.run`` returned, from the
metadata database: statuses, reasons, attempts, output digests, metrics, and
``output()`` with the shape the pipeline returned. ``load`` takes a REF as
``orch lineage`` does (``RUN:STEP``, ``RUN:STEP.OUTPUT``, a run id or
``latest``, a digest or a unique prefix of one) and loads the value through
``Context.load``, so checksums and signatures are verified as in a run.
The store is found as the CLI finds it (``store=None``: ``$ORCH_STORE``, else
the project's ``[tool.orchestrator]`` table, else ``./cache``; a leading ``~`` is the home folder) and is only read.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from orchestrator.errors import NotFoundError, UserError, short_traceback

if TYPE_CHECKING:
    from orchestrator.context import Context
    from orchestrator.results import Run
    from orchestrator.run_diff import RunDiff

__all__ = ["diff", "get_run", "lineage", "load"]

PathLike = str | os.PathLike[str]
_LATEST = ("latest", "last", "-")


@short_traceback
def get_run(ref: str = "latest", *, store: PathLike | None = None, metadata: PathLike | None = None) -> Run:
    """The ``Run`` of an earlier run: a run id, a unique prefix of one, ``latest`` or ``latest~N`` (N runs before).

    Args:
        store: the store folder or URL (default ``$ORCH_STORE``, else the project's table, else ``./cache``).
        metadata: the local folder of the metadata database, for a store behind a URL.

    Raises:
        UserError: no store there, or an unknown, empty or ambiguous run id (as ``orch show`` says).
    """
    ctx = _open(store, metadata)
    return _rebuild(ctx, ctx.lineage.resolve_run(_text(ref)))


@short_traceback
def diff(a: str | None = None, b: str = "latest", *, store: PathLike | None = None,
         metadata: PathLike | None = None) -> RunDiff:
    """What differs between two earlier runs, as ``orch diff A B`` prints it.

    A and B are run ids, unique prefixes, ``latest``, ``latest~N`` or a model's
    ``NAME@VERSION``; ``a=None`` is the run of B's pipeline before B. The ``RunDiff`` holds the changed parameters, environment
    and packages, the steps only in one run, each step whose key differs with
    its ``reasons`` and ``kinds``, the changed metrics with their ``delta``;
    ``differs`` says whether anything does, ``summary()`` counts it, and
    ``to_json()`` is the ``orch diff --json`` document.

    Raises:
        UserError: no store there, or an unknown, empty or ambiguous REF.
    """
    from orchestrator.run_diff import diff_runs

    return diff_runs(_open(store, metadata).lineage, None if a is None else _text(a), _text(b))


@short_traceback
def lineage(ref: str | os.PathLike[str], direction: str = "upstream", depth: int | None = None, *,
            store: PathLike | None = None, metadata: PathLike | None = None) -> dict[str, Any]:
    """What produced REF (``direction="upstream"``) or what was built from it (``"downstream"``), as data.

    The document ``orch lineage REF --format json`` prints, from the same walk:
    ``{direction, roots, nodes, edges}`` (and ``model`` for ``NAME@VERSION``,
    ``other_contents`` for a file). A step node holds the ``params``, ``code``
    and ``code_parts`` of that step run, a file node its ``path`` and content
    ``digest``, an artifact node its ``digest``. REF is what ``orch lineage`` takes:
    a run id or prefix, ``latest``, ``RUN:STEP``, ``RUN:STEP.OUTPUT``, ``NAME@VERSION``,
    a digest prefix, or a file or folder path (text or a ``Path``).

    Args:
        depth: how many steps beyond REF to follow (``None``: all of them; 0: REF alone).

    Raises:
        UserError: no store there, an unknown or ambiguous REF (``orch lineage``'s line), or a
            ``direction`` or ``depth`` it cannot take.
    """
    from orchestrator.provenance import lineage_doc, walk

    if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 0):
        raise UserError(f"depth must be a whole number of steps, 0 or more, or None for all of them; got {depth!r}.")
    if direction not in ("upstream", "downstream"):
        raise UserError(f"direction must be 'upstream' or 'downstream', not {direction!r}.")
    if isinstance(ref, os.PathLike):  # a file REF as a notebook holds it: Path("data/raw.csv")
        ref = os.fspath(ref)
    return lineage_doc(walk(_open(store, metadata).lineage, _text(ref), direction, depth))


@short_traceback
def load(ref: str, *, store: PathLike | None = None, metadata: PathLike | None = None) -> Any:
    """A value an earlier run produced, loaded (checksum and signature verified) from the store.

    ``RUN:STEP`` is the step's output (a tuple in declared order for a step
    with several), ``RUN:STEP.NAME`` one named output, a run id or ``latest``
    the pipeline's return value (as ``get_run(ref).output()``), and a digest or
    a unique prefix of one (``orch show``, ``orch cache ls``) that artifact.
    A step that was cached in RUN loads the output of the run it reused.

    Raises:
        UserError: an unknown run, step, output or digest; a step that failed or was
            skipped; an artifact removed by ``orch cache gc``, or damaged.
    """
    from orchestrator.results import load_output

    ref = _text(ref)
    ctx = _open(store, metadata)
    if not ref:
        raise NotFoundError("an empty REF is not valid. Pass RUN:STEP, a run id or `latest`, or a digest "
                            "(see `orch runs` and `orch cache ls`).")
    if ":" in ref:
        run_ref, node = ref.split(":", 1)
        run_id = ctx.lineage.resolve_run(run_ref)
        return _load_step(ctx, run_id, node)
    if "@" in ref:
        raise UserError(f"'{ref}' names a model version: load it with "
                        f"orchestrator.registry.load_model({ref!r}, store=...).")
    if ref.lower() in _LATEST or ref.startswith(("latest~", "last~")):
        return _rebuild(ctx, ctx.lineage.resolve_run(ref)).output()
    if not all(c in "0123456789abcdef" for c in ref.lower()):
        raise NotFoundError(f"'{ref}' is not a run id, RUN:STEP or digest in this store. See `orch runs` and "
                            "`orch cache ls`.")
    kind, found = _by_prefix(ctx, ref)
    if kind == "run":
        return _rebuild(ctx, found).output()
    return load_output(ctx, found, f"artifact {found[:12]}")


def _open(store: PathLike | None, metadata: PathLike | None) -> Context:
    """The store, read as the CLI reads it: never created, and runs whose process died shown interrupted."""
    from orchestrator.context import Context
    from orchestrator.spelling import PYTHON

    for option, value in (("store", store), ("metadata", metadata)):
        if value is not None and not isinstance(value, (str, os.PathLike)):
            raise UserError(f"{option} must be a folder path{' or a URL' if option == 'store' else ''}, "
                            f"got {value!r} ({type(value).__name__}).")
    ctx = Context.open(store, metadata, create=False, spelling=PYTHON)  # a fix names store=, metadata=
    ctx.lineage.mark_dead_runs()
    return ctx


def _text(ref: Any) -> str:
    if not isinstance(ref, str):
        raise UserError(f"a REF is text (a run id, RUN:STEP or a digest), not {type(ref).__name__} {ref!r}.")
    return ref.strip()


def _rebuild(ctx: Context, run_id: str) -> Run:
    """The ``Run`` object ``Pipeline.run`` returned for ``run_id``, from its records."""
    from orchestrator.results import Run, StepResult, decode_result
    from orchestrator.tracing import Output

    lineage = ctx.lineage
    row = lineage.run(run_id)
    steps: dict[str, StepResult] = {}
    for s in lineage.steps(run_id):
        if s["status"] == "map":
            continue  # a map is no step of its own (as on a live Run)
        outputs = lineage.ordered_outputs(s["key"], {o["name"]: o["hash"] for o in s["outputs"]})
        # A cached step's row has no duration; the live Run says 0.0 for it, and so does this one.
        duration = 0.0 if s["duration"] is None and s["status"] == "cached" else s["duration"]
        steps[s["node"]] = StepResult(s["node"], s["status"], s["reason"] or "", int(s["attempts"] or 0),
                                      duration, s["error"], s["key"], outputs)
    error = f"{row['error']} (details: `orch show {run_id}`)" if row["error"] else None  # as a live Run says
    run = Run(run_id, row["pipeline"], row["status"], steps, ctx.location, error=error,
              metadata=_absolute(ctx.metadata))
    recorded = lineage.decode(row.get("result"), f"runs.result of run {run_id}")
    if recorded is not None:
        try:
            run.result, leaves = decode_result(recorded)
        except ValueError as exc:  # the check `orch doctor` makes too (Lineage.damaged_values)
            from orchestrator.errors import DamagedRecordError

            raise DamagedRecordError(lineage.path, f"runs.result of run {run_id}",
                                     f"not a recorded result ({exc})") from None
        for out, digest in leaves:  # the digest it returned, even if its step's records were cleared
            steps.setdefault(out.node, StepResult(out.node, "cached", source=(run.store, run.metadata, run_id))) \
                .outputs.setdefault(out.name, digest)
    elif row["status"] == "succeeded" and row["outputs"] is not None:
        # Recorded before runs kept their result's shape: each digest it returned is found among
        # its steps' outputs; a list stays a list (a tuple was recorded as one).
        found = {digest: Output(node, name) for node, s in steps.items() for name, digest in s.outputs.items()}

        def match(value: Any) -> Any:
            if isinstance(value, str):
                if value not in found:
                    run.unavailable = (f"run {run_id} was recorded by an older orchestrator, before runs kept "
                                       "what their pipeline returned; load each step with "
                                       f"orchestrator.load('{run_id}:STEP').")
                return found.get(value)
            if isinstance(value, list):
                return [match(v) for v in value]
            if isinstance(value, dict):
                return {k: match(v) for k, v in value.items()}
            return None

        run.result = match(row["outputs"])
    return run


def _load_step(ctx: Context, run_id: str, ref: str) -> Any:
    """What step ``ref`` (``STEP`` or ``STEP.OUTPUT``) of run ``run_id`` returned."""
    from orchestrator.results import load_output

    lineage = ctx.lineage
    node, name = ref, None
    known = {n for (n,) in lineage.conn.execute("SELECT node FROM steps WHERE run_id=?", (run_id,))}
    if node not in known and "." in node and node.rsplit(".", 1)[0] in known and not node.endswith(".map"):
        node, name = node.rsplit(".", 1)
    row = lineage.step_row(run_id, node)  # an unknown step: the message `orch lineage` gives
    short = run_id[:12]
    if row["status"] not in ("ran", "cached"):
        see = f"`orch logs {short}:{node}`" if row["status"] == "failed" else f"`orch show {short}`"
        why = f" ({row['error'] or row['reason']})" if row["error"] or row["reason"] else ""
        raise UserError(f"step '{node}' of run {short} {row['status']}{why}: it has no output. See {see}, or "
                        "load it from a run where it succeeded.")
    _, edges = lineage.flow_edges(run_id, node, row)
    outputs = lineage.ordered_outputs(row["key"], {e[1]: e[2] for e in edges if e[0] == "out"})
    if not outputs:
        raise UserError(f"no output of step '{node}' of run {short} is recorded (its records were cleared). "
                        "Run the pipeline again to make it again.")
    where = f"of step '{node}' of run {short}"
    if name is not None:
        if name not in outputs:
            raise NotFoundError(f"step '{node}' of run {short} has no output '{name}'; its outputs are "
                                f"{', '.join(outputs)}. Write {short}:{node} for all of them.")
        return load_output(ctx, outputs[name], f"output '{name}' {where}", run_id)
    values = [load_output(ctx, digest, f"output '{n}' {where}", run_id) for n, digest in outputs.items()]
    return values[0] if len(values) == 1 else tuple(values)


def _by_prefix(ctx: Context, ref: str) -> tuple[str, str]:
    """("run", run id) or ("artifact", digest) for a hex REF; a file's content or ambiguity is an error."""
    conn = ctx.lineage.conn
    runs = [str(r) for (r,) in conn.execute(
        "SELECT run_id FROM runs WHERE run_id >= ? AND run_id < ? ORDER BY run_id LIMIT 2", (ref, ref + "\uffff"))]
    if runs and runs[0] == ref:
        return "run", ref
    prefix = ref.lower()
    digests = {str(d) for (d,) in conn.execute(
        "SELECT digest FROM artifacts WHERE digest >= ? AND digest < ? LIMIT 2", (prefix, prefix + "g"))}
    # An artifact `cache gc` removed keeps its runs' edges: loading it then says what happened.
    digests |= {str(d) for (d,) in conn.execute(
        "SELECT DISTINCT digest FROM edges WHERE path IS NULL AND digest >= ? AND digest < ? LIMIT 2",
        (prefix, prefix + "g"))}
    files = conn.execute("SELECT DISTINCT digest, path FROM edges WHERE path IS NOT NULL AND digest >= ? "
                         "AND digest < ? LIMIT 2", (prefix, prefix + "g")).fetchall()
    files = [f for f in files if f[0] not in digests]
    found = len(runs) + len(digests) + len({f[0] for f in files})
    if found == 0:
        raise NotFoundError(f"no run id or digest in this store begins with '{ref}'. See `orch runs` and "
                            "`orch cache ls`.")
    if found > 1:
        kinds = [k for k in ("a run id" if len(runs) == 1 else "several run ids" if runs else "",
                             "a digest" if len(digests) + len(files) == 1 else
                             "several digests" if digests or files else "") if k]
        raise NotFoundError(f"'{ref}' is ambiguous: it begins {' and '.join(kinds)}. Give more characters "
                            "(see `orch runs` and `orch cache ls`).")
    if runs:
        return "run", runs[0]
    if files:
        raise UserError(f"digest {files[0][0][:12]} is the content of the file {files[0][1]} that a step read; "
                        "the store keeps no copy of input files. Open the file itself.")
    return "artifact", digests.pop()


def _absolute(metadata: str | None) -> str | None:
    """The metadata path as the run was opened with, absolute: a notebook may change folder later."""
    return None if metadata is None else os.path.abspath(os.path.expanduser(metadata))
