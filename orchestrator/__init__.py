"""orchestrator: a local-first MLOps pipeline orchestrator.

Write plain Python functions decorated with :func:`step`, call them inside a
function decorated with :func:`pipeline`, and run it: every node is cached under
a content hash of its code, parameters and inputs, retried by policy, and
recorded in lineage. Importing this package loads no pandas, pyarrow or
scikit-learn; they are imported only when a value needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orchestrator.client import diff, get_run, lineage, load
from orchestrator.effects import Metrics
from orchestrator.errors import OrchestratorError, UserError
from orchestrator.pipeline import Pipeline, pipeline
from orchestrator.retry import RetryPolicy
from orchestrator.run_identity import current_run_id
from orchestrator.step import Step, step
from orchestrator.untracked import UntrackedPathWarning
from orchestrator.warning_files import filters_at_import as _filters_at_import  # noqa: F401 - taken now

# ``_filters_at_import``: the warning filters Python started with, taken before a pipeline file
# changes them (``warnings.simplefilter("error")``), which then travel to the workers with each task.

if TYPE_CHECKING:
    from orchestrator.planner import Plan, PlanEntry
    from orchestrator.results import Run, StepResult
    from orchestrator.run_diff import RunDiff

__all__ = [
    "Metrics",
    "OrchestratorError",
    "Pipeline",
    "Plan",
    "PlanEntry",
    "RetryPolicy",
    "Run",
    "RunDiff",
    "Step",
    "StepResult",
    "UntrackedPathWarning",
    "UserError",
    "current_run_id",
    "diff",
    "get_run",
    "lineage",
    "load",
    "pipeline",
    "step",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # What run() and get_run() return, for a user's annotations (`def check(run: orchestrator.Run)`);
    # imported when first named, as their module opens stores and the metadata database.
    if name in ("Run", "StepResult"):
        from orchestrator import results

        return getattr(results, name)
    if name in ("Plan", "PlanEntry"):  # what plan() returns
        from orchestrator import planner

        return getattr(planner, name)
    if name == "RunDiff":  # what diff() returns
        from orchestrator.run_diff import RunDiff

        return RunDiff
    raise AttributeError(f"module 'orchestrator' has no attribute '{name}'")

