"""Warnings for two different step functions of one name in one pipeline.

Two modules that each define a ``clean`` step (``a.clean``, ``b.clean``) make
nodes ``clean`` and ``clean_2``, told apart by call order only: ``orch show``,
``--rerun clean`` and ``run.steps["clean"]`` then name a node whose code the
user has to guess, and swapping two lines of the body swaps what they name.
This module only reads a built DAG; it neither renames nor refuses anything.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from orchestrator.fingerprint import code_root

if TYPE_CHECKING:
    from orchestrator.dag import DAG
    from orchestrator.step import Step


def shared_name_warnings(dag: DAG) -> list[str]:
    """One line per step name that two or more different functions share among the DAG's numbered nodes."""
    by_name: dict[str, dict[int, tuple[Step, list[str]]]] = {}
    for node in dag.nodes.values():
        base = node.step.name
        if not re.fullmatch(rf"{re.escape(base)}(_\d+)?(\.map)?", node.name):
            continue  # an .alias() names the call on purpose: no confusion to warn of
        function = code_root(node.step.fn) or node.step.fn
        held = by_name.setdefault(base, {}).setdefault(id(function), (node.step, []))
        held[1].append(node.name)
    out = []
    for name, functions in by_name.items():
        if len(functions) < 2:
            continue
        shown = ", ".join(f"{step.site} ({'/'.join(nodes)})" for step, nodes in functions.values())
        out.append(f"{len(functions)} different steps are named '{name}': {shown}, told apart by call order "
                   f"only. Name one @step(name=\"...\") or call it with .alias(\"...\").")
    return out
