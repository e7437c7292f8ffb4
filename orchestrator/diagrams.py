"""Graphviz dot and Mermaid text for graphs: quoting that lets any name through.

Names in a graph come from users (step names, file paths such as
``we"ird [x].txt``), so every name is quoted for the language it goes into,
and Mermaid nodes get generated ids (``n0``, ``n1``…) because a bare name
such as ``end`` or ``class`` is a Mermaid keyword. A big pipeline's alike calls
of one step (a map's 2,000 items) are one line and one node, as ``orch run``
and ``orch plan`` fold them: drawn one by one they made a line of 20,000
characters, and a Mermaid diagram past the 500 edges Mermaid draws. This module
only formats text: it knows nothing of stores, runs or how a graph was built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator.report import FOLD_ABOVE, NUMBER_SUFFIX, folded_name

if TYPE_CHECKING:
    from orchestrator.dag import DAG


def dot_quote(text: str) -> str:
    """``text`` as a double-quoted dot string: ``\\`` and ``"`` escaped, a line break as ``\\n``.

    In a dot label a lone backslash starts an escape (``\\N``, ``\\l``) and a
    final one swallows the closing quote, so it is doubled first.
    """
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n") + '"'


def mermaid_quote(text: str) -> str:
    """``text`` as a double-quoted Mermaid label, with ``#``, ``"``, ``<``, ``>`` and ``&`` as entity codes.

    Mermaid has no backslash escape; ``#quot;`` renders a quote, and ``#``
    itself is coded (``#35;``) so that a name like ``a#b;`` is not read as
    one. Labels are rendered as HTML, so ``<b>`` in a file name would turn
    bold and vanish, and ``&lt;`` would show as ``<``: they are coded too.
    A line break would end the statement, so it becomes a space.
    """
    escaped = text.replace("#", "#35;").replace('"', "#quot;")
    escaped = escaped.replace("&", "#38;").replace("<", "#60;").replace(">", "#62;")
    return '"' + " ".join(escaped.splitlines()) + '"'


SHOWN_INPUTS = 10  # inputs a line of the tree names; past that, how many more


def dag_groups(dag: DAG) -> list[list[str]]:
    """The nodes of ``dag`` grouped as a line of the tree and a node of a diagram, in order of first appearance.

    Up to ``FOLD_ABOVE`` nodes, each node is its own group. Past that, the calls
    of one step made at one line of the body (a map's items, a loop's calls)
    share one, as ``orch run``'s summary and ``orch plan`` fold them.
    """
    if len(dag.nodes) <= FOLD_ABOVE:
        return [[name] for name in dag.nodes]
    groups: dict[tuple[str, str, bool], list[str]] = {}
    for node in dag.nodes.values():
        groups.setdefault((NUMBER_SUFFIX.sub("", node.name), node.site, node.is_map), []).append(node.name)
    return list(groups.values())


def _upstream_groups(dag: DAG, groups: list[list[str]]) -> list[tuple[list[str], list[list[str]]]]:
    """Each group beside what its nodes read, as the parts of groups they read, in order; not itself."""
    group_of = {name: i for i, group in enumerate(groups) for name in group}
    out = []
    for i, group in enumerate(groups):
        read: dict[int, list[str]] = {}
        seen: set[str] = set()
        for name in group:
            for up in dag.nodes[name].upstream:
                if up not in seen and group_of[up] != i:
                    seen.add(up)
                    read.setdefault(group_of[up], []).append(up)
        out.append((group, [sorted(names, key=groups[g].index) for g, names in read.items()]))
    return out


def _chained(dag: DAG, group: list[str]) -> bool:
    """Whether calls of a folded group read one another (``x = add(x, ...)`` in a loop): a chain, not side by side."""
    members = set(group)
    return len(group) > 1 and any(up in members for name in group for up in dag.nodes[name].upstream)


def upstream_text(names: list[str]) -> str:
    """``a, b, c``: what a line of the tree reads, cut past ``SHOWN_INPUTS`` with how many more."""
    if len(names) <= SHOWN_INPUTS:
        return ", ".join(names)
    return ", ".join(names[:SHOWN_INPUTS]) + f", … {len(names) - SHOWN_INPUTS} more"


def render_tree(dag: DAG) -> list[str]:
    """The lines of ``orch dag``'s tree: one per node (or group of alike nodes) with its ``file:line`` and inputs."""
    # Counted as `orch run` counts them: a map over a step's output becomes one step per item
    # only once that output exists, so the map itself is not a step.
    steps = sum(not node.is_map for node in dag.nodes.values())
    mapped = " + mapped items" if any(node.is_map for node in dag.nodes.values()) else ""
    lines = [f"pipeline {dag.pipeline} ({steps} step{'s' if steps != 1 else ''}{mapped})"]
    for group, read in _upstream_groups(dag, dag_groups(dag)):
        node = dag.nodes[group[0]]
        deps = f" ← {upstream_text([folded_name(names) for names in read])}" if read else ""
        each = ": one step per item of its list" if node.is_map else ""
        # Folded, the links between its own calls no longer show: said, or a chain reads as side by side.
        chain = " (a chain: each reads another of them)" if _chained(dag, group) else ""
        lines.append(f"  {folded_name(group)} ({node.site}){deps}{each}{chain}")
    return lines


def render_dag(dag: DAG, fmt: str) -> str:
    """A pipeline's nodes and edges as ``dot`` or ``mermaid`` text; alike calls are one node, ``train ×2000``."""
    if fmt not in ("dot", "mermaid"):
        raise ValueError(f"unknown diagram format {fmt!r}: choose dot or mermaid")
    groups = _upstream_groups(dag, dag_groups(dag))
    labels: list[str] = []
    for group, _ in groups:
        label = group[0] if len(group) == 1 else f"{group[0]} ×{len(group)}"
        if label in labels:  # a second map of the step: its names tell them apart (they name the node)
            label = f"{group[0]} … {group[-1]} ×{len(group)}"
        labels.append(label)
    label_of = {name: label for (group, _), label in zip(groups, labels) for name in group}
    edges = [(label_of[names[0]], label) for (_, read), label in zip(groups, labels) for names in read]
    edges += [(label, label) for (group, _), label in zip(groups, labels) if _chained(dag, group)]  # a chain
    if fmt == "dot":
        lines = ["digraph pipeline {", "  rankdir=LR;"]
        lines += [f"  {dot_quote(label)};" for label in labels]
        lines += [f"  {dot_quote(up)} -> {dot_quote(label)};" for up, label in edges]
        return "\n".join(lines + ["}"])
    ids = {label: f"n{i}" for i, label in enumerate(labels)}
    lines = ["graph LR"]
    lines += [f"  {ids[label]}[{mermaid_quote(label)}]" for label in labels]
    lines += [f"  {ids[up]} --> {ids[label]}" for up, label in edges]
    return "\n".join(lines)
