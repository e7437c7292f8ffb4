"""``orch diff A B``: prints what differs between two runs, as ``run_diff`` found it.

Sections come in the order a user asks "what changed?": the runs compared,
parameters, environment and packages, steps only in one run, steps whose key
differs with why (``orch plan``'s words) and whether their outputs did,
metrics with their deltas, the model versions, the status; then one line
counting it all. Only sections with a difference are printed. This module
prints; it neither reads the database nor decides what differs.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from orchestrator.cli_common import echo

_WIDTH = 40  # a config's value longer than this is not repeated: the fields that changed are named (as cache's)

if TYPE_CHECKING:
    from orchestrator.run_diff import Change, ParamChange, RunDiff, RunSide


def print_diff(diff: RunDiff) -> None:
    """The text of ``orch diff``: the runs, then each section that has a difference, then the summary."""
    for line in diff_lines(diff):
        echo(line)


def diff_lines(diff: RunDiff) -> list[str]:
    """The lines ``orch diff`` prints for ``diff``."""
    lines = [_heading(diff)]
    if diff.same_run:
        lines.append(diff.summary())
        return lines
    _section(lines, "parameters", [_param(c) for c in diff.params])
    _section(lines, "environment", [_change(c) for c in diff.environment]
             + [_change(c, "package ") for c in diff.packages])
    _section(lines, f"steps only in A ({diff.a.run_id[:12]})", [_only(s) for s in diff.only_in_a])
    _section(lines, f"steps only in B ({diff.b.run_id[:12]})", [_only(s) for s in diff.only_in_b])
    _section(lines, "steps that differ", [_step(s) for s in diff.steps])
    _section(lines, "metrics", [_change(m) + _delta(m.delta) for m in diff.metrics])
    _section(lines, "model", [_change(c) + _delta(getattr(c, "delta", None)) for c in diff.model])
    if diff.a.status != diff.b.status:
        error = diff.b.error or diff.a.error
        _section(lines, "status", [f"{diff.a.status} → {diff.b.status}" + (f" ({_one_line(error)})" if error else "")])
    lines.append(diff.summary())
    return lines


def _heading(diff: RunDiff) -> str:
    a, b = _side(diff.a), _side(diff.b)
    if diff.same_run and diff.a.model == diff.b.model:
        return f"A and B are the same run: {a}"
    if not diff.same_pipeline:
        return (f"runs of different pipelines, '{diff.a.pipeline}' and '{diff.b.pipeline}' (steps are matched "
                f"by name): A {a}, B {b}")
    return f"A {a}\nB {b}"


def _side(side: RunSide) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(side.started))
    model = f"{side.model['name']} v{side.model['version']}, " if side.model else ""
    return f"{model}run {side.run_id[:12]} of {side.pipeline}, {side.status}, started {when}"


def _section(lines: list[str], title: str, entries: list[str]) -> None:
    if entries:
        lines.append(title)
        lines.extend(f"  {entry}" for entry in entries)


def _change(change: Change, prefix: str = "") -> str:
    return f"{prefix}{change.name}: {_value(change.a)} → {_value(change.b)}"


def _param(change: ParamChange) -> str:
    """``alpha: 0.5 → 0.1``; a config object that prints long names the fields that changed, as a step's
    reason does: ``model_cfg changed (n_estimators: 30 → 40)``."""
    from orchestrator.shown_fields import said_fields

    said = said_fields(list(change.fields))
    if said is None or max(len(_value(change.a)), len(_value(change.b))) <= _WIDTH:
        return _change(change)
    return f"{change.name} changed ({said})"


def _value(value: Any) -> str:
    if value is None:
        return "(none)"
    return _one_line(value)


def _one_line(value: Any) -> str:
    from orchestrator.report import one_line

    return one_line(value)


def _delta(delta: float | None) -> str:
    return "" if delta is None else f" ({delta:+.4g})"


def _only(step: Any) -> str:
    return f"{step.name} ({step.status})" + (f": {step.note}" if step.note else "")


def _step(step: Any) -> str:
    outputs = {
        "same": "; same outputs (early cutoff: the steps using them are not changed by it)",
        "differ": f"; outputs differ ({', '.join(step.changed_outputs)})",
    }.get(step.outputs, "")
    return f"{step.name}: {'; '.join(step.reasons)}{outputs}"
