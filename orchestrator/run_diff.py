"""What differs between two recorded runs: parameters, environment, steps and why, metrics, models.

``orch diff A B`` and ``orchestrator.diff(a, b)`` answer "yesterday's model
scored 0.91, today's 0.87: what changed?" from the metadata database alone.
A step whose key differs is explained from the key parts both runs recorded,
in the words ``orch plan`` and ``orch show`` use ("code of `clean` changed",
"parameter `alpha` changed (0.5 → 0.1)", "input `raw` changed"); nothing is
re-computed, no pipeline is imported and no artifact is loaded. A cached
step recorded only its key: its parts are those of the step run that
computed that key. A run made by an older version may lack some parts; such
a step is said to differ with its parts "not recorded", never a traceback.

Only the two runs' rows are read in full; parts and outputs are read only
for the steps whose keys differ, so a 1,000-step run in a store of 1,000 runs
compares in a few queries. This module must not print (``cli_diff`` does).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orchestrator.errors import DamagedRecordError, NotFoundError, UserError

if TYPE_CHECKING:
    from orchestrator.lineage_db import Lineage

#: The kinds of change a step can have, in the order the summary counts them.
KINDS = ("code", "package", "version", "parameter", "file", "input", "output", "status", "not run", "not recorded")
#: Environment fields of a run compared, with the label a display gives them.
ENVIRONMENT = (("python", "python"), ("git_commit", "git commit"), ("host", "host"), ("user", "user"),
               ("executor", "executor"), ("file", "pipeline file"))
NOT_RECORDED = "not recorded"
DAMAGED = "damaged"
_WHY = {NOT_RECORDED: " (a run made by an older version)", DAMAGED: " (`orch doctor` names it)"}
_KEPT = ("ran", "cached")  # a step run with a result; its key names it


@dataclass(frozen=True)
class Change:
    """One named value that differs: ``a`` in the first run, ``b`` in the second (None: absent)."""

    name: str
    a: Any
    b: Any

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "a": self.a, "b": self.b}


@dataclass(frozen=True)
class MetricChange(Change):
    """A metric that differs, and ``b - a`` when both are numbers."""

    delta: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "delta": self.delta}


@dataclass(frozen=True)
class ParamChange(Change):
    """A run parameter that differs, and for a config object (a dataclass, a pydantic model, a dict of
    hyperparameters) each of its fields that does: ``n_estimators: 30 → 40``, ``opt.beta: 0.9 → 0.8``.

    ``fields`` is empty for a value that has none (a number, a list, a path), as the steps' reasons
    name them (``shown_fields``): the one field edited, not two whole values to compare by eye.
    """

    fields: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "fields": list(self.fields)}


@dataclass(frozen=True)
class StepOnly:
    """A step one run has and the other has no record of; ``note`` says why when it can tell."""

    name: str
    status: str
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "note": self.note or None}


@dataclass(frozen=True)
class StepChange:
    """A step both runs have whose key (or outcome) differs.

    ``reasons`` are the differences of its key parts in ``orch plan``'s words;
    ``kinds`` classify them (see ``KINDS``); ``outputs`` is ``same`` (the
    change did not reach its outputs: early cutoff), ``differ`` (then
    ``changed_outputs`` names them) or ``unknown`` (a side has no outputs).
    """

    name: str
    a_status: str
    b_status: str
    reasons: tuple[str, ...]
    kinds: tuple[str, ...]
    outputs: str
    changed_outputs: tuple[str, ...] = ()
    a_key: str | None = None
    b_key: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "a_status": self.a_status, "b_status": self.b_status, "a_key": self.a_key,
                "b_key": self.b_key, "reasons": list(self.reasons), "kinds": list(self.kinds),
                "outputs": self.outputs, "changed_outputs": list(self.changed_outputs)}


@dataclass(frozen=True)
class RunSide:
    """One of the two runs compared, and the model version it was named by (``NAME@VERSION``), if any."""

    ref: str
    run_id: str
    pipeline: str
    status: str
    started: float
    error: str | None = None
    model: dict[str, Any] | None = None  # {name, version, metrics, gate}

    def to_json(self) -> dict[str, Any]:
        started = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(self.started)) + \
            f".{int(self.started % 1 * 1000):03d}"  # as `orch show --json` writes it
        return {"ref": self.ref, "run_id": self.run_id, "pipeline": self.pipeline, "status": self.status,
                "started": started, "error": self.error, "model": self.model}


@dataclass(frozen=True)
class RunDiff:
    """Everything that differs between run ``a`` and run ``b``; empty tuples where nothing does."""

    a: RunSide
    b: RunSide
    params: tuple[ParamChange, ...] = ()
    environment: tuple[Change, ...] = ()
    packages: tuple[Change, ...] = ()
    only_in_a: tuple[StepOnly, ...] = ()
    only_in_b: tuple[StepOnly, ...] = ()
    steps: tuple[StepChange, ...] = ()
    identical: int = 0
    metrics: tuple[MetricChange, ...] = ()
    model: tuple[Change, ...] = ()
    kinds: dict[str, int] = field(default_factory=dict)

    @property
    def same_run(self) -> bool:
        return self.a.run_id == self.b.run_id

    @property
    def same_pipeline(self) -> bool:
        return self.a.pipeline == self.b.pipeline

    @property
    def differs(self) -> bool:
        """Whether anything at all differs (``orch diff --exit-code`` exits 1 then)."""
        return bool(self.params or self.environment or self.packages or self.only_in_a or self.only_in_b
                    or self.steps or self.metrics or self.model or self.a.status != self.b.status
                    or not self.same_pipeline)

    def summary(self) -> str:
        """The last line: how many steps differ and of which kinds, and how many are identical."""
        if self.same_run and not self.model:
            return "the same run twice: nothing differs"
        counted = ", ".join(f"{n} {kind}" for kind, n in self.kinds.items())
        parts = [f"{_plural(len(self.steps), 'step')} differ{'s' if len(self.steps) == 1 else ''}"
                 + (f": {counted}" if counted else "")]
        parts.extend(f"{len(only)} only in {side}" for side, only in (("A", self.only_in_a), ("B", self.only_in_b))
                     if only)
        parts.append(f"{self.identical} identical")
        return "; ".join(parts)

    def to_json(self) -> dict[str, Any]:
        """The ``orch diff --json`` document (its keys are listed in docs/cli.md and stay stable)."""
        return {
            "a": self.a.to_json(), "b": self.b.to_json(),
            "same_pipeline": self.same_pipeline, "differs": self.differs,
            "params": [c.to_json() for c in self.params],
            "environment": [c.to_json() for c in self.environment],
            "packages": [c.to_json() for c in self.packages],
            "only_in_a": [s.to_json() for s in self.only_in_a],
            "only_in_b": [s.to_json() for s in self.only_in_b],
            "steps": [s.to_json() for s in self.steps],
            "metrics": [m.to_json() for m in self.metrics],
            "status": {"a": self.a.status, "b": self.b.status},
            "model": [c.to_json() for c in self.model],
            "summary": {"differ": len(self.steps), "identical": self.identical, "kinds": dict(self.kinds),
                        "only_in_a": len(self.only_in_a), "only_in_b": len(self.only_in_b),
                        "text": self.summary()},
        }


def resolve_side(lineage: Lineage, ref: str) -> RunSide:
    """The run a REF names: a run id or unique prefix, ``latest``, ``latest~N``, or a model's ``NAME@VERSION``.

    Raises:
        NotFoundError: an unknown, ambiguous or empty REF (as ``orch show`` and ``orch models show`` say).
    """
    ref = ref.strip()
    model = None
    if ":" in ref and "@" not in ref:
        raise UserError(f"orch diff compares two runs, not steps: pass run ids (`orch diff RUN_A RUN_B` gives each "
                        f"step's reason); for one step, `orch show {ref.partition(':')[0]}` or "
                        f"`orch lineage {ref}`.")
    if "@" in ref:
        from orchestrator.registry import Registry

        row = Registry(lineage).resolve(ref)
        if not row.get("run_id"):
            raise NotFoundError(f"model {ref} (v{row['version']}) has no recorded run to compare.")
        run_id = str(row["run_id"])
        model = {"name": row["name"], "version": int(row["version"]), "metrics": row.get("metrics") or {},
                 "gate": row.get("gate")}
    else:
        try:
            run_id = lineage.resolve_run(ref)
        except NotFoundError:
            _refuse_bare_model(lineage, ref)
            raise
    run = lineage.row("SELECT run_id, pipeline, status, started, error FROM runs WHERE run_id=?", (run_id,))
    if run is None:
        raise NotFoundError(f"no run '{run_id}' in this store. List runs with `orch runs`.")
    return RunSide(ref, run_id, str(run["pipeline"]), str(run["status"]), float(run["started"]), run["error"],
                   model)


def _refuse_bare_model(lineage: Lineage, ref: str) -> None:
    """``orch diff churn latest``: a model's name where a run was expected (orch serve, monitor and
    models show take a bare NAME) was 'no run churn'; it names the versions to compare instead."""
    from orchestrator.registry import Registry

    registry = Registry(lineage)
    if ref not in registry.names():
        return
    have = [str(v["version"]) for v in registry.versions(ref)]
    listed = ", ".join(have) if len(have) <= 10 else f"{have[0]} to {have[-1]}"
    raise NotFoundError(f"'{ref}' is a model, not a run: name one of its versions, {ref}@production, "
                        f"{ref}@latest or {ref}@VERSION (it has {listed or 'none'}), e.g. "
                        f"`orch diff {ref}@{have[-2] if len(have) > 1 else 'production'} {ref}@latest`.")


def diff_runs(lineage: Lineage, a_ref: str | None, b_ref: str = "latest") -> RunDiff:
    """What differs between the runs ``a_ref`` and ``b_ref`` name (see ``resolve_side``).

    ``a_ref`` None is the run of B's pipeline started before B: "what changed since last time",
    also when other pipelines ran in between.
    """
    b = resolve_side(lineage, b_ref)
    a = resolve_side(lineage, a_ref if a_ref is not None else _run_before(lineage, b))
    if a.run_id == b.run_id and a.model == b.model:
        count = lineage.conn.execute("SELECT count(*) FROM steps WHERE run_id=?", (a.run_id,)).fetchone()[0]
        return RunDiff(a, b, identical=int(count))
    run_a, run_b = _run_fields(lineage, a.run_id), _run_fields(lineage, b.run_id)
    steps_a, steps_b = _steps(lineage, a.run_id), _steps(lineage, b.run_id)
    only_a = _only_in(steps_a, steps_b, b)
    only_b = _only_in(steps_b, steps_a, a)
    changed: list[StepChange] = []
    identical = 0
    other_outputs = _other_outputs(lineage, steps_a, steps_b)
    for name, row_a in steps_a.items():
        row_b = steps_b.get(name)
        if row_b is None:
            continue
        change = other_outputs.get(name) or _step_change(lineage, row_a, row_b)
        if change is None:
            identical += 1
        else:
            changed.append(change)
    kinds: dict[str, int] = {}
    for kind in KINDS:
        n = sum(kind in c.kinds for c in changed)
        if n:
            kinds[kind] = n
    environment = [Change(label, run_a[column], run_b[column]) for column, label in ENVIRONMENT
                   if run_a[column] != run_b[column]]
    # A hand-edited or garbled record compares as empty: said, lest "no parameter changed" be believed.
    environment += [Change(column, *(DAMAGED + _WHY[DAMAGED] if column in run["damaged"] else "recorded"
                                     for run in (run_a, run_b)))
                    for column in dict.fromkeys(run_a["damaged"] + run_b["damaged"])]
    packages: tuple[Change, ...] = ()
    if (run_a["packages"] is None) != (run_b["packages"] is None):  # a run made before packages were recorded
        environment.append(Change("packages", *(NOT_RECORDED if p is None else f"{len(p)} recorded"
                                                for p in (run_a["packages"], run_b["packages"]))))
    else:
        packages = _changes(run_a["packages"], run_b["packages"])
    return RunDiff(
        a, b,
        params=_param_changes(run_a["params"], run_b["params"]),
        environment=tuple(environment), packages=packages,
        only_in_a=only_a, only_in_b=only_b, steps=tuple(changed), identical=identical,
        metrics=_run_metric_changes(run_a["metrics"], run_b["metrics"], a, b),
        model=_model_changes(a.model, b.model), kinds=kinds)


def _run_before(lineage: Lineage, b: RunSide) -> str:
    """The id of the run of B's pipeline that started last before B."""
    row = lineage.conn.execute("SELECT run_id FROM runs WHERE pipeline=? AND started < ? ORDER BY started DESC "
                               "LIMIT 1", (b.pipeline, b.started)).fetchone()
    if row is None:
        raise NotFoundError(f"run {b.run_id[:12]} is the first run of pipeline '{b.pipeline}' in this store: "
                            "nothing before it to compare with. Pass two runs, `orch diff A B` (see `orch runs`).")
    return str(row[0])


def _run_fields(lineage: Lineage, run_id: str) -> dict[str, Any]:
    """A run's parameters, environment and metrics; a damaged JSON column is None, and named in ``damaged``."""
    row = lineage.row("SELECT params, packages, metrics, python, git_commit, host, user, executor, file "
                      "FROM runs WHERE run_id=?", (run_id,)) or {}
    row["damaged"] = []
    for column in ("params", "packages", "metrics"):
        text = row.get(column)
        row[column] = _decoded(lineage, text, f"runs.{column} of run {run_id}")
        if text and row[column] is None:
            row["damaged"].append(column)
    return row


def _decoded(lineage: Lineage, text: Any, what: str) -> dict[str, Any] | None:
    """The JSON object ``text`` holds; None when empty or damaged (``orch doctor`` names a damaged value)."""
    if not text:
        return None
    try:
        value = lineage.decode(text, what)
    except DamagedRecordError:
        return None
    return value if isinstance(value, dict) else None


def _steps(lineage: Lineage, run_id: str) -> dict[str, dict[str, Any]]:
    """Each step record of a run by node, in DAG order; key parts left as JSON text until needed."""
    rows = lineage.rows("SELECT node, status, reason, key, key_parts, origin, error, started FROM steps WHERE run_id=? "
                        "ORDER BY position", (run_id,))
    return {str(r["node"]): r | {"run_id": run_id} for r in rows}


def _only_in(steps: dict[str, dict[str, Any]], other_steps: dict[str, dict[str, Any]],
             other: RunSide) -> tuple[StepOnly, ...]:
    """The steps of one run the ``other`` run has no record of, in pipeline order.

    One whose key a step only the other run has is the same computation under
    another name (``fit.alias("fit_small")``, a call moved in the body): said so.
    """
    theirs = {str(row["key"]): name for name, row in other_steps.items() if row["key"] and name not in steps}
    return tuple(_only(row, other, other_steps, theirs.get(str(row["key"])) if row["key"] else None)
                 for name, row in steps.items() if name not in other_steps)


def _only(row: dict[str, Any], other: RunSide, other_steps: dict[str, dict[str, Any]],
          renamed: str | None) -> StepOnly:
    """A step the ``other`` run has no record of: renamed, not in its pipeline, or not reached when it stopped."""
    note = ""
    if renamed is not None:
        note = f"the same computation (key) as '{renamed}' of the other run: renamed?"
    elif other.status in ("failed", "interrupted", "running"):
        note = f"the other run ({other.status}) stopped before it started, or its pipeline has no such step"
    elif not other_steps:
        note = "the other run recorded no step"
    return StepOnly(str(row["node"]), str(row["status"]), note)


def _step_change(lineage: Lineage, row_a: dict[str, Any], row_b: dict[str, Any]) -> StepChange | None:
    """How a step both runs recorded differs, or None when its key and outcome are the same."""
    key_a, key_b = row_a["key"], row_b["key"]
    status_a, status_b = str(row_a["status"]), str(row_b["status"])
    if key_a and key_a == key_b and (status_a in _KEPT) == (status_b in _KEPT):
        return None  # the same computation, ran or cached alike (unless it was computed again: _other_outputs)
    if not key_a and not key_b and status_a == status_b:
        return None  # not reached in either run (skipped after the same failure): nothing to compare
    if not key_a or not key_b:
        reasons = []
        for side, row in (("A", row_a), ("B", row_b)):
            if not row["key"]:
                said = row["error"] or row["reason"]
                reasons.append(f"not run in {side}: {row['status']}" + (f" ({said})" if said else ""))
        return StepChange(str(row_a["node"]), status_a, status_b, tuple(reasons), ("not run",), "unknown",
                          a_key=key_a, b_key=key_b)
    reasons, kinds = [], []
    if key_a != key_b:
        (parts_a, damaged_a), (parts_b, damaged_b) = _parts(lineage, row_a), _parts(lineage, row_b)
        if parts_a is None or parts_b is None:
            states: dict[str, list[str]] = {}  # not recorded / damaged -> the sides so
            for side, parts, damaged in (("A", parts_a, damaged_a), ("B", parts_b, damaged_b)):
                if parts is None:
                    states.setdefault(DAMAGED if damaged else NOT_RECORDED, []).append(side)
            said = ", and ".join(f"{state} in {' and '.join(sides)}{_WHY[state]}" for state, sides in states.items())
            reasons.append(f"its key changed; what it is made of is {said}")
            kinds.append(NOT_RECORDED)
        else:
            from orchestrator.cache import key_changes

            reasons.extend(key_changes(parts_a, parts_b))
            kinds.extend(_kinds(parts_a, parts_b))
            if not reasons:  # equal parts, other keys: an upgrade changed how keys are made
                reasons.append("its key changed, though its code, parameters and inputs are as recorded")
                kinds.append(NOT_RECORDED)
    for side, row in (("A", row_a), ("B", row_b)):
        if row["status"] not in _KEPT:
            said = row["error"] or row["reason"]
            reasons.append(f"{row['status']} in {side}" + (f": {said}" if said else ""))
            if "status" not in kinds:
                kinds.append("status")
    outputs, changed = _compare_outputs(lineage, row_a, row_b)
    return StepChange(str(row_a["node"]), status_a, status_b, tuple(reasons), tuple(kinds), outputs,
                      tuple(changed), key_a, key_b)


def _other_outputs(lineage: Lineage, steps_a: dict[str, dict[str, Any]],
                   steps_b: dict[str, dict[str, Any]]) -> dict[str, StepChange]:
    """The steps of the same key in both runs whose outputs differ all the same, by node.

    Their key was computed twice (``--rerun``, ``--no-cache``, after ``cache gc``) and gave
    another result: the step is not deterministic, or reads what its key cannot see. Said
    identical, the steps after it read ``input `model` changed`` with no step that changed it.
    Only pairs that name two computations are compared, their outputs read with one query per
    run that computed them: a 1,000-step run compared with one that reused it reads nothing more.
    """
    pairs: dict[str, tuple[dict[str, Any], dict[str, Any], tuple[str, str], tuple[str, str]]] = {}
    for name, row_a in steps_a.items():
        row_b = steps_b.get(name)
        if row_b is None or not row_a["key"] or row_a["key"] != row_b["key"] or \
                row_a["status"] not in _KEPT or row_b["status"] not in _KEPT:
            continue
        origin_a = lineage.origin(str(row_a["run_id"]), name, row_a)
        origin_b = lineage.origin(str(row_b["run_id"]), name, row_b)
        if origin_a != origin_b:
            pairs[name] = (row_a, row_b, origin_a, origin_b)
    made: dict[tuple[str, str], dict[str, str]] = {}
    for run_id in {origin[0] for pair in pairs.values() for origin in pair[2:]}:
        for node, name, digest in lineage.conn.execute(
                "SELECT node, name, digest FROM edges WHERE run_id=? AND direction='out'", (run_id,)):
            made.setdefault((str(run_id), str(node)), {})[str(name)] = str(digest)
    found = {}
    for node, (row_a, row_b, origin_a, origin_b) in pairs.items():
        out_a, out_b = made.get(origin_a), made.get(origin_b)
        if not out_a or not out_b or out_a == out_b:
            continue
        # The side that computed it last made the other output; its reason says why it ran (--rerun).
        ran = [(float(row["started"] or 0), side, row) for side, row in (("A", row_a), ("B", row_b))
               if row["status"] == "ran"]
        again = ""
        if ran:
            _, side, row = max(ran, key=lambda r: r[0])
            again = f", computed again in {side}" + (f" ({row['reason']})" if row["reason"] else "")
        reason = (f"the same key made another output{again}: the step is not deterministic, or reads what its "
                  "key cannot see (a clock, an environment variable, a file not passed as a parameter)")
        differ = sorted(n for n in set(out_a) | set(out_b) if out_a.get(n) != out_b.get(n))
        found[node] = StepChange(node, str(row_a["status"]), str(row_b["status"]), (reason,), ("output",),
                                 "differ", tuple(differ), row_a["key"], row_b["key"])
    return found


def _parts(lineage: Lineage, row: dict[str, Any]) -> tuple[dict[str, Any] | None, bool]:
    """The key parts of a step run, and whether a damaged record of them was met on the way.

    Its own, else those any step run recorded under its key, else the cache
    index's: a cached step records its key alone, and the same key was made
    from the same parts, which the step run that computed it recorded. Each
    place is read only when the one before had nothing.
    """
    damaged = False
    for text, what in _recorded_parts(lineage, row):
        parts = _decoded(lineage, text, what)
        if parts is not None:
            return parts, False
        damaged = damaged or bool(text)
    return None, damaged


def _recorded_parts(lineage: Lineage, row: dict[str, Any]) -> Iterator[tuple[Any, str]]:
    """Where a step run's key parts may be recorded, (JSON text, what it is), nearest first."""
    key = row["key"]
    yield row["key_parts"], f"steps.key_parts of {row['run_id']}:{row['node']}"
    if row["origin"]:  # the step run whose result a cached one reused: one read by primary key
        run_id, _, node = str(row["origin"]).partition(":")
        found = lineage.conn.execute("SELECT key_parts FROM steps WHERE run_id=? AND node=? AND key=?",
                                     (run_id, node, key)).fetchone()
        if found is not None and found[0]:
            yield found[0], f"steps.key_parts of {run_id}:{node}"
    found = lineage.conn.execute("SELECT key_parts FROM steps WHERE key=? AND key_parts IS NOT NULL AND "
                                 "NOT (run_id=? AND node=?) LIMIT 1", (key, row["run_id"], row["node"])).fetchone()
    if found is not None:
        yield found[0], f"steps.key_parts of key {key}"
    cached = lineage.conn.execute("SELECT parts FROM cache WHERE key=?", (key,)).fetchone()
    if cached is not None:
        yield cached[0], f"cache.parts of key {key}"


def _kinds(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Which kinds of change (``KINDS``) make two key parts differ."""
    from orchestrator.cache import class_code_changed

    kinds = []
    code_a, code_b = old.get("code_parts") or {}, new.get("code_parts") or {}
    changed_code = [n for n in set(code_a) | set(code_b) if code_a.get(n) != code_b.get(n)]
    params_a, params_b = old.get("params") or {}, new.get("params") or {}
    files_a, files_b = old.get("files") or {}, new.get("files") or {}
    changed_params = [n for n in set(params_a) | set(params_b) if params_a.get(n) != params_b.get(n)]
    # A config parameter of the user's class whose code changed (it prints the same, its files as they
    # were) is said as code.
    code_params = [n for n in changed_params if class_code_changed(n, old, new)]
    file_params = [n for n in changed_params if n in files_a and n in files_b and n not in code_params]
    if code_params or (old.get("code") != new.get("code") and (
            any(not n.startswith("pkg:") for n in changed_code) or (not changed_code and not changed_params))):
        kinds.append("code")
    if any(n.startswith("pkg:") for n in changed_code):
        kinds.append("package")
    if old.get("version") != new.get("version"):
        kinds.append("version")
    if len(file_params) + len(code_params) < len(changed_params):
        kinds.append("parameter")
    if file_params:
        kinds.append("file")
    if (old.get("inputs") or {}) != (new.get("inputs") or {}):
        kinds.append("input")
    return [k for k in KINDS if k in kinds]


def _compare_outputs(lineage: Lineage, row_a: dict[str, Any], row_b: dict[str, Any]) -> tuple[str, list[str]]:
    """``same``/``differ``/``unknown`` for a step's outputs in the two runs, and the names that differ."""
    out_a, out_b = _outputs(lineage, row_a), _outputs(lineage, row_b)
    if not out_a or not out_b:
        return "unknown", []
    if out_a == out_b:
        return "same", []
    return "differ", sorted(n for n in set(out_a) | set(out_b) if out_a.get(n) != out_b.get(n))


def _outputs(lineage: Lineage, row: dict[str, Any]) -> dict[str, str]:
    """A step run's outputs (name → digest): its edges, or those of the step run it reused."""
    if row["status"] not in _KEPT:
        return {}
    run_id, node = lineage.origin(str(row["run_id"]), str(row["node"]), row)
    return {str(name): str(digest) for name, digest in lineage.conn.execute(
        "SELECT name, digest FROM edges WHERE run_id=? AND node=? AND direction='out'", (run_id, node))}


def _changes(a: dict[str, Any] | None, b: dict[str, Any] | None) -> tuple[Change, ...]:
    """Each key whose value differs between two recorded mappings, in ``a``'s order then ``b``'s."""
    a, b = a or {}, b or {}
    return tuple(Change(name, a.get(name), b.get(name)) for name in dict.fromkeys([*a, *b])
                 if name not in a or name not in b or _text(a[name]) != _text(b[name]))


def _text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _param_changes(a: dict[str, Any] | None, b: dict[str, Any] | None) -> tuple[ParamChange, ...]:
    """The parameters that differ, each with the fields of a config object that do."""
    from orchestrator.dag import without_address
    from orchestrator.shown_fields import changed_fields

    def plain(value: Any) -> Any:  # a repr recorded with an address differs in every process
        return without_address(value) if isinstance(value, str) else value

    return tuple(ParamChange(c.name, c.a, c.b, tuple(changed_fields(plain(c.a), plain(c.b))))
                 for c in _changes(a, b))


def _metric_changes(a: dict[str, Any] | None, b: dict[str, Any] | None) -> tuple[MetricChange, ...]:
    return tuple(MetricChange(c.name, c.a, c.b, _delta(c.a, c.b)) for c in _changes(a, b))


# The run metrics registering a model records (registry.py): its NAME@VERSION and gate verdict.
_REGISTRY_METRICS = ("model", "gate")


def _run_metric_changes(a: dict[str, Any] | None, b: dict[str, Any] | None, side_a: RunSide,
                        side_b: RunSide) -> tuple[MetricChange, ...]:
    """The run metrics that differ; for two model versions, without those the model section already says.

    Registering a model records ``model`` (``tiny@2``) and ``gate`` as run metrics; when both
    sides are model versions the ``model`` changes name the version and the gate verdict, and
    listing them twice read as two differences.
    """
    changes = _metric_changes(a, b)
    if side_a.model is None or side_b.model is None:
        return changes
    return tuple(m for m in changes if m.name not in _REGISTRY_METRICS)


def _delta(a: Any, b: Any) -> float | None:
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
    return b - a if numbers else None  # type: ignore[no-any-return]


def _model_changes(a: dict[str, Any] | None, b: dict[str, Any] | None) -> tuple[Change, ...]:
    """How two model versions differ: name and version, gate verdict, and each of their metrics."""
    if a is None or b is None:
        return ()
    out = [Change(field_name, a[field_name], b[field_name]) for field_name in ("name", "version")
           if a[field_name] != b[field_name]]
    verdict_a, verdict_b = _verdict(a.get("gate")), _verdict(b.get("gate"))
    if verdict_a != verdict_b:
        out.append(Change("gate", verdict_a, verdict_b))
    out.extend(MetricChange(f"metric {m.name}", m.a, m.b, m.delta)
               for m in _metric_changes(a.get("metrics"), b.get("metrics")))
    return tuple(out)


def _verdict(gate: Any) -> str:
    """``promoted: REASON``, ``refused: REASON``, or ``not gated``."""
    if not isinstance(gate, dict):
        return "not gated"
    return f"{'promoted' if gate.get('promoted') else 'refused'}: {gate.get('reason', '')}".rstrip(": ")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
