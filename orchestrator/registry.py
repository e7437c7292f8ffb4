"""The model registry: named models, numbered versions, the promotion gate, loading a model by ref.

A step returns a :class:`ModelCandidate`; the run's driver applies it as an
effect (``apply_candidate``): it records a version (once per model digest, so
a cached step re-applying its effect registers nothing new), runs the gate
against the current production version on the candidate's own evaluation
data, and promotes the candidate only if it wins by the configured margin.
The ``orch models`` commands read and change the same tables.

A version points at the candidate artifact its run stored, so it is linked by
lineage to the run, data, code and parameters that made it. The pickled
candidate holds only scikit-learn, numpy and pandas objects plus this
module's classes, so it loads wherever ``orchestrator`` is installed.

This module must not be used from inside a step (only ``orch`` processes
write the metadata database) and must not import pandas or scikit-learn at
import time.
"""

from __future__ import annotations

import getpass
import json
import math
import os
import re
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from orchestrator.effects import EffectContext, register_effect
from orchestrator.errors import NotFoundError, OrchestratorError, UserError, did_you_mean
from orchestrator.hashing import hash_value

if TYPE_CHECKING:
    import pandas as pd

    from orchestrator.context import Context
    from orchestrator.lineage import Lineage

PRODUCTION = "production"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
LOWER_IS_BETTER = frozenset({"rmse", "mae", "log_loss"})
CLASSIFICATION_METRICS = ("accuracy", "f1", "roc_auc")
REGRESSION_METRICS = ("rmse", "mae", "r2")


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
        reference: a sample of training features, the reference for drift monitoring.
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


# -- helpers for the step that builds a candidate -----------------------------


def describe_schema(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The serving schema of a feature frame: each column's name, kind, dtype and categories."""
    import pandas as pd

    out: list[dict[str, Any]] = []
    for name in frame.columns:
        col = frame[name]
        if pd.api.types.is_bool_dtype(col) or not pd.api.types.is_numeric_dtype(col):
            cats = sorted({str(v) for v in col.dropna().unique()})
            out.append({"name": str(name), "kind": "category", "dtype": str(col.dtype), "categories": cats})
        else:
            out.append({"name": str(name), "kind": "number", "dtype": str(col.dtype)})
    return out


def model_digest(model: Any) -> str:
    """A model's identity: its content digest, equal for equal fitted models.

    The value hash, not the pickle's bytes: a model loaded back from the store
    pickles differently from the one just fitted, but hashes the same.
    """
    return hash_value(model)


def higher_is_better(metric: str) -> bool:
    return metric not in LOWER_IS_BETTER


def evaluate(task: str, model: Any, X: pd.DataFrame, y: Any) -> dict[str, float]:
    """Classification: accuracy, F1, ROC-AUC; regression: RMSE, MAE, R²; rounded to 4 places."""
    from sklearn import metrics as m

    if task == "classification":
        predicted = model.predict(X)
        out = {"accuracy": m.accuracy_score(y, predicted), "f1": m.f1_score(y, predicted, average="binary")
               if len(set(y)) <= 2 else m.f1_score(y, predicted, average="macro")}
        if hasattr(model, "predict_proba") and len(set(y)) == 2:
            out["roc_auc"] = m.roc_auc_score(y, model.predict_proba(X)[:, 1])
    else:
        predicted = model.predict(X)
        out = {"rmse": math.sqrt(m.mean_squared_error(y, predicted)), "mae": m.mean_absolute_error(y, predicted),
               "r2": m.r2_score(y, predicted)}
    return {k: round(float(v), 4) for k, v in out.items()}


def predict(candidate: ModelCandidate, frame: pd.DataFrame) -> dict[str, list[Any]]:
    """Predictions for ``frame``: ``prediction`` and, for a binary classifier, ``probability``."""
    X = frame[candidate.feature_names]
    out: dict[str, list[Any]] = {"prediction": [_plain(v) for v in candidate.model.predict(X)]}
    if candidate.task == "classification" and hasattr(candidate.model, "predict_proba"):
        proba = candidate.model.predict_proba(X)
        if proba.shape[1] == 2:
            out["probability"] = [round(float(p), 6) for p in proba[:, 1]]
    return out


def prediction_scores(candidate: ModelCandidate, frame: pd.DataFrame) -> list[float]:
    """One number per row to watch for prediction drift: the positive-class probability, else the prediction."""
    preds = predict(candidate, frame)
    return [float(v) for v in preds.get("probability", preds["prediction"])]


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


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
        return [_decode_version(r) for r in rows]

    def version(self, name: str, number: int) -> dict[str, Any]:
        self._check_model(name)
        row = self.lineage.row("SELECT * FROM model_versions WHERE name=? AND version=?", (name, number))
        if row is None:
            have = [str(v["version"]) for v in self.versions(name)]
            raise NotFoundError(f"model '{name}' has no version {number}; it has {', '.join(have) or 'none'}. "
                                f"See `orch models show {name}`.")
        return _decode_version(row)

    def resolve(self, ref: str, default: str = PRODUCTION) -> dict[str, Any]:
        """The version row for ``NAME``, ``NAME@production``, ``NAME@latest`` or ``NAME@VERSION``.

        A bare ``NAME`` means ``NAME@{default}``.

        Raises:
            NotFoundError: unknown model, version, or no production version.
            UserError: a malformed reference.
        """
        name, _, which = ref.partition("@")
        which = which or default
        self._check_model(name)
        if which == PRODUCTION:
            number = self.production(name)
            if number is None:
                raise NotFoundError(f"model '{name}' has no production version. Promote one with "
                                    f"`orch models promote {name}@VERSION` (see `orch models show {name}`).")
            return self.version(name, number)
        if which == "latest":
            row = self.lineage.conn.execute("SELECT MAX(version) FROM model_versions WHERE name=?",
                                            (name,)).fetchone()
            if row[0] is None:
                raise NotFoundError(f"model '{name}' has no versions yet.")
            return self.version(name, int(row[0]))
        number_text = which[1:] if which[:1] in ("v", "V") else which
        if not number_text.isdigit():
            raise UserError(f"'{ref}' is not a model reference. Write NAME, NAME@production, NAME@latest "
                            f"or NAME@VERSION (e.g. {name}@1).")
        return self.version(name, int(number_text))

    def events(self, name: str) -> list[dict[str, Any]]:
        rows = self.lineage.rows("SELECT * FROM model_events WHERE name=? ORDER BY at, rowid", (name,))
        for r in rows:
            r["detail"] = json.loads(r["detail"]) if r["detail"] else None
        return rows

    def register(self, candidate: ModelCandidate, digest: str, run_id: str | None,
                 node: str | None) -> tuple[int, bool]:
        """Record ``candidate`` as the next version; (version, True) or (existing version, False).

        Raises:
            UserError: the model name cannot be used in a reference (``NAME@VERSION``) or a path.
        """
        if not _NAME.fullmatch(candidate.name or ""):
            raise UserError(f"model name {candidate.name!r} is not usable: use letters, digits, '_', '-' and '.', "
                            "starting with a letter or digit (e.g. 'churn').")
        now = time.time()
        with self.lineage.transaction() as c:
            row = c.execute("SELECT version FROM model_versions WHERE name=? AND model_digest=?",
                            (candidate.name, candidate.model_digest)).fetchone()
            if row is not None:
                return int(row[0]), False
            c.execute("INSERT OR IGNORE INTO models (name, created, production) VALUES (?, ?, NULL)",
                      (candidate.name, now))
            latest = c.execute("SELECT MAX(version) FROM model_versions WHERE name=?", (candidate.name,)).fetchone()
            version = int(latest[0] or 0) + 1
            c.execute(
                "INSERT INTO model_versions (name, version, digest, model_digest, run_id, node, created, task, "
                "metric, metrics, params, schema, gate) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,NULL)",
                (candidate.name, version, digest, candidate.model_digest, run_id, node, now, candidate.task,
                 candidate.metric, json.dumps(candidate.metrics), json.dumps(candidate.params, default=str),
                 json.dumps(candidate.features)))
            _event(c, candidate.name, version, None, "registered", run_id, None)
        return version, True

    def relink(self, name: str, version: int, digest: str) -> None:
        """Point a version at another stored artifact of the same model (its own was removed)."""
        with self.lineage.transaction() as c:
            c.execute("UPDATE model_versions SET digest=? WHERE name=? AND version=?", (digest, name, version))

    def record_gate(self, name: str, version: int, gate: GateResult, run_id: str | None) -> None:
        """Store the gate's verdict on the version; promote it when the gate says so."""
        with self.lineage.transaction() as c:
            c.execute("UPDATE model_versions SET gate=? WHERE name=? AND version=?",
                      (json.dumps(asdict(gate)), name, version))
            previous = c.execute("SELECT production FROM models WHERE name=?", (name,)).fetchone()[0]
            if gate.promoted:
                c.execute("UPDATE models SET production=? WHERE name=?", (version, name))
            _event(c, name, version, previous, "promoted" if gate.promoted else "refused", run_id, asdict(gate))

    def promote(self, name: str, version: int, action: str = "promoted by hand") -> int | None:
        """Make ``version`` production without the gate; returns the previous production version."""
        self.version(name, version)
        with self.lineage.transaction() as c:
            previous = c.execute("SELECT production FROM models WHERE name=?", (name,)).fetchone()[0]
            c.execute("UPDATE models SET production=? WHERE name=?", (version, name))
            _event(c, name, version, previous, action, None, None)
        return None if previous is None else int(previous)

    def rollback(self, name: str) -> tuple[int, int]:
        """Restore the production version that preceded the current one; (from, to).

        Raises:
            NotFoundError: the model has no production version, or none before it.
        """
        current = self.production(name)
        if current is None:
            self._check_model(name)
            raise NotFoundError(f"model '{name}' has no production version to roll back.")
        # Production history as a stack: a promotion pushes, a rollback pops, so repeated
        # rollbacks walk further back instead of toggling between two versions.
        stack: list[int] = []
        for e in self.events(name):
            if e["action"] in ("promoted", "promoted by hand"):
                stack.append(int(e["version"]))
            elif e["action"] == "rolled back" and stack:
                stack.pop()
        while len(stack) > 1 and stack[-1] != current:
            stack.pop()
        previous = stack[-2] if len(stack) > 1 else None
        if previous is None:
            raise NotFoundError(f"model '{name}' has no earlier production version than {current}. "
                                f"Promote one with `orch models promote {name}@VERSION`.")
        with self.lineage.transaction() as c:
            c.execute("UPDATE models SET production=? WHERE name=?", (previous, name))
            _event(c, name, previous, current, "rolled back", None, None)
        return current, previous

    def _check_model(self, name: str) -> None:
        if not name:
            raise UserError("a model reference needs a name, e.g. churn@production.")
        row = self.lineage.conn.execute("SELECT 1 FROM models WHERE name=?", (name,)).fetchone()
        if row is None:
            names = self.names()
            raise NotFoundError(f"no model '{name}' in this store.{did_you_mean(name, names)} "
                                + ("Models: " + ", ".join(names) + "." if names
                                   else "Register one by running a pipeline whose step returns a ModelCandidate."))


def _event(c: Any, name: str, version: int | None, previous: int | None, action: str,
           run_id: str | None, detail: dict[str, Any] | None) -> None:
    c.execute("INSERT INTO model_events (name, version, previous, action, at, user, host, run_id, detail) "
              "VALUES (?,?,?,?,?,?,?,?,?)",
              (name, version, previous, action, time.time(), _user(), os.uname().nodename, run_id,
               None if detail is None else json.dumps(detail)))


def _decode_version(row: dict[str, Any]) -> dict[str, Any]:
    for key in ("metrics", "params", "schema", "gate"):
        row[key] = json.loads(row[key]) if row[key] else None
    return row


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry is not an error
        return ""


# -- the gate and the effect --------------------------------------------------


def judge(candidate: ModelCandidate, production: ModelCandidate | None, production_version: int | None,
          recorded: dict[str, Any] | None = None) -> GateResult:
    """Compare ``candidate`` with the production model on the candidate's evaluation data.

    The production model is re-scored on the same rows, so a new test set
    cannot make an old model look better or worse; if it cannot be scored
    there (a different schema), its recorded metric is used and the reason says so.
    """
    metric, margin = candidate.metric, candidate.margin
    new = candidate.metrics.get(metric)
    if new is None:
        raise UserError(f"model candidate '{candidate.name}' has no metric '{metric}' to gate on; "
                        f"it has {', '.join(candidate.metrics)}.")
    if production_version is None:
        return GateResult(metric, new, None, None, margin, True, "no production version yet")
    old: float | None = None
    source = "on the same evaluation data"
    if production is not None:
        try:
            X = candidate.eval_data[production.feature_names]
            old = evaluate(candidate.task, production.model, X, candidate.eval_data[candidate.label]).get(metric)
        except Exception:  # noqa: BLE001 - a production model that cannot score these rows falls back to its record
            old = None
    if old is None:
        old = (recorded or {}).get(metric)
        source = "as recorded (it cannot score the new evaluation data)" if production is not None \
            else "as recorded (its artifact could not be loaded)"
    if old is None:
        return GateResult(metric, new, None, production_version, margin, True,
                          f"production v{production_version} has no {metric}")
    delta = (new - old) if higher_is_better(metric) else (old - new)
    promoted = delta > 0 and delta >= margin
    verb = "beats" if promoted else "does not beat"
    reason = (f"{metric} {new:.4f} vs production v{production_version} {old:.4f} {source}: {verb} it by the "
              f"margin {margin:g} (difference {delta:+.4f})")
    return GateResult(metric, new, old, production_version, margin, promoted, reason)


def apply_candidate(where: EffectContext, candidate: ModelCandidate) -> None:
    """The effect of a ``ModelCandidate``: register it, gate it, promote it; say what happened on the run."""
    registry = Registry(where.context.lineage)
    version, new = registry.register(candidate, where.digest, where.run_id, where.node)
    if not new:
        row = registry.version(candidate.name, version)
        if row["digest"] != where.digest and where.context.lineage.artifact_row(row["digest"]) is None:
            # The version's artifact was garbage-collected; this run stored the same model again.
            registry.relink(candidate.name, version, where.digest)
    # A version without a verdict was registered by a run that stopped before its gate: gate it now.
    if new or registry.version(candidate.name, version)["gate"] is None:
        current = registry.production(candidate.name)
        production = recorded = None
        if current is not None and current != version:
            row = registry.version(candidate.name, current)
            recorded = row["metrics"]
            try:
                production = _load_candidate(where.context, row)
            except OrchestratorError:
                production = None  # e.g. removed by `orch cache gc`: the gate falls back to its recorded metrics
        gate = judge(candidate, production, None if current == version else current, recorded)
        registry.record_gate(candidate.name, version, gate, where.run_id)
        verdict = ("promoted to production: " if gate.promoted else "registered, not promoted: ") + gate.reason
    else:
        row = registry.version(candidate.name, version)
        stage = "production" if registry.production(candidate.name) == version else "registered"
        verdict = f"already registered as version {version} ({stage}); gate not re-applied"
        if row["gate"]:
            verdict += f"; its gate: {row['gate']['reason']}"
    where.context.lineage.set_run_metrics(where.run_id, {"model": f"{candidate.name}@{version}", "gate": verdict})


register_effect(ModelCandidate, apply_candidate)


# -- loading ------------------------------------------------------------------


def _load_candidate(context: Context, row: dict[str, Any]) -> ModelCandidate:
    from orchestrator.errors import MissingArtifactError

    try:
        value = context.load(row["digest"])
    except MissingArtifactError:
        raise NotFoundError(
            f"model {row['name']}@{row['version']}: its artifact {row['digest']} is no longer in the store "
            f"(removed by `orch cache gc`?). Re-run the run that made it (`orch show {row['run_id']}`) to "
            "store it again.") from None
    if not isinstance(value, ModelCandidate):
        raise NotFoundError(f"model {row['name']}@{row['version']}: artifact {row['digest']} is not a model "
                            "candidate. Was the store edited by hand?")
    return value


@dataclass
class LoadedModel:
    """A registered version, ready to predict."""

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
    """Load ``NAME[@production|@latest|@VERSION]`` from a store (default ``$ORCH_STORE`` or ``./cache``).

    With a store URL, ``metadata`` is the local folder of its metadata database.
    """
    from orchestrator.context import Context

    context = Context.open(store, metadata)
    return load_version(context, ref)


def load_version(context: Context, ref: str, default: str = PRODUCTION) -> LoadedModel:
    row = Registry(context.lineage).resolve(ref, default)
    return LoadedModel(row["name"], int(row["version"]), row, _load_candidate(context, row))
