"""What `orch plan` says about a step before it runs."""

from __future__ import annotations

from orchestrator.loader import load_pipeline

from .conftest import PIPELINES


def test_plan_names_a_path_parameter_with_no_file_behind_it(tmp_path, calls):
    from pathlib import Path

    plan = load_pipeline(str(PIPELINES / "files.py")).plan(store=str(tmp_path / "store"),
                                                           path=Path(tmp_path / "nosuch.csv"))
    read = next(e for e in plan.entries if e.node == "read")
    assert read.status == "will run" and f"path: no file at {tmp_path / 'nosuch.csv'}" in read.reason
