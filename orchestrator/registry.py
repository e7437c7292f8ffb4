"""The model registry: named models, numbered versions, the promotion gate, loading a model by ref.

A step returns a :class:`ModelCandidate`; the run's driver applies it as an
effect (``apply_candidate``): it records a version (once per model digest, so
a cached step re-applying its effect registers nothing new), runs the gate
against the current production version on the candidate's own evaluation
data, and promotes the candidate only if it wins by the configured margin.
A candidate is checked (``model_checks.check_candidate``) when it is made and
again before anything is written, so a wrong one fails its step and leaves no
version without a verdict. References (``NAME@VERSION``...) are parsed
strictly by ``model_checks.parse_ref`` for every command. The ``orch models`` commands read and change
the same tables.

A version points at the candidate artifact its run stored, so it is linked by
lineage to the run, data, code and parameters that made it. The pickled
candidate holds only scikit-learn, numpy and pandas objects plus this
module's classes, so it loads wherever ``orchestrator`` is installed, unless
the model holds code of the user's pipeline files, which must then be
importable (``_load_candidate`` names the folder).

This module must not be used from inside a step (only ``orch`` processes
write the metadata database) and must not import pandas or scikit-learn at
import time.
"""

from __future__ import annotations

import getpass
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.class_refs import gone_user_code
from orchestrator.effects import EffectContext, register_effect
from orchestrator.environment import stored_by_other_version
from orchestrator.errors import (
    MissingArtifactError,
    NotFoundError,
    OrchestratorError,
    StoreError,
    UserError,
)
from orchestrator.gate_checks import BASELINES, Evidence, baseline_problem, gather, size_problem
from orchestrator.lineage_schema import JSON_COLUMNS
from orchestrator.model_checks import (
    LATEST,
    PRODUCTION,
    REF_FORMS,
    InvalidCandidateError,
    _shown,
    check_candidate,
    check_gate_settings,
    check_model_name,
    closest_choice,
    parse_ref,
)
from orchestrator.model_frames import (
    describe_schema,
    evaluate,
    higher_is_better,
    model_digest,
    predict,
    prediction_scores,
    unknown_labels,
)

__all__ = [  # the registry's public API; the checks and frame helpers live in their own modules
    "LATEST", "PRODUCTION", "GateResult", "InvalidCandidateError", "LoadedModel", "ModelCandidate", "Registry",
    "apply_candidate", "check_candidate", "check_gate_settings", "check_model_name", "describe_schema", "evaluate", "judge",
    "load_model", "load_version", "model_digest", "parse_ref", "predict", "prediction_scores",
]

if TYPE_CHECKING:
    import pandas as pd

    from orchestrator.context import Context
    from orchestrator.lineage_db import Lineage

class _Unchecked:
    """The type of ``_UNCHECKED``: ``record_gate`` was not told what the gate judged against."""


_UNCHECKED = _Unchecked()
# How often a gate is judged, or a rollback worked out, again when other processes keep changing
# the production version meanwhile.
_REGISTRY_TRIES = 5


@dataclass(frozen=True)
class ModelCandidate:
    """A trained model offered to the registry, with what the gate and the server need.

    Attributes:
        name: registered model name.
        model: a fitted scikit-learn estimator taking a frame of ``features``.
        task: ``"classification"`` or ``"regression"``.
        features: the training schema, as :func:`describe_schema` returns it.
        label: name of the label column in ``eval_data``.
        metrics: metrics measured on ``eval_data``.
        metric: the metric the gate compares; ``margin`` how much better the candidate must be.
        model_digest: :func:`model_digest` of ``model``; the version's identity.
        params: hyperparameters and data parameters, shown in the registry.
        eval_data: held-out rows (features and label) the gate scores both models on.
        reference: a sample of features as the model was trained on, the reference for drift
            monitoring (the shipped pipeline keeps held-out rows, which the model did not fit).
        key: the column that names a row (``customer_id``), not a feature: ``orch serve`` takes
            it in a posted record and answers with it (``keys``), instead of refusing an unknown column.
    """

    name: str
    model: Any
    task: str
    features: list[dict[str, Any]]
    label: str
    metrics: dict[str, float]
    metric: str
    margin: float
    model_digest: str
    params: dict[str, Any] = field(default_factory=dict)
    eval_data: Any = None
    reference: Any = None
    key: str | None = None

    def __post_init__(self) -> None:
        # Checked where the candidate is made, so the step that makes a wrong one fails and names
        # the problem, before the driver registers anything. Unpickling skips this (no __init__):
        # ``apply_candidate`` checks again.
        check_candidate(self)

    @property
    def feature_names(self) -> list[str]:
        return [f["name"] for f in self.features]


@dataclass(frozen=True)
class GateResult:
    """Why a candidate was or was not promoted."""

    metric: str
    candidate: float
    production: float | None
    production_version: int | None
    margin: float
    promoted: bool
    reason: str
    # The majority-class (mean) baseline's figure of ``metric`` on the same rows, and how many rows:
    # None for a verdict recorded before the gate measured them, or a candidate without ``eval_data``.
    baseline: float | None = None
    test_rows: int | None = None


# -- the registry tables ------------------------------------------------------


class Registry:
    """Registered models and their versions in one store's metadata database."""

    def __init__(self, lineage: Lineage) -> None:
        self.lineage = lineage

    def models(self) -> list[dict[str, Any]]:
        rows = self.lineage.rows(
            "SELECT m.name, m.production, m.created, COUNT(v.version) AS versions, MAX(v.version) AS latest "
            "FROM models m LEFT JOIN model_versions v ON v.name = m.name GROUP BY m.name ORDER BY m.name", ())
        return rows

    def names(self) -> list[str]:
        return [r[0] for r in self.lineage.conn.execute("SELECT name FROM models ORDER BY name")]

    def production(self, name: str) -> int | None:
        row = self.lineage.conn.execute("SELECT production FROM models WHERE name=?", (name,)).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def versions(self, name: str) -> list[dict[str, Any]]:
        self._check_model(name)
        rows = self.lineage.rows("SELECT * FROM model_versions WHERE name=? ORDER BY version", (name,))
        return [_decode_version(self.lineage, r) for r in rows]

    def version(self, name: str, number: int) -> dict[str, Any]:
        self._check_model(name)
        row = self.lineage.row("SELECT * FROM model_versions WHERE name=? AND version=?", (name, number))
        if row is None:
            have = [str(v["version"]) for v in self.versions(name)]
            listed = ", ".join(have) if len(have) <= 10 else f"{have[0]} to {have[-1]}"
            raise NotFoundError(f"model '{name}' has no version {number}; it has {listed or 'none'}. "
                                f"See `orch models show {name}`.")
        return _decode_version(self.lineage, row)

    def resolve(self, ref: str, default: str = PRODUCTION) -> dict[str, Any]:
        """The version row for ``NAME``, ``NAME@production``, ``NAME@latest`` or ``NAME@VERSION``.

        A bare ``NAME`` means ``NAME@{default}``.

        Raises:
            NotFoundError: unknown model, version, or no production version.
            UserError: a malformed reference.
        """
        name, which = parse_ref(ref, default)
        self._check_model(name)
        if which == PRODUCTION:
            number = self.production(name)
            if number is None:
                raise NotFoundError(f"model '{name}' has no production version. Promote one with "
                                    f"`orch models promote {name}@VERSION` (see `orch models show {name}`).")
            return self.version(name, number)
        if which == LATEST:
            row = self.lineage.conn.execute("SELECT MAX(version) FROM model_versions WHERE name=?",
                                            (name,)).fetchone()
            if row[0] is None:
                raise NotFoundError(f"model '{name}' has no versions yet.")
            return self.version(name, int(row[0]))
        assert isinstance(which, int)
        return self.version(name, which)

    def events(self, name: str) -> list[dict[str, Any]]:
        rows = self.lineage.rows("SELECT rowid, * FROM model_events WHERE name=? ORDER BY at, rowid", (name,))
        for r in rows:
            rowid = r.pop("rowid")
            r["detail"] = self.lineage.decode(r["detail"], f"model_events.detail of {name} (rowid {rowid})")
        return rows

    def register(self, candidate: ModelCandidate, digest: str, run_id: str | None,
                 node: str | None, evidence: Evidence | None = None) -> tuple[int, bool]:
        """Record ``candidate`` as the next version; (version, True) or (existing version, False).

        ``evidence`` (``gate_checks.gather``) adds the test-set size and the baseline's figures to
        the metrics stored with the version (``test_rows``, ``baseline_f1`` …).

        Raises:
            InvalidCandidateError: the candidate cannot be registered (see :func:`check_candidate`), or
                the name's versions are models of the other task.
        """
        check_candidate(candidate)  # before anything is written: a bad candidate leaves no version behind
        now = time.time()
        with self.lineage.transaction() as c:
            row = c.execute("SELECT version FROM model_versions WHERE name=? AND model_digest=?",
                            (candidate.name, candidate.model_digest)).fetchone()
            if row is not None:
                return int(row[0]), False
            _check_same_task(c, candidate)
            _check_shared_features(c, candidate)
            c.execute("INSERT OR IGNORE INTO models (name, created, production) VALUES (?, ?, NULL)",
                      (candidate.name, now))
            latest = c.execute("SELECT MAX(version) FROM model_versions WHERE name=?", (candidate.name,)).fetchone()
            version = int(latest[0] or 0) + 1
            c.execute(
                "INSERT INTO model_versions (name, version, digest, model_digest, run_id, node, created, task, "
                "metric, metrics, params, schema, gate) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,NULL)",
                (candidate.name, version, digest, candidate.model_digest, run_id, node, now, candidate.task,
                 candidate.metric, json.dumps({**candidate.metrics, **(evidence.as_metrics() if evidence else {})}),
                 json.dumps(candidate.params, default=str),
                 json.dumps(candidate.features)))
            _event(c, candidate.name, version, None, "registered", run_id, None)
        return version, True

    def relink(self, name: str, version: int, digest: str) -> None:
        """Point a version at another stored artifact of the same model (its own was removed)."""
        with self.lineage.transaction() as c:
            c.execute("UPDATE model_versions SET digest=? WHERE name=? AND version=?", (digest, name, version))

    def record_gate(self, name: str, version: int, gate: GateResult, run_id: str | None, *,
                    judged_against: int | _Unchecked | None = _UNCHECKED) -> bool:
        """Store the gate's verdict on the version; promote it when the gate says so.

        Args:
            judged_against: the production version the gate compared with (None: there was
                none). When given, the verdict is recorded only if that is still production and
                the version has no verdict yet: another run on the store may have promoted a
                version meanwhile (a verdict against the old one would replace a better model
                with a worse one), or gated this very version (the same model, cached in both).

        Returns:
            True if recorded; False if either happened since the gate judged (nothing written).
        """
        with self.lineage.transaction() as c:
            previous = c.execute("SELECT production FROM models WHERE name=?", (name,)).fetchone()[0]
            if not isinstance(judged_against, _Unchecked) and (previous != judged_against or c.execute(
                    "SELECT gate FROM model_versions WHERE name=? AND version=?", (name, version)).fetchone()[0]
                    is not None):
                return False
            c.execute("UPDATE model_versions SET gate=? WHERE name=? AND version=?",
                      (json.dumps(asdict(gate)), name, version))
            if gate.promoted:
                c.execute("UPDATE models SET production=? WHERE name=?", (version, name))
            # Passing the gate while already production is not a promotion: it must not count in
            # the history that ``rollback`` walks.
            action = ("gate passed (already production)" if previous == version else "promoted") \
                if gate.promoted else "refused"
            _event(c, name, version, previous, action, run_id, asdict(gate))
        return True

    def promote(self, name: str, version: int, action: str = "promoted by hand") -> int | None:
        """Make ``version`` production without the gate; returns the previous production version.

        Promoting the version that already is production changes nothing and records no
        event (so ``rollback`` never "rolls back" from a version to itself); the caller sees
        ``previous == version``.
        """
        self.version(name, version)
        with self.lineage.transaction() as c:
            previous = c.execute("SELECT production FROM models WHERE name=?", (name,)).fetchone()[0]
            if previous == version:
                return version
            c.execute("UPDATE models SET production=? WHERE name=?", (version, name))
            _event(c, name, version, previous, action, None, None)
        return None if previous is None else int(previous)

    def rollback(self, name: str) -> tuple[int, int]:
        """Restore the production version that preceded the current one; (from, to).

        The history is read before the write transaction: when production changed meanwhile (a
        run's gate, or a promote or rollback in another terminal), the rollback is worked out again
        from the new production version, rather than rolling back from one that no longer is.

        Raises:
            NotFoundError: the model has no production version, or none before it.
        """
        for _ in range(_REGISTRY_TRIES):
            current, previous = self._rollback_target(name)
            with self.lineage.transaction() as c:
                if c.execute("SELECT production FROM models WHERE name=?", (name,)).fetchone()[0] != current:
                    continue
                c.execute("UPDATE models SET production=? WHERE name=?", (previous, name))
                _event(c, name, previous, current, "rolled back", None, None)
            return current, previous
        raise UserError(f"model '{name}' changed production version during every try to roll it back (runs "
                        "promoting it in another terminal?): run the rollback again when they are done.")

    def _rollback_target(self, name: str) -> tuple[int, int]:
        """(current production version, the one a rollback restores), from the registry events."""
        current = self.production(name)
        if current is None:
            self._check_model(name)
            raise NotFoundError(f"model '{name}' has no production version to roll back.")
        # Production history as a stack: a promotion pushes, a rollback to version V drops what
        # was pushed after V, so repeated rollbacks walk further back instead of toggling between
        # two versions. A push of the version already on top is no change (stores written before
        # promote became a no-op for the current version have such events), so two neighbours
        # on the stack always differ and a rollback always changes the version.
        stack: list[int] = []
        for e in self.events(name):
            version = None if e["version"] is None else int(e["version"])
            if version is None:
                continue
            if e["action"] in ("promoted", "promoted by hand"):
                if not stack or stack[-1] != version:
                    stack.append(version)
            elif e["action"] == "rolled back":
                if version in stack:
                    del stack[len(stack) - stack[::-1].index(version):]
                else:
                    stack = [version]
        while len(stack) > 1 and stack[-1] != current:
            stack.pop()
        previous = stack[-2] if len(stack) > 1 and stack[-1] == current else None
        if previous is None:
            raise NotFoundError(f"model '{name}' has no production version before v{current} to roll back to. "
                                f"Promote one with `orch models promote {name}@VERSION` "
                                f"(see `orch models show {name}`).")
        return current, previous

    def _check_model(self, name: str) -> None:
        if not name:
            raise UserError(f"a model reference needs a name. Write {REF_FORMS} (e.g. churn@production).")
        row = self.lineage.conn.execute("SELECT 1 FROM models WHERE name=?", (name,)).fetchone()
        if row is None:
            names = self.names()
            close = closest_choice(name, names)  # ignoring case: CHURN -> churn
            hint = f" Did you mean '{close}'?" if close else ""
            raise NotFoundError(f"no model '{_shown(name)}' in this store.{hint} "
                                + ("Models: " + ", ".join(names) + "." if names
                                   else "Register one by running a pipeline whose step returns a ModelCandidate."))


def _check_same_task(c: Any, candidate: ModelCandidate) -> None:
    """Refuse a candidate whose task differs from that of the versions already under its name.

    A copied pipeline that kept the default ``model_name`` registered a regression model as
    ``churn@2`` and promoted it over the churn classifier ("production v1 has no rmse"): the
    server and the monitor of ``churn`` then answered with another kind of model.

    Raises:
        InvalidCandidateError: naming both tasks and the fix.
    """
    row = c.execute("SELECT task, MAX(version) FROM model_versions WHERE name=? AND task<>?",
                    (candidate.name, candidate.task)).fetchone()
    if row is not None and row[0] is not None:
        raise InvalidCandidateError(
            f"model candidate {_shown(repr(candidate.name))} cannot be registered: the versions of "
            f"'{candidate.name}' (v{row[1]}) are {row[0]} models, and this one is a {candidate.task} model. "
            "Give it a name of its own (ModelCandidate(name=...); in the lifecycle pipeline, -p model_name=...).")


def _check_shared_features(c: Any, candidate: ModelCandidate) -> None:
    """Refuse a candidate that shares no feature column with the production version of its name.

    An edited copy of the lifecycle pipeline that trained on another table and kept the
    default ``model_name`` registered it as ``churn@N``: its gate scored production on rows
    production cannot read, fell back to the recorded metric, and could promote a model that
    the server and the monitor of ``churn`` then fed the churn records to.

    Raises:
        InvalidCandidateError: naming both sets of columns and the fix.
    """
    row = c.execute("SELECT v.version, v.schema FROM models m JOIN model_versions v ON v.name=m.name AND "
                    "v.version=m.production WHERE m.name=?", (candidate.name,)).fetchone()
    if row is None or not row[1]:
        return
    try:
        production = [f["name"] for f in json.loads(row[1]) if isinstance(f, dict) and "name" in f]
    except (ValueError, TypeError):
        return  # a schema this version cannot read: the gate's own checks still apply
    if production and not set(production) & set(candidate.feature_names):
        raise InvalidCandidateError(
            f"model candidate {_shown(repr(candidate.name))} cannot be registered: it shares no feature column "
            f"with production v{row[0]} of '{candidate.name}' ({_shown(', '.join(production), 80)}; it has "
            f"{_shown(', '.join(candidate.feature_names), 80)}), so it is another model. Give it a name of its own "
            "(ModelCandidate(name=...); in the lifecycle pipeline, -p model_name=...).")


def _event(c: Any, name: str, version: int | None, previous: int | None, action: str,
           run_id: str | None, detail: dict[str, Any] | None) -> None:
    c.execute("INSERT INTO model_events (name, version, previous, action, at, user, host, run_id, detail) "
              "VALUES (?,?,?,?,?,?,?,?,?)",
              (name, version, previous, action, time.time(), _user(), os.uname().nodename, run_id,
               None if detail is None else json.dumps(detail)))


def _decode_version(lineage: Lineage, row: dict[str, Any]) -> dict[str, Any]:
    for key in ("metrics", "params", "schema", "gate"):
        if row[key]:
            row[key] = lineage.decode(row[key], f"model_versions.{key} of {row['name']}@{row['version']}",
                                      JSON_COLUMNS[("model_versions", key)][0])
    return row


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry is not an error
        return ""


# -- the gate and the effect --------------------------------------------------


def judge(candidate: ModelCandidate, production: ModelCandidate | None, production_version: int | None,
          recorded: dict[str, Any] | None = None, evidence: Evidence | None = None) -> GateResult:
    """Compare ``candidate`` with the production model on the candidate's evaluation data.

    First, whatever production is, a candidate is never promoted when its test set is too small
    for the metric to mean anything, or when it does not beat the trivial baseline (the majority
    class, the mean) on the same rows (``gate_checks``). Then the production model is re-scored
    on the same rows, so a new test set cannot make an old model look better or worse; if it
    cannot be scored there (a different schema), its recorded metric is used and the reason says so.
    """
    metric, margin = candidate.metric, candidate.margin
    new = candidate.metrics.get(metric)
    if new is None:
        raise UserError(f"model candidate '{candidate.name}' has no metric '{metric}' to gate on; "
                        f"it has {', '.join(candidate.metrics)}.")
    evidence = evidence if evidence is not None else gather(candidate)
    baseline, rows = evidence.baseline.get(metric), evidence.rows
    refusal = size_problem(candidate, evidence) or baseline_problem(candidate, evidence)
    if refusal:
        return GateResult(metric, new, None, production_version, margin, False, refusal, baseline=baseline,
                          test_rows=rows)
    if production_version is None:
        beats = (f" ({metric} {new:.4f} beats {BASELINES[candidate.task]} {baseline:.4f} on {rows} test rows)"
                 if baseline is not None and rows else "")
        return GateResult(metric, new, None, None, margin, True, "no production version yet" + beats,
                          baseline=baseline, test_rows=rows)
    if production is not None and production.label != candidate.label:
        # A model of another target (an edited copy that predicts `upgraded`, not `churned`) scored on its
        # own label says nothing of how it predicts production's: never promoted over it by the gate.
        return GateResult(metric, new, None, production_version, margin, False,
                          f"its label '{candidate.label}' is not production v{production_version}'s "
                          f"'{production.label}': a model of another target is not promoted over it. Give it a "
                          "name of its own (in the lifecycle pipeline, -p model_name=...), or promote it by hand "
                          f"(orch models promote {candidate.name}@VERSION)", baseline=baseline, test_rows=rows)
    old: float | None = None
    source = "on the same evaluation data"
    if production is not None:
        try:
            X, y = candidate.eval_data[production.feature_names], candidate.eval_data[candidate.label]
            # Labels production was not trained on (another encoding: 0/1 for no/yes) score it wrongly,
            # not at all: an accuracy of 0 that promoted any candidate.
            old = None if unknown_labels(candidate.task, production.model, y) else \
                evaluate(candidate.task, production.model, X, y).get(metric)
        except Exception:  # noqa: BLE001 - a production model that cannot score these rows falls back to its record
            old = None
    if old is None:
        old = (recorded or {}).get(metric)
        source = "as recorded (it cannot score the new evaluation data)" if production is not None \
            else "as recorded (its artifact could not be loaded)"
    if old is None:
        return GateResult(metric, new, None, production_version, margin, True,
                          f"production v{production_version} has no {metric}", baseline=baseline, test_rows=rows)
    delta = (new - old) if higher_is_better(metric) else (old - new)
    promoted = delta > 0 and delta >= margin
    verb = "beats" if promoted else "does not beat"
    reason = (f"{metric} {new:.4f} vs production v{production_version} {old:.4f} {source}: {verb} it by the "
              f"margin {margin:g} (difference {delta:+.4f})")
    return GateResult(metric, new, old, production_version, margin, promoted, reason, baseline=baseline, test_rows=rows)


def apply_candidate(where: EffectContext, candidate: ModelCandidate) -> None:
    """The effect of a ``ModelCandidate``: register it, gate it, promote it; say what happened on the run.

    Raises:
        InvalidCandidateError: the candidate is not usable; checked before anything is
            written, so the step fails (and the run with it) and no version is left without
            a gate verdict.
    """
    check_candidate(candidate)
    registry = Registry(where.context.lineage)
    # Measured once, and only for a model not registered yet: a cached step re-applies its effect on
    # every run, and counting a large ``eval_data`` again then would be wasted.
    evidence = None if where.context.lineage.conn.execute(
        "SELECT 1 FROM model_versions WHERE name=? AND model_digest=?",
        (candidate.name, candidate.model_digest)).fetchone() else gather(candidate)
    version, new = registry.register(candidate, where.digest, where.run_id, where.node, evidence)
    if not new:
        row = registry.version(candidate.name, version)
        if row["digest"] != where.digest and (where.context.lineage.artifact_row(row["digest"]) is None
                                              or not where.context.store.has(row["digest"])):
            # The version's artifact was removed (`orch cache gc`, `cache verify --repair`, by hand);
            # this run stored the same model again.
            registry.relink(candidate.name, version, where.digest)
    # A version without a verdict was registered by a run that stopped before its gate: gate it now.
    gate = None
    if new or registry.version(candidate.name, version)["gate"] is None:
        gate = _gate(where.context, registry, candidate, version, where.run_id, evidence)
    if gate is not None:
        verdict = ("promoted to production: " if gate.promoted else "registered, not promoted: ") + gate.reason
    else:
        row = registry.version(candidate.name, version)
        stage = "production" if registry.production(candidate.name) == version else "registered"
        verdict = f"already registered as version {version} ({stage}); gate not re-applied"
        if row["gate"]:
            verdict += f"; its gate: {row['gate']['reason']}"
    where.context.lineage.set_run_metrics(where.run_id, {"model": f"{candidate.name}@{version}", "gate": verdict})


def _gate(context: Context, registry: Registry, candidate: ModelCandidate, version: int,
          run_id: str | None, evidence: Evidence | None = None) -> GateResult | None:
    """Judge ``version`` against the production version and record the verdict; the verdict.

    The production model is loaded and scored outside the write transaction (it may take a
    while), so another run on the store may promote a version meanwhile: the verdict is then
    not recorded, and the candidate is judged again against the new production version.
    Returns None when another run gated this version meanwhile (the same model, cached in both
    runs): its verdict stands, and is not recorded twice.
    """
    for attempt in range(_REGISTRY_TRIES):
        if attempt and registry.version(candidate.name, version)["gate"] is not None:
            return None
        current = registry.production(candidate.name)
        production = recorded = None
        if current is not None and current != version:
            row = registry.version(candidate.name, current)
            recorded = row["metrics"]
            try:
                production = _load_candidate(context, row)
            except OrchestratorError:
                production = None  # e.g. removed by `orch cache gc`: the gate falls back to its recorded metrics
        if current == version:  # promoted by hand before its gate ran: nothing to compare with
            gate = GateResult(candidate.metric, float(candidate.metrics[candidate.metric]), None, None,
                              candidate.margin, True, "already production (promoted by hand before its gate ran)")
        else:
            gate = judge(candidate, production, current, recorded, evidence)
        if registry.record_gate(candidate.name, version, gate, run_id, judged_against=current):
            return gate
    # Production kept changing under every attempt (runs promoting in a tight loop): record the last
    # verdict as it is; its event still names the version it replaced.
    registry.record_gate(candidate.name, version, gate, run_id)
    return gate


register_effect(ModelCandidate, apply_candidate)


# -- loading ------------------------------------------------------------------


def _load_candidate(context: Context, row: dict[str, Any]) -> ModelCandidate:
    """The stored candidate of a version row, with a fix when its artifact is gone or damaged.

    Raises:
        NotFoundError: the artifact is missing from the store.
        StoreError: the artifact is damaged or not a model candidate.
    """
    from orchestrator.errors import CorruptArtifactError, UntrustedArtifactError

    ref, digest, run_id = f"{row['name']}@{row['version']}", row["digest"], row["run_id"]
    # Whatever removed it (`orch cache verify --repair`, a deleted file, an older gc), running
    # the same pipeline again stores the same model and relinks the version to it.
    again = (f"re-run the pipeline that made it (run {run_id}, `orch show {run_id}`) to restore it"
             if run_id else "re-run the pipeline that made it to restore it")
    try:
        value = context.load(digest)
    except MissingArtifactError:
        raise NotFoundError(f"model {ref}: its artifact {digest} is missing from the store; {again}. "
                            "`orch doctor` checks the rest of the store.") from None
    except UntrustedArtifactError as exc:
        # A store copied to another machine or account keeps its objects, not the key that signed them:
        # that is no damage, and re-running the pipeline there would retrain what the right key loads.
        from orchestrator.signing import other_key_advice

        raise StoreError(f"model {ref}: its artifact {digest} is not trusted ({_shown(exc.detail, 120)}); it was "
                         f"not unpickled. {other_key_advice('the model was trained')}; otherwise {again}.") from None
    except CorruptArtifactError as exc:
        raise StoreError(f"model {ref}: its artifact {digest} cannot be used ({_shown(exc.detail, 120)}); "
                         f"{again}: the run finds the damage and computes it again.") from None
    except StoreError as exc:
        unimportable = _unimportable_code(exc.__cause__, _pipeline_folder(context, run_id),
                                          lambda: _run_packages(context, run_id))
        if unimportable is None:
            raise
        raise UserError(f"model {ref} cannot be loaded in this process: {unimportable}") from None
    if not isinstance(value, ModelCandidate):
        raise StoreError(f"model {ref}: artifact {digest} is not a model candidate. Was the store edited by "
                         "hand? `orch doctor` checks it.")
    return value


def _unimportable_code(cause: BaseException | None, folder: Path | None,
                       packages: Callable[[], Any] = lambda: None) -> str | None:
    """What the model needs and cannot import, and the fix, when unpickling it failed for that reason.

    A function or class that a pipeline file defines (``FunctionTransformer(my_function)``, a
    custom transformer) is pickled by reference to that file's module, which a process started
    elsewhere (``orch serve``, ``load_model`` in another project) cannot import. The folder is
    only named: the store does not get to choose what this process imports.
    """
    gone = gone_user_code(cause)
    if gone is not None:  # its package is importable: the folder is on the path, the code left
        return (f"it uses code of yours that moved or was renamed (`{gone}` is gone). Re-run the pipeline to "
                "register a model of the current code.")
    where = f"PYTHONPATH={folder if folder else 'THE_PIPELINE_FOLDER'} orch ..."
    if isinstance(cause, ModuleNotFoundError) and cause.name:
        top = cause.name.partition(".")[0]
        if folder is not None and ((folder / f"{top}.py").is_file() or (folder / top).is_dir()):
            return (f"it uses code from the module '{cause.name}' of your pipeline's folder (a function or class "
                    f"of yours, e.g. in a FunctionTransformer), which is not importable here. Put that folder "
                    f"on the import path ({where}), or move that code into an installed package and re-run the "
                    "pipeline.")
        other_version = stored_by_other_version(cause.name, packages())
        if other_version is not None:
            return other_version
        return (f"it needs the module '{cause.name}', which is not installed here. Install it (pip install {top}), "
                f"or, if it is code of your pipeline's files, put their folder on the import path ({where}).")
    if isinstance(cause, AttributeError) and str(cause).startswith("Can't get attribute"):
        return (f"it uses code your pipeline's files no longer define ({_shown(cause, 120)}). Restore it, or "
                "re-run the pipeline to register a model of the current code.")
    return None


def _pipeline_folder(context: Context, run_id: str | None) -> Path | None:
    """The folder of the pipeline file whose run made a version, when the run recorded it."""
    run = context.lineage.row("SELECT file FROM runs WHERE run_id = ?", (run_id,)) if run_id else None
    return Path(run["file"]).parent if run and run["file"] else None


def _run_packages(context: Context, run_id: str | None) -> Any:
    """The package versions the run that made a version recorded, or None."""
    run = context.lineage.row("SELECT packages FROM runs WHERE run_id = ?", (run_id,)) if run_id else None
    try:
        return json.loads(run["packages"]) if run and run["packages"] else None
    except (TypeError, ValueError):
        return None  # a damaged record: the advice does without the versions


@dataclass
class LoadedModel:
    """A registered version, ready to predict; ``predict`` checks the frame's columns first."""

    name: str
    version: int
    row: dict[str, Any]
    candidate: ModelCandidate

    def predict(self, frame: pd.DataFrame) -> dict[str, list[Any]]:
        return predict(self.candidate, frame)

    @property
    def model(self) -> Any:
        return self.candidate.model


def load_model(ref: str, store: str | os.PathLike[str] | None = None,
               metadata: str | os.PathLike[str] | None = None) -> LoadedModel:
    """Load ``NAME[@production|@latest|@VERSION]`` from a store (default: as ``orch`` finds it).

    With a store URL, ``metadata`` is the local folder of its metadata database. The store
    is only read: a path where there is no store is an error, and nothing is created there.

    Raises:
        UserError: no store there, a malformed reference, or the model uses code of a pipeline
            file that this process cannot import (the message names the folder to add).
        NotFoundError: no such model or version, or its artifact is missing.
    """
    from orchestrator.context import Context
    from orchestrator.spelling import PYTHON

    try:
        context = Context.open(store, metadata, create=False, spelling=PYTHON)
    except UserError as exc:
        raise NotFoundError(f"cannot load model '{_shown(ref)}': {exc}.") from None
    return load_version(context, ref)


def load_version(context: Context, ref: str, default: str = PRODUCTION) -> LoadedModel:
    row = Registry(context.lineage).resolve(ref, default)
    return LoadedModel(row["name"], int(row["version"]), row, _load_candidate(context, row))


def usable_version(context: Context, ref: str) -> LoadedModel:
    """``load_version`` for a command that uses the model (``orch serve``, ``orch monitor``).

    Raises:
        UserError: the version's artifact is damaged, missing or not trusted: one line (exit 2)
            with the fix. For ``monitor`` an exit 1 would read as a drift alert, and ``serve``
            answered 1 where ``monitor`` answered 2 for the same model.
    """
    try:
        return load_version(context, ref)
    except StoreError as exc:
        doctor = "" if "orch doctor" in str(exc) else " `orch doctor` checks the rest of the store."
        raise UserError(f"{exc}{doctor}") from None
