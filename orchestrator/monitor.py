"""Monitoring: compare a new batch, or the served request log, with a model's training reference.

``check_model`` runs the drift statistics of ``orchestrator.drift`` on a
registered version (features, predictions, and performance when the batch
has labels), against a batch or the requests that version served; ``record_check`` writes the JSON and HTML reports under
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
    from orchestrator.registry import LoadedModel, ModelCandidate


@dataclass(frozen=True)
class DriftCheck:
    """What a monitoring step returns: the result and what it compared, for the driver to record."""

    name: str
    model_digest: str
    source: str
    result: DriftResult


def read_table(path: str | Path, what: str = "batch file") -> pd.DataFrame:
    """Read a CSV or Parquet batch that has at least one row (``what`` names it in messages).

    Raises:
        UserError: the file is missing, a folder, of another type, empty,
            unreadable as its extension says, or has no rows.
    """
    import pandas as pd

    p = Path(path)
    if p.is_dir():
        raise UserError(f"{what} {p} is a folder. Give a .csv or .parquet file.")
    if not p.is_file():
        raise UserError(f"{what} {p} does not exist. Give a .csv or .parquet file.")
    suffixes = [x.lower() for x in p.suffixes]
    suffix = p.suffix.lower()
    # A compressed CSV (``batch.csv.gz``), as the lifecycle pipeline trains and monitors from.
    compressed = suffix in _COMPRESSED and len(suffixes) > 1 and suffixes[-2] in _CSV
    if suffix not in _PARQUET + _CSV and not compressed:
        raise UserError(f"{what} {p} has the extension '{p.suffix}', which is neither .csv (also compressed, "
                        ".csv.gz) nor .parquet. Convert it, or rename it if it is one.")
    if p.stat().st_size == 0:
        raise UserError(f"{what} {p} is empty (0 bytes). Give a file with a header and at least one row.")
    if suffix in _PARQUET:
        try:
            frame = pd.read_parquet(p)
        except Exception:  # noqa: BLE001 - pyarrow raises several types for a file that is not Parquet
            raise UserError(f"{what} {p} is not a readable Parquet file: it is damaged, or another format "
                            "renamed .parquet. Write it with DataFrame.to_parquet, or rename it .csv if it is "
                            "CSV text.") from None
    else:
        try:
            frame = pd.read_csv(p)
        except pd.errors.EmptyDataError:
            raise UserError(f"{what} {p} holds no CSV columns (only blank lines). "
                            "Give a file with a header and at least one row.") from None
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
            raise UserError(f"{what} {p} is not a readable CSV file ({_first_line(exc, p)}). "
                            "Check that it is comma-separated UTF-8 text with one header row.") from None
        except (OSError, EOFError, ImportError) as exc:
            if not compressed:
                raise
            raise UserError(f"{what} {p} is not readable as {suffix[1:]}-compressed CSV ({_first_line(exc, p)}). "
                            "Check that it was compressed whole, or give the .csv itself.") from None
    if frame.empty:
        raise UserError(f"{what} {p} has columns but no rows. Give a batch with at least one row "
                        "(30 or more to compare distributions).")
    return frame


_PARQUET, _CSV = (".parquet", ".pq"), (".csv", ".txt")
_COMPRESSED = (".gz", ".bz2", ".zip", ".xz", ".zst")  # what pandas reads a CSV from by its extension


def _first_line(exc: BaseException, path: Path) -> str:
    """The first line of a reader's error, without the path it repeats, shortened to fit one line."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    text = text.replace(f"'{path}'", "the file").replace(str(path), "the file")
    return text if len(text) <= 160 else text[:157] + "..."


def refuse_foreign_batch(candidate: ModelCandidate, batch: pd.DataFrame, source: str, model: str = "") -> None:
    """Refuse a batch that has none of ``candidate``'s feature columns: there is nothing to compare.

    ``compare`` leaves out the columns a batch lacks; with none left, a batch of another table
    read as "insufficient data" rather than as the wrong file. ``model`` names it (``churn v3``).

    Raises:
        UserError: naming the model's columns, the batch's, and a separator hint.
    """
    features = candidate.feature_names
    if features and not any(f in batch.columns for f in features):
        shown = ", ".join(map(str, batch.columns[:8])) + (" ..." if len(batch.columns) > 8 else "")
        raise UserError(f"{source} has none of the feature columns of {model or repr(candidate.name)} "
                        f"({', '.join(features)}); its columns are {shown}. " + _separator_hint(batch))


def compare(candidate: ModelCandidate, batch: pd.DataFrame, thresholds: Thresholds | None = None) -> DriftResult:
    """Drift of ``batch`` against the candidate's reference: features, predictions, performance.

    Feature columns missing from ``batch`` are not compared (nor, then, the
    predictions); the result names them and is ``insufficient_data`` unless
    something else drifted.

    Raises:
        UserError: the candidate has no reference (``ModelCandidate(reference=None)``)
            or its reference is not a DataFrame.
    """
    import pandas as pd

    from orchestrator.model_frames import prediction_values, unknown_labels

    reference = candidate.reference
    if reference is None:
        raise UserError(f"model '{candidate.name}' was registered without a training reference, so there is "
                        "nothing to compare a batch with. Pass reference=<a sample of the training features> "
                        "to ModelCandidate in its pipeline, and run it again to register a version that has one.")
    if not isinstance(reference, pd.DataFrame):
        raise UserError(f"model '{candidate.name}' has a training reference of type {type(reference).__name__}, "
                        "not a pandas DataFrame. Pass reference=<a DataFrame of training features> to "
                        "ModelCandidate in its pipeline, and run it again.")
    kinds = {f["name"]: f["kind"] for f in candidate.features}
    ref_scores: list[Any] | None = None
    score_kind = "number"
    # Why the predictions could not be compared, when the model refused to score: said in the verdict,
    # since a window the production model cannot score must not read as ``ok``.
    unscored = ""
    if len(reference) and all(name in reference.columns for name in kinds):
        try:
            score_kind, ref_scores = prediction_values(candidate, reference)
        except Exception as exc:  # noqa: BLE001 - a reference the model cannot score still gives feature drift
            ref_scores, unscored = None, f"the model cannot score its training reference ({_refusal(exc)})"
    cur_scores: list[Any] | None = None
    # Only the feature columns the batch has: adding the others as all-NaN would read as a missing-ratio drift.
    usable = batch[[name for name in kinds if name in batch.columns]]
    if len(batch) and all(name in batch.columns for name in kinds):
        try:
            score_kind, cur_scores = prediction_values(candidate, _coerce(usable, candidate))
        except Exception as exc:  # noqa: BLE001 - rows the model cannot score still get feature drift
            cur_scores = None
            unscored = unscored or f"the model cannot score the window ({_refusal(exc)})"
    performance: dict[str, Any] | None = None
    labels = int(batch[candidate.label].notna().sum()) if candidate.label in batch.columns else 0
    if candidate.label in batch.columns and cur_scores is not None and labels < 2:
        performance = _too_few_labels(candidate, labels)
    elif candidate.label in batch.columns and cur_scores is not None:
        labelled = batch[batch[candidate.label].notna()]
        unknown = unknown_labels(candidate.task, candidate.model, labelled[candidate.label])
        if unknown:
            performance = {"metric": candidate.metric, "reference": candidate.metrics.get(candidate.metric),
                           "current": None, "rows": len(labelled), "note": _unknown_note(candidate, unknown)}
        else:
            performance = _performance(candidate, labelled, kinds)
    elif candidate.label not in batch.columns and cur_scores is not None:
        performance = _label_misnamed(candidate, [str(c) for c in batch.columns if c not in kinds])
    return compare_frames(_compared(reference, candidate), _compared(usable, candidate), kinds, thresholds,
                          reference_scores=ref_scores, current_scores=cur_scores, performance=performance,
                          unscored=unscored, prediction_kind=score_kind)


def _compared(frame: pd.DataFrame, candidate: ModelCandidate) -> pd.DataFrame:
    """``frame`` as the drift tests compare it: a category written in numbers as its codes' texts, a time
    as its seconds since 1970 (text that does not parse kept, for the detail to name).

    The reference holds a postcode as the float of its training column (``75001.0``), and a batch or
    the request log as ``75001`` or ``"75001"``: compared as they were written, every code was 'unseen'.
    A time is a ``datetime64`` in the reference and text in a CSV batch or the request log.
    """
    from orchestrator.feature_codes import code_texts, is_code
    from orchestrator.feature_times import is_time, time_numbers

    changed = {f["name"]: code_texts(frame[f["name"]]) if is_code(f) else time_numbers(frame[f["name"]], f)
               for f in candidate.features if (is_code(f) or is_time(f)) and f["name"] in frame.columns}
    return frame.assign(**changed) if changed else frame


def _too_few_labels(candidate: ModelCandidate, labels: int) -> dict[str, Any]:
    """The note of a label column with no value, or one only: no metric, said rather than skipped.

    Such a batch printed no performance line and gave ``"performance": null``, as if it had no
    label column, where labels of the wrong type were said to be unscorable.
    """
    note = (f"the label column '{candidate.label}' has no values: fill in the labels to measure {candidate.metric}"
            if not labels else
            f"the label column '{candidate.label}' has only 1 labelled row: {candidate.metric} needs at least 2")
    return {"metric": candidate.metric, "reference": candidate.metrics.get(candidate.metric), "current": None,
            "rows": labels, "note": note}


def _label_misnamed(candidate: ModelCandidate, others: list[str]) -> dict[str, Any] | None:
    """A note when the batch has no label column but one named like it but for case and punctuation.

    A batch without labels is usual (no performance, nothing said); one whose label column came back
    as ``Species`` or ``is-fraud`` (for ``species``, ``is_fraud``) lost its performance check without a
    word. Only spelling that differs in case, spaces, ``_`` or ``-`` counts: a merely similar name
    (``target_date`` for ``target``) is another column.
    """
    def folded(name: str) -> str:
        return re.sub(r"[\s_\-]", "", name).casefold()

    close = next((name for name in others if folded(name) == folded(str(candidate.label))), None)
    if close is None:
        return None
    return {"metric": candidate.metric, "reference": candidate.metrics.get(candidate.metric), "current": None,
            "rows": 0, "note": f"the batch has no label column '{candidate.label}', and its column '{close}' is not "
                               f"taken for it: rename it '{candidate.label}' to measure {candidate.metric}"}


def _unknown_note(candidate: ModelCandidate, unknown: list[Any]) -> str:
    """Why labels the model was not trained on are not scored, naming them and the model's classes."""
    classes = [str(c) for c in getattr(candidate.model, "classes_", [])]
    shown = ", ".join(repr(v) for v in unknown[:5]) + (f" … and {len(unknown) - 5} more"
                                                                    if len(unknown) > 5 else "")
    return (f"the labels in column '{candidate.label}' include {shown}, which the model was not trained on "
            f"(its classes: {', '.join(classes[:10])}{' …' if len(classes) > 10 else ''}); encode the labels "
            "as the training data did")


def _performance(candidate: ModelCandidate, labelled: pd.DataFrame, kinds: dict[str, str]) -> dict[str, Any]:
    """The gate metric on the labelled rows of a window, with its chance p-value, or a note saying why not."""
    from orchestrator.model_frames import score, scored_metrics

    scored = None
    try:
        scored = score(candidate.task, candidate.model, _coerce(labelled[list(kinds)], candidate),
                       labelled[candidate.label])
        current = scored_metrics(scored)
        performance = {"metric": candidate.metric, "reference": candidate.metrics.get(candidate.metric),
                       "current": current.get(candidate.metric), "rows": len(labelled)}
    except Exception as exc:  # noqa: BLE001 - labels the metric cannot take: said, not silently dropped
        performance = {"metric": candidate.metric, "reference": candidate.metrics.get(candidate.metric),
                       "current": None, "rows": len(labelled),
                       "note": f"the labels in column '{candidate.label}' cannot be scored ({_refusal(exc)})"}
    unreliable = _unreliable_reference(candidate)
    if unreliable and performance["current"] is not None:
        # A figure from 8 test rows is luck: resampling 8 perfectly ordered rows never varies, so every
        # batch 'fell from 1.0000' by chance alone, and the alert said nothing about the model.
        performance.update(reference_unreliable=True, note=unreliable)
        return performance
    if performance["current"] is None:
        performance.setdefault("note", f"{candidate.metric} cannot be measured on these labels (ROC-AUC needs "
                                       "every class among them)" if candidate.metric == "roc_auc" else
                               f"{candidate.metric} cannot be measured on these labels")
    elif scored is not None:
        performance.update(_chance(candidate, scored, kinds))
    return performance


def _unreliable_reference(candidate: ModelCandidate) -> str | None:
    """Why the version's own figure of its gate metric is too unreliable to alert against, or None."""
    from orchestrator.gate_checks import gather, size_problem

    try:
        problem = size_problem(candidate, gather(candidate, baseline=False))
    except Exception:  # noqa: BLE001 - held-out rows that cannot be counted: compared as before
        return None
    if problem is None:
        return None
    return (f"not compared with the figure at training, which is unreliable: {problem.split(': ')[0]}; "
            "register a model evaluated on more rows to monitor its performance")


def _chance(candidate: ModelCandidate, scored: Any, kinds: dict[str, str]) -> dict[str, Any]:
    """``{"p_value": p}``: how likely the labelled batch scores no worse than the held-out rows did.

    The reference metric comes from one sample of held-out rows (often a few
    hundred), and the batch is another sample, so a few percent either way
    is chance; the alert needs this to be small as well. ``scored`` is the labelled batch as
    ``model_frames.score`` scored it for its metric, not scored again. Empty when the
    candidate kept no held-out rows (``eval_data``) with every feature and the label.
    """
    import pandas as pd

    from orchestrator.model_frames import worse_by_chance

    held_out = candidate.eval_data
    if not isinstance(held_out, pd.DataFrame) or candidate.label not in held_out.columns \
            or any(name not in held_out.columns for name in kinds):
        return {}
    held_out = held_out[held_out[candidate.label].notna()]
    try:
        p = worse_by_chance(candidate.task, candidate.model, candidate.metric,
                            (held_out[list(kinds)], held_out[candidate.label]), scored)
    except Exception:  # noqa: BLE001 - no p-value: the threshold alone decides, as without held-out rows
        return {}
    return {} if p is None else {"p_value": round(p, 4)}


def _refusal(exc: BaseException) -> str:
    """``ValueError: Input X contains NaN.``: the first line of a model's refusal, cut to fit one line."""
    text = (str(exc).strip().splitlines() or [""])[0]
    text = text if len(text) <= 160 else text[:157] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _coerce(frame: pd.DataFrame, candidate: ModelCandidate) -> pd.DataFrame:
    """``frame`` as the model takes it: text in a number column and ±inf as NaN, blanks as NaN, codes as numbers,
    times (a CSV's text) as the training dtype, NaT where they do not parse."""
    import numpy as np
    import pandas as pd

    from orchestrator.feature_codes import as_codes, is_code
    from orchestrator.feature_times import as_times, is_time

    out = frame.copy()
    for f in candidate.features:
        if f["kind"] == "number":
            out[f["name"]] = pd.to_numeric(out[f["name"]], errors="coerce").replace([np.inf, -np.inf], np.nan)
        elif is_code(f):
            out[f["name"]] = as_codes(out[f["name"]])
        elif is_time(f):
            out[f["name"]] = as_times(out[f["name"]], f)
        else:
            out[f["name"]] = out[f["name"]].astype(object).where(out[f["name"]].notna(), np.nan)
    return out


def check_model(context: Context, ref: str, batch: pd.DataFrame | None,
                thresholds: Thresholds | None = None, last: int = 5000,
                source: str = "batch", since: float | None = None,
                loaded: LoadedModel | None = None) -> tuple[dict[str, Any], DriftResult, str]:
    """Compare ``batch`` (or, if None, the last ``last`` requests served by that version) with version ``ref``.

    ``ref`` without a version means the production version; the request log
    is read for the resolved version only, since another version's requests
    say nothing about this one, and, with ``since`` (Unix time), for the
    requests answered since then (each by its own time). ``source`` names the
    batch in messages. ``loaded`` is version ``ref`` when the caller loaded it already (not loaded again).

    Returns the version row, the result and a description of the source.

    Raises:
        UserError: the version's artifact is damaged, it has no training
            reference, or the batch has none of its feature columns.
        NotFoundError: no such model or version, or its artifact is gone.
    """
    from orchestrator.request_log import read_requests

    loaded = loaded if loaded is not None else _load(context, ref)
    name, version = loaded.name, loaded.version
    from_log = batch is None
    if batch is None:
        batch, _ = read_requests(context, name, version=version, since=since, limit=last)
        source = window_source(version, since, len(batch))
    else:
        refuse_foreign_batch(loaded.candidate, batch, source, f"{name} v{version}")
    result = compare(loaded.candidate, batch, thresholds)
    if from_log and not len(batch):
        served = "; ".join(f"v{v} served {n} (`orch monitor {name}@{v}`)"
                           for v, n in served_by_other_versions(context, name, version))
        from orchestrator.request_log import logged_entries

        if since is not None and logged_entries(context, name, version=version, limit=1):  # else --since is no fix
            result.reasons.append(f"no requests served by {name} v{version} since {when_text(since)} are logged: "
                                  "give an earlier --since, or drop it to read the latest requests")
        else:
            result.reasons.append(f"no requests served by {name} v{version} are logged: serve it with "
                                  f"`orch serve {name}@{version}`, or pass --batch FILE"
                                  + (f" ({served})" if served else ""))
    return loaded.row, result, source


def served_by_other_versions(context: Context, name: str, version: int) -> list[tuple[int, int]]:
    """``(version, requests logged)`` of each other version of ``name`` that has any: where to point a
    user whose version has none (a promotion moved production on; the requests are the old one's)."""
    from orchestrator.request_log import open_counts

    rows = context.lineage.rows("SELECT version, SUM(rows) AS n FROM request_segments WHERE name=? "
                                "AND version<>? GROUP BY version ORDER BY version", (name, version))
    served = {int(r["version"]): int(r["n"]) for r in rows}
    # And what a running server has not sealed yet: the open segments are read as the monitor reads them.
    for other, n in open_counts(context, name).items():
        if other != version:
            served[other] = served.get(other, 0) + n
    return sorted(served.items())


def window_source(version: int, since: float | None, rows: int) -> str:
    """``served requests of v2 since 2026-11-27 10:00:00 (last 300)``: the window read, for messages."""
    window = "" if since is None else f"since {when_text(since)} "
    return f"served requests of v{version} {window}" + (f"(last {rows})" if rows else "(none logged)")


def when_text(at: float) -> str:
    """A Unix time as local ``2026-11-27 10:00:00``, as the history shows times."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))


def _separator_hint(batch: pd.DataFrame) -> str:
    """The fix for a batch with no feature column: another separator than the comma, or the wrong file.

    A semicolon-separated CSV (Excel's export in many locales) reads as one column named
    ``id;x1;x2;...``, which holds every feature name and matches none.
    """
    if len(batch.columns) == 1:
        for sep, said in ((";", "semicolons"), ("\t", "tabs"), ("|", "'|'")):
            if sep in str(batch.columns[0]):
                return (f"It looks separated by {said}: a CSV batch is read comma-separated; write it with "
                        "DataFrame.to_csv(path, index=False), or save it as Parquet.")
    return "Is it the right file?"


def _load(context: Context, ref: str) -> LoadedModel:
    """The registered version, or one line (exit 2) on why its artifact cannot be loaded: no drift verdict."""
    from orchestrator.registry import usable_version

    return usable_version(context, ref)


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
    try:
        _write_atomic(json_path, json.dumps(doc, indent=2, default=_json_default, allow_nan=False))
        _write_atomic(html_path, render_html(doc, [*history, {"at": doc["at"], "summary": result.summary()}]))
        with context.lineage.transaction() as c:
            c.execute("INSERT INTO drift_checks (name, version, at, source, status, alert, summary, report_json, "
                      "report_html, run_id) VALUES (?,?,?,?,?,?,?,?,?,?)",
                      (name, version, doc["at"], source, result.status, int(result.alert),
                       json.dumps(_sanitize(result.summary()), default=_json_default), str(json_path),
                       str(html_path), run_id))
    except BaseException:
        # A full disk (the HTML, or the row, did not fit): no report the history does not list.
        for written in (json_path, html_path):
            written.unlink(missing_ok=True)
        raise
    return json_path, html_path


def history_rows(context: Context, name: str, limit: int | None = None) -> list[dict[str, Any]]:
    """The drift checks of ``name``, oldest first (the newest ``limit`` of them)."""

    sql = "SELECT rowid, * FROM drift_checks WHERE name=? ORDER BY at DESC, rowid DESC"
    if limit:
        sql += f" LIMIT {int(limit)}"
    rows = context.lineage.rows(sql, (name,))
    for r in rows:
        rowid = r.pop("rowid")
        r["summary"] = context.lineage.decode(r["summary"], f"drift_checks.summary of {name} (rowid {rowid})") or {}
        r["alert"] = bool(r["alert"])
    rows.reverse()
    return rows


def _write_atomic(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all; a failed write (a full disk) leaves no partial temp file."""
    temp = path.with_name(f".{path.name}.tmp")
    try:
        temp.write_text(text, encoding="utf-8")
        temp.replace(path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


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
