"""Checks on what users hand the model registry: references, candidates and gate settings.

``parse_ref`` reads ``NAME``, ``NAME@VERSION``, ``NAME@production`` and
``NAME@latest`` strictly (ASCII digits, a sane range), for every command
that takes one. ``check_candidate`` names every problem of a
``ModelCandidate`` in one line, so that a wrong candidate fails the step that
made it and the registry never holds a version it cannot gate;
``check_gate_settings`` lets a pipeline check its gate parameters before any
step runs. Pure functions: no database, no pandas.
"""

from __future__ import annotations

import difflib
import math
import numbers
import re
from typing import TYPE_CHECKING

from orchestrator.errors import ParameterError, UserError

if TYPE_CHECKING:
    from orchestrator.registry import ModelCandidate

PRODUCTION = "production"
LATEST = "latest"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
# ASCII digits only: str.isdigit() also accepts '٣' or '²', which SQLite would never match.
_VERSION = re.compile(r"[vV]?([0-9]+)", re.ASCII)
MAX_VERSION = 2**31 - 1  # far beyond any real registry, and well inside SQLite's integers
REF_FORMS = "NAME, NAME@VERSION, NAME@production or NAME@latest"
LOWER_IS_BETTER = frozenset({"rmse", "mae", "log_loss"})
CLASSIFICATION_METRICS = ("accuracy", "f1", "roc_auc", "balanced_accuracy")
REGRESSION_METRICS = ("rmse", "mae", "r2")
TASK_METRICS = {"classification": CLASSIFICATION_METRICS, "regression": REGRESSION_METRICS}
TASKS = tuple(TASK_METRICS)
FEATURE_KINDS = ("number", "category", "datetime")


class InvalidCandidateError(UserError):
    """A ``ModelCandidate`` the registry cannot take (unknown task, gate metric not measured...).

    Raised when the candidate is made (inside its step) and again before the
    driver registers it, so an invalid candidate never leaves a version behind.
    """


def _shown(text: object, limit: int = 60) -> str:
    """``text`` cut to ``limit`` characters for a one-line message."""
    text = str(text)
    return text if len(text) <= limit else text[:limit] + "…"


def closest_choice(word: str, choices: list[str] | tuple[str, ...]) -> str | None:
    """The choice closest to ``word``, ignoring case (``CHURN`` → ``churn``), or None."""
    folded: dict[str, str] = {}
    for choice in choices:
        folded.setdefault(choice.casefold(), choice)
    if word.casefold() in folded:
        return folded[word.casefold()]
    close = difflib.get_close_matches(word.casefold(), list(folded), n=1, cutoff=0.6)
    return folded[close[0]] if close else None


def _suggest(word: str, choices: list[str] | tuple[str, ...]) -> str:
    close = closest_choice(word, choices)
    return f" (did you mean '{close}'?)" if close else ""


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def margin_problem(margin: object) -> str | None:
    """Why ``margin`` cannot be a gate margin (a finite number, 0 or more), or None.

    A negative margin is refused rather than honoured: it would promote a
    model that scores worse than production, which nobody asks for by accident.
    """
    if not _is_number(margin):
        return f"margin {_shown(repr(margin))} is not a number"
    value = float(margin)  # type: ignore[arg-type]
    if not math.isfinite(value):
        return f"margin {value} is not a finite number"
    if value < 0:
        return (f"margin {value:g} is negative; the margin is how much better than production a candidate "
                "must be, 0 or more (a negative one would promote a worse model)")
    return None


def check_model_name(name: object, flag: str = "-p model_name") -> None:
    """Refuse a model name the registry would refuse, before any step runs.

    Checked only when the trained candidate was registered, a name with a space or a slash
    (``-p model_name="churn v2"``) failed the run after every candidate had trained.

    Raises:
        ParameterError: naming the name and the characters a name may have.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ParameterError(f"model name {_shown(repr(name))} is not usable: use letters, digits, '_', '-' and "
                             f"'.', starting with a letter or digit (e.g. {flag}=churn_v2).")


def check_gate_settings(task: str, metric: str, margin: object) -> None:
    """Check a pipeline's gate parameters before any step runs: a known task, a metric
    :func:`evaluate` measures for it, and a usable margin.

    Raises:
        ParameterError: naming every problem, with the accepted values.
    """
    problems: list[str] = []
    if task not in TASK_METRICS:
        problems.append(f"task {_shown(repr(task))} is not one of {', '.join(TASKS)}{_suggest(str(task), TASKS)}")
    else:
        known = TASK_METRICS[task]
        if metric not in known:
            problems.append(f"metric {_shown(repr(metric))} is not measured for {task}; use one of "
                            f"{', '.join(known)}{_suggest(str(metric), known)}")
    margin_text = margin_problem(margin)
    if margin_text:
        problems.append(margin_text)
    if problems:
        raise ParameterError("; ".join(problems) + ".")


def candidate_problems(candidate: ModelCandidate) -> list[str]:
    """Everything that stops the registry from taking ``candidate``; empty when it is usable."""
    c = candidate
    problems: list[str] = []
    if not isinstance(c.name, str) or not _NAME.fullmatch(c.name):
        problems.append(f"name {_shown(repr(c.name))} is not usable: use letters, digits, '_', '-' and '.', "
                        "starting with a letter or digit (e.g. 'churn')")
    if c.task not in TASKS:
        problems.append(f"task {_shown(repr(c.task))} is not one of {', '.join(TASKS)}"
                        f"{_suggest(str(c.task), TASKS)}")
    metrics = c.metrics if isinstance(c.metrics, dict) else {}
    if not metrics:
        problems.append("metrics must be a non-empty dict of metric name: number")
    bad = [str(k) for k, v in metrics.items() if not _is_number(v)]
    if bad:
        problems.append(f"metrics {', '.join(_shown(k, 30) for k in bad[:5])} are not numbers")
    names = [str(k) for k in metrics]
    if not isinstance(c.metric, str) or c.metric not in metrics:
        # evaluate() leaves out roc_auc where it cannot be measured: say why, or the message reads as a typo.
        unmeasured = (": ROC-AUC needs every class among the evaluation rows (a rare class may have none in a "
                      "small test set: more rows, or metric accuracy or f1) and a model with predict_proba"
                      if c.metric == "roc_auc" and c.task == "classification" and metrics else "")
        problems.append(f"the gate metric {_shown(repr(c.metric))} is not in its metrics "
                        f"({', '.join(names) or 'none'}){_suggest(str(c.metric), names)}{unmeasured}")
    elif _is_number(metrics[c.metric]) and not math.isfinite(float(metrics[c.metric])):
        problems.append(f"the gate metric {c.metric} is {metrics[c.metric]}, not a finite number")
    other = [t for t in TASKS if t != c.task and c.metric in TASK_METRICS[t]] if c.task in TASKS else []
    if other:
        # Scored as the wrong task, monitoring's performance check fails silently on every batch.
        problems.append(f"the gate metric {c.metric} is a {other[0]} metric, but task is '{c.task}': use "
                        f"task='{other[0]}', or a {c.task} metric ({', '.join(TASK_METRICS[c.task])})")
    margin_text = margin_problem(c.margin)
    if margin_text:
        problems.append(margin_text)
    if not isinstance(c.features, list) or not c.features or not all(
            isinstance(f, dict) and isinstance(f.get("name"), str) and f.get("kind") in FEATURE_KINDS
            for f in c.features):
        problems.append("features must be the training schema, as describe_schema(frame) returns it")
    if not isinstance(c.label, str) or not c.label:
        problems.append("label must name the label column of eval_data")
    key = getattr(c, "key", None)  # a candidate pickled before keys were kept has none
    if key is not None and (not isinstance(key, str) or not key or key == c.label
                            or any(isinstance(f, dict) and f.get("name") == key for f in c.features or [])):
        problems.append(f"key {_shown(repr(key))} must name a column that is neither a feature nor the label "
                        "(the id of a row), or be None")
    if not isinstance(c.model_digest, str) or not c.model_digest:
        problems.append("model_digest must be model_digest(model)")
    if not callable(getattr(c.model, "predict", None)):
        problems.append(f"model {_shown(type(c.model).__name__)} has no predict method; pass a fitted estimator")
    if not isinstance(c.params, dict):
        problems.append("params must be a dict")
    return problems


def check_candidate(candidate: ModelCandidate) -> None:
    """Raise one line naming every problem of ``candidate`` (nothing is registered).

    Raises:
        InvalidCandidateError: the candidate cannot be registered or gated.
    """
    problems = candidate_problems(candidate)
    if problems:
        raise InvalidCandidateError(f"model candidate {_shown(repr(candidate.name))} cannot be registered: "
                                    + "; ".join(problems) + ".")


def parse_ref(ref: str, default: str = PRODUCTION) -> tuple[str, str | int]:
    """Split ``NAME``, ``NAME@production``, ``NAME@latest`` or ``NAME@VERSION`` into (name, which).

    ``which`` is ``"production"``, ``"latest"`` or a version number; a bare
    ``NAME`` means ``NAME@{default}``. A version is ASCII digits (``3`` or
    ``v3``) from 1 to ``MAX_VERSION``.

    Raises:
        UserError: a malformed reference, naming the accepted forms.
    """
    name, sep, which = ref.partition("@")
    if not name:
        raise UserError(f"'{_shown(ref)}' names no model. Write {REF_FORMS} (e.g. churn@production).")
    if not sep:
        return name, default
    if not which:
        raise UserError(f"'{_shown(ref)}' has nothing after '@'. Write {REF_FORMS} (e.g. {_shown(name)}@1).")
    if which in (PRODUCTION, LATEST):
        return name, which
    match = _VERSION.fullmatch(which)
    if match is None:
        close = closest_choice(which, (PRODUCTION, LATEST))
        hint = f" Did you mean '{_shown(name)}@{close}'?" if close else ""
        raise UserError(f"'{_shown(ref)}' is not a model reference.{hint} Write {REF_FORMS}, with the version "
                        f"in digits 0-9 (e.g. {_shown(name)}@1).")
    digits = match.group(1).lstrip("0") or "0"
    # Checked on the text first: int() of thousands of digits is slow or refused.
    number = int(digits) if len(digits) <= len(str(MAX_VERSION)) else MAX_VERSION + 1
    if not 1 <= number <= MAX_VERSION:
        raise UserError(f"'{_shown(ref)}': version {_shown(match.group(1), 24)} is out of range; versions are "
                        f"numbered from 1 to {MAX_VERSION}. See `orch models show {_shown(name)}`.")
    return name, number
