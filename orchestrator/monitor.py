"""Monitoring: compare a new batch, or the served request log, with a model's training reference.

``check_model`` runs the drift statistics of ``orchestrator.drift`` on a
registered version (features, predictions, and performance when the batch
has labels); ``record_check`` writes the JSON and HTML reports under
``<store>/reports/<model>/`` and keeps the summary in the ``drift_checks``
table, so ``orch monitor NAME --history`` shows drift over time. A step that
monitors returns a :class:`DriftCheck`, which the run's driver records
through the same function (an effect), since steps must not write the
metadata database.

This module must not serve requests or train models, and must not import
pandas at import time.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.drift import DriftResult, Thresholds, compare_frames
from orchestrator.effects import EffectContext, register_effect
from orchestrator.errors import UserError

if TYPE_CHECKING:
    import pandas as pd

    from orchestrator.context import Context
    from orchestrator.registry import ModelCandidate


@dataclass(frozen=True)
class DriftCheck:
    """What a monitoring step returns: the result and what it compared, for the driver to record."""

    name: str
    model_digest: str
    source: str
    result: DriftResult


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet file.

    Raises:
        UserError: the file is missing or has another extension.
    """
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise UserError(f"batch file {p} does not exist. Give a .csv or .parquet file.")
    if p.suffix.lower() in (".parquet", ".pq"):
        return pd.read_parquet(p)
    if p.suffix.lower() in (".csv", ".txt"):
        return pd.read_csv(p)
    raise UserError(f"batch file {p} is neither .csv nor .parquet. Convert it, or rename it if it is one.")


def compare(candidate: ModelCandidate, batch: pd.DataFrame, thresholds: Thresholds | None = None) -> DriftResult:
    """Drift of ``batch`` against the candidate's reference: features, predictions, performance."""
    from orchestrator.registry import evaluate, prediction_scores

    kinds = {f["name"]: f["kind"] for f in candidate.features}
    reference = candidate.reference
    ref_scores = prediction_scores(candidate, reference) if reference is not None and len(reference) else None
    cur_scores = None
    usable = batch.reindex(columns=list(kinds))
    if len(batch) and all(name in batch.columns for name in kinds):
        try:
            cur_scores = prediction_scores(candidate, _coerce(usable, candidate))
        except Exception:  # noqa: BLE001 - rows the model cannot score still get feature drift
            cur_scores = None
    performance = None
    if candidate.label in batch.columns and cur_scores is not None and batch[candidate.label].notna().sum() >= 2:
        labelled = batch[batch[candidate.label].notna()]
        try:
            current = evaluate(candidate.task, candidate.model, _coerce(labelled.reindex(columns=list(kinds)),
                                                                        candidate), labelled[candidate.label])
            performance = {"metric": candidate.metric, "reference": candidate.metrics.get(candidate.metric),
                           "current": current.get(candidate.metric), "rows": len(labelled)}
        except Exception:  # noqa: BLE001 - e.g. one class only in the labels: no performance figure
            performance = None
    return compare_frames(reference, usable, kinds, thresholds, reference_scores=ref_scores,
                          current_scores=cur_scores, performance=performance)


def _coerce(frame: pd.DataFrame, candidate: ModelCandidate) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    out = frame.copy()
    for f in candidate.features:
        if f["kind"] == "number":
            out[f["name"]] = pd.to_numeric(out[f["name"]], errors="coerce").replace([np.inf, -np.inf], np.nan)
        else:
            out[f["name"]] = out[f["name"]].astype(object).where(out[f["name"]].notna(), np.nan)
    return out


def check_model(context: Context, ref: str, batch: pd.DataFrame | None,
                thresholds: Thresholds | None = None, last: int = 5000) -> tuple[dict[str, Any], DriftResult, str]:
    """Compare ``batch`` (or, if None, the last ``last`` served requests) with version ``ref``.

    Returns the version row, the result and a description of the source.
    """
    from orchestrator.registry import load_version
    from orchestrator.request_log import read_requests

    loaded = load_version(context, ref)
    if batch is None:
        batch, _ = read_requests(context, loaded.name, limit=last)
        source = f"served requests (last {len(batch)})"
    else:
        source = "batch"
    return loaded.row, compare(loaded.candidate, batch, thresholds), source


def record_check(context: Context, name: str, version: int | None, result: DriftResult, source: str,
                 run_id: str | None = None) -> tuple[Path, Path]:
    """Write the JSON and HTML reports and add the check to the model's drift history."""
    from orchestrator.monitor_report import render_html

    folder = context.root / "reports" / re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime()) + f"-{time.time_ns() % 1_000_000:06d}"
    doc = _sanitize({"model": name, "version": version, "source": source, "at": time.time(), **result.to_dict()})
    json_path = folder / f"drift-{stamp}.json"
    html_path = folder / f"drift-{stamp}.html"
    history = history_rows(context, name, limit=50)
    _write_atomic(json_path, json.dumps(doc, indent=2, default=_json_default, allow_nan=False))
    _write_atomic(html_path, render_html(doc, [*history, {"at": doc["at"], "summary": result.summary()}]))
    with context.lineage.transaction() as c:
        c.execute("INSERT INTO drift_checks (name, version, at, source, status, alert, summary, report_json, "
                  "report_html, run_id) VALUES (?,?,?,?,?,?,?,?,?,?)",
                  (name, version, doc["at"], source, result.status, int(result.alert),
                   json.dumps(_sanitize(result.summary()), default=_json_default), str(json_path), str(html_path), run_id))
    return json_path, html_path


def history_rows(context: Context, name: str, limit: int | None = None) -> list[dict[str, Any]]:
    """The drift checks of ``name``, oldest first (the newest ``limit`` of them)."""

    sql = "SELECT * FROM drift_checks WHERE name=? ORDER BY at DESC, rowid DESC"
    if limit:
        sql += f" LIMIT {int(limit)}"
    rows = context.lineage.rows(sql, (name,))
    for r in rows:
        r["summary"] = json.loads(r["summary"]) if r["summary"] else {}
        r["alert"] = bool(r["alert"])
    rows.reverse()
    return rows


def _write_atomic(path: Path, text: str) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(text, encoding="utf-8")
    temp.replace(path)


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def _sanitize(value: Any) -> Any:
    """Replace non-finite floats by None so that reports are strict JSON."""
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, dict):
        return {k: _sanitize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_sanitize(v) for v in value]
    return value


def _record_drift_check(where: EffectContext, check: DriftCheck) -> None:

    row = where.context.lineage.conn.execute(
        "SELECT version FROM model_versions WHERE name=? AND model_digest=?", (check.name, check.model_digest)
    ).fetchone()
    version = None if row is None else int(row[0])
    # Idempotent: a cached monitor step re-applies its effect, which records the check once per run only.
    done = where.context.lineage.conn.execute(
        "SELECT 1 FROM drift_checks WHERE name=? AND run_id=? AND source=?",
        (check.name, where.run_id, check.source)).fetchone()
    if done is None:
        record_check(where.context, check.name, version, check.result, check.source, where.run_id)
    where.context.lineage.set_run_metrics(where.run_id, {
        f"drift_{check.source}": check.result.status + (": " + "; ".join(check.result.reasons)
                                                        if check.result.reasons else "")})


register_effect(DriftCheck, _record_drift_check)
