"""Drift statistics: PSI, Kolmogorov-Smirnov and chi-square, per feature and on predictions.

``compare_frames`` compares a current window with a reference, column by
column, and says for each one ``ok``, ``drift`` or ``insufficient_data``
(with the reason). Every bad window is one of those three, never an
exception and never a silent "no drift": an empty window, a column that is
all NaN, fewer rows than ``min_rows``, a column missing from the window, a
constant column, a single category, an unseen category, ±inf (counted as
missing and compared as a missing ratio).

This module computes; it must not read or write the store, and it imports
numpy, pandas and scipy only inside its functions.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np
    import pandas as pd

OK, DRIFT, INSUFFICIENT = "ok", "drift", "insufficient_data"
# Kinds compared as numbers: a time is given in seconds since 1970 (``feature_times.time_numbers``), and
# text among them is a value that is no time.
NUMBER, TIME = "number", "datetime"
NUMERIC_KINDS = (NUMBER, TIME)
MISSING_COLUMN = "the column is missing from the window"  # the detail of a feature the window lacks
_EPS = 1e-4
NAMES_SHOWN = 10  # drifted columns a reason names; the rest are counted
MIN_LABELS_TESTED = 100  # labelled rows a metric alert needs when a bootstrap tests the fall
MIN_LABELS_UNTESTED = 1000  # ... and when nothing does (the model kept no held-out rows)


@dataclass(frozen=True)
class Thresholds:
    """When a column counts as drifted, and when a check raises an alert.

    A column drifts when its PSI reaches ``psi`` or its test's p-value falls
    below ``p_value`` divided by the number of columns tested (Bonferroni, so
    that many columns do not make false alarms likely), or when its missing
    ratio moves by ``missing`` or more. An alert is raised when at least
    ``drift_share`` of the features drift, when the predictions drift, or
    when a metric falls by ``performance_drop`` or more over enough labelled
    rows and, when the model kept held-out rows, a bootstrap says a fall that
    large is unlikely by chance (its p-value is below ``p_value``). Enough is
    ``min_labels``, or when it is None: ``MIN_LABELS_TESTED`` when the
    bootstrap ran (it already tells a real fall from a noisy sample, so a
    collapsed model alerts on a few hundred labels), else
    ``MIN_LABELS_UNTESTED`` (the count alone must keep the noise down).
    An error metric (rmse, mae) has the scale of the label, so for it the
    drop is relative: the error grew by that fraction of its training value.
    """

    psi: float = 0.2
    p_value: float = 0.01
    missing: float = 0.1
    drift_share: float = 0.0
    performance_drop: float = 0.05
    min_rows: int = 30
    min_labels: int | None = None
    bins: int = 10


@dataclass
class ColumnDrift:
    """The comparison of one column."""

    name: str
    kind: str  # "number" | "datetime" | "category"
    status: str
    psi: float | None = None
    test: str | None = None
    statistic: float | None = None
    p_value: float | None = None
    missing_reference: float | None = None
    missing_current: float | None = None
    detail: str = ""
    reference_hist: list[float] = field(default_factory=list)
    current_hist: list[float] = field(default_factory=list)
    bin_labels: list[str] = field(default_factory=list)


@dataclass
class DriftResult:
    """A whole check: every feature, the predictions, performance, and the verdict."""

    status: str  # "ok" | "alert" | "insufficient_data"
    alert: bool
    reasons: list[str]
    rows_reference: int
    rows_current: int
    features: list[ColumnDrift]
    prediction: ColumnDrift | None = None
    performance: dict[str, Any] | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)

    @property
    def drifted(self) -> list[str]:
        return [f.name for f in self.features if f.status == DRIFT]

    def summary(self) -> dict[str, Any]:
        """The numbers worth keeping over time."""
        return {
            "status": self.status, "alert": self.alert, "reasons": self.reasons,
            "rows_current": self.rows_current, "drifted": self.drifted,
            "psi": {f.name: f.psi for f in self.features},
            "prediction_psi": self.prediction.psi if self.prediction else None,
            "performance": self.performance,
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def psi_number(reference: np.ndarray, current: np.ndarray, bins: int = 10,
               shown: Callable[[float], str] | None = None) -> tuple[float, list[float], list[float], list[str]]:
    """PSI of two finite numeric samples over the reference's quantile bins; also both histograms.

    ``shown`` writes a bin edge in the labels (a time's seconds as its date); ``3.14`` when None.
    """
    import numpy as np

    def label(value: float, digits: str) -> str:
        return shown(value) if shown is not None else format(value, digits)

    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:  # a constant reference: one bin for its value, one for anything else
        value = edges[0]
        ref = np.array([np.mean(reference == value), np.mean(reference != value)])
        cur = np.array([np.mean(current == value), np.mean(current != value)])
        labels = [f"={label(value, 'g')}", f"≠{label(value, 'g')}"]
    else:
        inner = edges[1:-1]
        ref = np.bincount(np.searchsorted(inner, reference, side="right"), minlength=len(edges) - 1) / len(reference)
        cur = np.bincount(np.searchsorted(inner, current, side="right"), minlength=len(edges) - 1) / len(current)
        labels = [f"{label(a, '.3g')}..{label(b, '.3g')}" for a, b in itertools.pairwise(edges)]
    return _psi(ref, cur, len(reference), len(current)), ref.tolist(), cur.tolist(), labels


def psi_category(reference: pd.Series, current: pd.Series) -> tuple[float, list[float], list[float], list[str]]:
    """PSI of two categorical samples over the union of their categories."""
    import numpy as np

    ref_counts = reference.astype(str).value_counts()
    cur_counts = current.astype(str).value_counts()
    labels = sorted(set(ref_counts.index) | set(cur_counts.index))
    ref = np.array([ref_counts.get(c, 0) for c in labels], dtype=float) / max(len(reference), 1)
    cur = np.array([cur_counts.get(c, 0) for c in labels], dtype=float) / max(len(current), 1)
    return _psi(ref, cur, len(reference), len(current)), ref.tolist(), cur.tolist(), labels


def psi_noise(bins: int, n_reference: int, n_current: int) -> float:
    """The PSI two samples of one distribution reach by chance about once in a thousand checks.

    Under no drift, PSI times the effective sample size is close to a
    chi-square with ``bins - 1`` degrees of freedom, whose mean is ``bins - 1``.
    Measured on normal samples against a 3,000-row reference (10 bins, 30 to
    500 rows), the 99.9th percentile of PSI is 3.0 to 3.2 times that mean.
    On small windows this bar is above the usual 0.2 (50 rows over 10 bins:
    about 0.55), which is what keeps PSI from alerting on noise.
    """
    if bins < 2 or n_reference <= 0 or n_current <= 0:
        return 0.0
    return 3.0 * (bins - 1) * (1 / n_reference + 1 / n_current)


def _psi(ref: np.ndarray, cur: np.ndarray, n_ref: int, n_cur: int) -> float:
    """PSI of two histograms (shares of ``n_ref`` and ``n_cur`` values), with half a count added per bin.

    The half count (Jeffreys smoothing) keeps an empty bin from counting as
    a share of almost zero: without it, one empty bin in a 50-row window
    adds about 0.7 to the PSI by itself.
    """
    import numpy as np

    bins = len(ref)
    ref = (ref * n_ref + 0.5) / (n_ref + 0.5 * bins)
    cur = (cur * n_cur + 0.5) / (n_cur + 0.5 * bins)
    ref = np.clip(ref, _EPS, None)
    cur = np.clip(cur, _EPS, None)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def chi_square(reference: pd.Series, current: pd.Series) -> tuple[float, float]:
    """Chi-square test of homogeneity of two categorical samples: (statistic, p-value).

    Categories absent from both are dropped; a single category gives (0, 1):
    there is nothing that could differ.
    """
    import numpy as np
    from scipy import stats

    ref_counts = reference.astype(str).value_counts()
    cur_counts = current.astype(str).value_counts()
    labels = sorted(set(ref_counts.index) | set(cur_counts.index))
    table = np.array([[ref_counts.get(c, 0) for c in labels], [cur_counts.get(c, 0) for c in labels]], dtype=float)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 0.0, 1.0
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    statistic = float(np.sum((table - expected) ** 2 / expected))
    dof = table.shape[1] - 1
    return statistic, float(stats.chi2.sf(statistic, dof))


def compare_column(name: str, kind: str, reference: pd.Series, current: pd.Series,
                   thresholds: Thresholds, tests: int = 1) -> ColumnDrift:
    """Compare one column of the current window with the reference; text in a number column is named.

    Text there (``"0,25"``, a decimal comma; ``"n.a."``) counts as missing, and the detail said only
    ``missing ratio 0.00 → 1.00`` of a column whose every value was filled in.
    """
    out = _compare_column(name, kind, reference, current, thresholds, tests)
    if kind in NUMERIC_KINDS:
        note = _text_in_numbers(current, kind)
        out.detail = "; ".join(part for part in (out.detail, note) if part)
    return out


def _text_in_numbers(values: pd.Series, kind: str = NUMBER) -> str:
    """``3 values are text, not numbers (e.g. '0,25')``, or empty when every present value is a number.

    Of a time: ``3 values are not dates and times (e.g. '31/31/2024')``, the text that did not parse.
    """
    import pandas as pd

    present = values[values.notna()]
    if kind == TIME:
        text = present[[isinstance(v, str) for v in present]]
        said = "not dates and times"
    else:
        text = present[pd.to_numeric(present, errors="coerce").isna()]
        said = "text, not numbers"
    if text.empty:
        return ""
    return f"{len(text)} value{'s are' if len(text) > 1 else ' is'} {said} (e.g. {str(text.iloc[0])[:40]!r})"


def _numbers(values: pd.Series, kind: str) -> np.ndarray:
    """A numeric kind's values as floats, NaN where there is none: text, or of a time text that did not parse."""
    import numpy as np
    import pandas as pd

    if kind == TIME:
        # Unparsed text stays text, even one that reads as a number ('12345', a year out of range).
        values = values.map(lambda v: np.nan if isinstance(v, str) else v)
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _time_label(seconds: float) -> str:
    """A time's seconds since 1970 as ``2024-03-08 14:05``, for bin labels."""
    import pandas as pd

    return pd.Timestamp(seconds, unit="s").strftime("%Y-%m-%d %H:%M")


def _compare_column(name: str, kind: str, reference: pd.Series, current: pd.Series,
                    thresholds: Thresholds, tests: int = 1) -> ColumnDrift:
    import numpy as np

    if kind in NUMERIC_KINDS:
        ref_values, cur_values = _numbers(reference, kind), _numbers(current, kind)
        ref_ok, cur_ok = np.isfinite(ref_values), np.isfinite(cur_values)
    else:
        ref_ok, cur_ok = reference.notna().to_numpy(), current.notna().to_numpy()
    out = ColumnDrift(name, kind, OK,
                      missing_reference=_ratio(ref_ok), missing_current=_ratio(cur_ok))
    n_ref, n_cur = int(ref_ok.sum()), int(cur_ok.sum())
    if len(current) == 0:
        out.status, out.detail = INSUFFICIENT, "the current window is empty"
        return out
    missing_moved = out.missing_current is not None and out.missing_reference is not None and \
        abs(out.missing_current - out.missing_reference) >= thresholds.missing
    if len(current) < thresholds.min_rows:
        # A missing ratio over a handful of rows is noise: 1 missing value of 3 is not a 33% shift.
        out.status = INSUFFICIENT
        out.detail = f"{len(current)} rows in the current window (need {thresholds.min_rows})"
        return out
    if n_ref < thresholds.min_rows or n_cur < thresholds.min_rows:
        which = "reference" if n_ref < thresholds.min_rows else "current window"
        if missing_moved:
            out.status = DRIFT
            out.detail = (f"missing ratio {out.missing_reference:.2f} → {out.missing_current:.2f}; too few "
                          f"values in the {which} for the distribution tests")
        else:
            out.status = INSUFFICIENT
            out.detail = f"{min(n_ref, n_cur)} usable values in the {which} (need {thresholds.min_rows})"
        return out
    from scipy import stats

    if kind in NUMERIC_KINDS:
        ref_f, cur_f = ref_values[ref_ok], cur_values[cur_ok]
        out.psi, out.reference_hist, out.current_hist, out.bin_labels = psi_number(
            ref_f, cur_f, thresholds.bins, _time_label if kind == TIME else None)
        if np.ptp(ref_f) == 0 and np.ptp(cur_f) == 0:
            # Two constant samples: equal or not, a KS test says nothing more than the values do.
            same = ref_f[0] == cur_f[0]
            out.test, out.statistic, out.p_value = "ks", 0.0 if same else 1.0, 1.0 if same else 0.0
        else:
            ks = stats.ks_2samp(ref_f, cur_f)
            out.test, out.statistic, out.p_value = "ks", float(ks.statistic), float(ks.pvalue)
    else:
        ref_c, cur_c = reference[ref_ok], current[cur_ok]
        out.psi, out.reference_hist, out.current_hist, out.bin_labels = psi_category(ref_c, cur_c)
        out.test = "chi2"
        out.statistic, out.p_value = chi_square(ref_c, cur_c)
        unseen = sorted(set(cur_c.astype(str)) - set(ref_c.astype(str)))
        if unseen:
            out.detail = f"unseen categories: {', '.join(unseen[:5])}" + (" …" if len(unseen) > 5 else "")
    out.psi = round(out.psi, 6) if out.psi is not None and math.isfinite(out.psi) else out.psi
    reasons = []
    psi_bar = max(thresholds.psi, psi_noise(len(out.reference_hist or ()), n_ref, n_cur))
    if out.psi is not None and out.psi >= psi_bar:
        raised = f" (raised from {thresholds.psi} for {n_cur} values)" if psi_bar > thresholds.psi else ""
        reasons.append(f"PSI {out.psi:.3f} ≥ {psi_bar:.3g}{raised}")
    if out.p_value is not None and out.p_value < thresholds.p_value / max(tests, 1):
        reasons.append(f"{out.test} p={out.p_value:.2g}")
    if missing_moved:
        reasons.append(f"missing ratio {out.missing_reference:.2f} → {out.missing_current:.2f}")
    if reasons:
        out.status = DRIFT
        out.detail = "; ".join(reasons + ([out.detail] if out.detail else []))
    return out


def _usable(values: pd.Series, kind: str) -> int:
    """How many values of a column the tests can use: finite numbers, or present categories."""
    import numpy as np

    if kind in NUMERIC_KINDS:
        return int(np.isfinite(_numbers(values, kind)).sum())
    return int(values.notna().sum())


def _ratio(ok: np.ndarray) -> float | None:
    return None if len(ok) == 0 else round(float(1 - ok.mean()), 6)


def compare_frames(reference: pd.DataFrame, current: pd.DataFrame, kinds: dict[str, str],
                   thresholds: Thresholds | None = None, *,
                   reference_scores: list[Any] | None = None, current_scores: list[Any] | None = None,
                   performance: dict[str, Any] | None = None, unscored: str = "",
                   prediction_kind: str = "number") -> DriftResult:
    """Compare ``current`` with ``reference`` on the columns of ``kinds`` (name → "number"/"datetime"/"category").

    A ``"datetime"`` column holds seconds since 1970 (and, where a value did not parse, its text), and
    is compared as numbers.

    ``reference_scores``/``current_scores`` are the model's outputs on each
    (prediction drift): numbers (a probability, a regressor's value) or, with
    ``prediction_kind="category"``, predicted classes; ``performance`` is ``{"metric", "reference",
    "current"}`` when labels are available. ``unscored`` says why the model
    could not score a window that has every feature column (its predictions
    are then not compared, so the verdict cannot be ``ok``).

    The verdict is ``insufficient_data`` (never an alert) for a window of
    fewer than ``min_rows`` rows; otherwise ``alert`` when something drifted,
    ``insufficient_data`` when columns of ``kinds`` are missing from the
    window (they are named in the reasons) or no feature has usable values,
    and ``ok`` only when every column was compared.
    """
    import pandas as pd

    t = thresholds or Thresholds()
    features = []
    absent = [name for name in kinds if name not in current.columns]
    for name, kind in kinds.items():
        if name in absent:
            features.append(ColumnDrift(name, kind, INSUFFICIENT, detail=MISSING_COLUMN))
        elif name not in reference.columns:
            features.append(ColumnDrift(name, kind, INSUFFICIENT, detail="the training reference has no such column"))
        else:
            features.append(compare_column(name, kind, reference[name], current[name], t, tests=len(kinds)))
    prediction = None
    if reference_scores is not None and current_scores is not None:
        dtype = float if prediction_kind == "number" else object
        prediction = compare_column("prediction", prediction_kind, pd.Series(reference_scores, dtype=dtype),
                                    pd.Series(current_scores, dtype=dtype), t)
    reasons = []
    drifted = [f.name for f in features if f.status == DRIFT]
    measured = [f for f in features if f.status != INSUFFICIENT]
    if drifted and len(drifted) / max(len(features), 1) >= t.drift_share:
        # The first names only: every name of a wide table made this one line thousands of characters
        # long, in the verdict and in the history; ``drifted`` keeps them all.
        shown = ", ".join(drifted[:NAMES_SHOWN]) + (f" … and {len(drifted) - NAMES_SHOWN} more"
                                                   if len(drifted) > NAMES_SHOWN else "")
        reasons.append(f"{len(drifted)} of {len(features)} features drifted: {shown}")
    if prediction is not None and prediction.status == DRIFT:
        reasons.append(f"predictions drifted ({prediction.detail})")
    if performance and performance.get("current") is not None and performance.get("reference") is not None:
        from orchestrator.registry import higher_is_better

        before, now = performance["reference"], performance["current"]
        error = not higher_is_better(performance["metric"])
        drop = now - before if error else before - now
        # An error's size is the label's scale (dollars, days): 0.05 more RMSE is nothing on house
        # prices and a lot on a probability, so an error metric is judged by its relative growth.
        judged = drop / before if error and before > 0 else drop
        performance = {**performance, "drop": round(drop, 6)}
        if error and before > 0:
            performance["relative_drop"] = round(judged, 6)
        chance = performance.get("p_value")
        floor = t.min_labels if t.min_labels is not None else (
            MIN_LABELS_UNTESTED if chance is None else MIN_LABELS_TESTED)
        if performance.get("reference_unreliable"):
            pass  # measured on too few rows at training: its note says so, and no fall from it is an alert
        elif performance.get("rows", 0) < floor:
            performance["note"] = f"fewer than {floor} labelled rows: too noisy to alert on"
        elif judged >= t.performance_drop and chance is not None and chance >= t.p_value:
            worse = f"worse by {judged:.1%}" if error and before > 0 else f"down {drop:.4f}"
            performance["note"] = (f"{worse}, within chance: p={chance:.3g} ≥ {t.p_value:g} "
                                   "(a bootstrap of the batch's and the held-out rows)")
        elif judged >= t.performance_drop:
            reasons.append(f"{performance['metric']} rose from {before:.4f} to {now:.4f} (worse by {judged:.1%})"
                           if error and before > 0 else
                           f"{performance['metric']} {'rose' if error else 'fell'} from {before:.4f} to "
                           f"{now:.4f}")
    not_compared = _not_compared(kinds, reference, absent, reference_scores is not None and current_scores is None,
                                 unscored)
    if len(current) < t.min_rows:
        # Too few rows to say anything: never an alert, whatever a column or the metric seems to show.
        status, alert = INSUFFICIENT, False
        reasons = ["not enough data to compare: " + (
            "the window is empty" if len(current) == 0 else
            f"{len(current)} rows in the window; at least {t.min_rows} are needed")]
    elif reasons:
        status, alert = "alert", True
        reasons += [not_compared] if not_compared else []
    elif not_compared:
        # Silence on the columns that are there does not vouch for the ones that are not.
        status, alert = INSUFFICIENT, False
        reasons.append(not_compared)
    elif not measured:
        status, alert = INSUFFICIENT, False
        compared = [f for f in features if f.name in reference.columns and f.name in current.columns]
        if compared and all(_usable(reference[f.name], f.kind) < t.min_rows <= _usable(current[f.name], f.kind)
                            for f in compared):
            # The window was blamed ("200 rows, every feature lacks usable values") when the model was
            # trained on a handful of rows and its reference is what is too small.
            reasons.append(f"not enough data to compare: the training reference has {len(reference)} rows, fewer "
                           f"usable values than the {t.min_rows} each feature needs; register the model with a "
                           "larger reference (ModelCandidate(reference=...)) to monitor it")
        else:
            reasons.append(f"not enough data to compare: {len(current)} rows, every feature lacks usable values "
                           f"(need {t.min_rows} per feature)")
    else:
        status, alert = OK, False
    return DriftResult(status, alert, reasons, len(reference), len(current), features, prediction, performance, t)


def _not_compared(kinds: dict[str, str], reference: pd.DataFrame, absent: list[str], no_predictions: bool,
                  unscored: str = "") -> str:
    """Which columns (and predictions) a check could not compare, and why, as one reason ("" when it compared them all)."""
    parts = []
    if unscored and not absent:
        parts.append(f"the predictions are not compared: {unscored}")
    if absent:
        parts.append(f"the window lacks {len(absent)} of {len(kinds)} feature columns ({_listed(absent)}): "
                     + ("it is" if len(absent) == 1 else "they are") + " not compared"
                     + (", nor are the predictions (the model needs every feature)" if no_predictions else ""))
    unreferenced = [name for name in kinds if name not in reference.columns and name not in absent]
    if unreferenced:
        parts.append(f"the training reference lacks {_listed(unreferenced)}, so there is nothing to compare "
                     + ("it" if len(unreferenced) == 1 else "them") + " with")
    return "; ".join(parts)


def _listed(names: list[str], limit: int = 10) -> str:
    """``a, b, c`` or, past ``limit`` names, the first ones and ``… and N more``: a reason stays one readable line
    when a batch of a 500-column table lacks 30 of them (the report lists each column)."""
    return ", ".join(names[:limit]) + (f" … and {len(names) - limit} more" if len(names) > limit else "")
