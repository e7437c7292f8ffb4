"""Graphviz dot and Mermaid text for graphs: quoting that lets any name through.

Names in a graph come from users (step names, file paths such as
``we"ird [x].txt``), so every name is quoted for the language it goes into,
and Mermaid nodes get generated ids (``n0``, ``n1``…) because a bare name
such as ``end`` or ``class`` is a Mermaid keyword. This module only formats
text: it knows nothing of stores, runs or how a graph was built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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


def render_dag(dag: DAG, fmt: str) -> str:
    """A pipeline's nodes and edges as ``dot`` or ``mermaid`` text."""
    if fmt == "dot":
        lines = ["digraph pipeline {", "  rankdir=LR;"]
        for node in dag.nodes.values():
            lines.append(f"  {dot_quote(node.name)};")
            lines += [f"  {dot_quote(up)} -> {dot_quote(node.name)};" for up in node.upstream]
        return "\n".join(lines + ["}"])
    if fmt == "mermaid":
        ids = {name: f"n{i}" for i, name in enumerate(dag.nodes)}
        lines = ["graph LR"]
        lines += [f"  {ids[name]}[{mermaid_quote(name)}]" for name in dag.nodes]
        lines += [f"  {ids[up]} --> {ids[node.name]}" for node in dag.nodes.values() for up in node.upstream]
        return "\n".join(lines)
    raise ValueError(f"unknown diagram format {fmt!r}: choose dot or mermaid")
