"""Where each node of a running pipeline stands in pipeline order, while its maps expand.

A map over a step's output becomes its item nodes, placed just before the map
node, once that output is ready. A step record names its node's place
(``steps.position``, which ``orch show`` and ``get_run`` sort by), and it is
made before later maps insert their items: a place counted as an index at that
moment collided with the places of nodes recorded after an expansion moved it
(two rows of one run at the same position, listed in another order than
``Run.steps``). Places are therefore sort keys that never move: a traced node's
is its index times ``SPREAD``, a map's items take the keys just below their
map's. A record made at any moment sorts where the finished run has it, and so
does the record of a run killed midway. An expansion costs its items; a place
is a dict lookup; the order itself is written out once, at the end of the run
(``ordered``). This module knows names only, not nodes, steps or the store.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

V = TypeVar("V")

# The keys between two traced nodes: room for the items of one map (more than a run can hold),
# while a pipeline of 2**31 traced nodes still fits SQLite's 64-bit integers.
SPREAD = 1 << 32


class NodeOrder:
    """The places of a pipeline's nodes, the items of its maps inserted before each map node.

    ``names``: the nodes as traced, in call order. Every map node is one of them;
    items are never maps themselves.
    """

    def __init__(self, names: Iterable[str]) -> None:
        self._traced = list(names)
        # name -> sort key, kept up to date as maps expand: a run reads it as its positions.
        self.places = {name: i * SPREAD for i, name in enumerate(self._traced)}
        self._items: dict[str, list[str]] = {}    # map node -> its items, in item order

    def insert(self, map_node: str, items: list[str]) -> None:
        """``items`` (new names) now stand, in order, just before ``map_node``."""
        first = self.places[map_node] - len(items)  # above the traced node before the map: fewer than SPREAD
        for i, item in enumerate(items):
            self.places[item] = first + i
        self._items[map_node] = items

    def place(self, name: str) -> int:
        """``name``'s sort key in pipeline order: the same whenever it is asked, expansions before or after."""
        return self.places[name]

    def ordered(self, nodes: Mapping[str, V]) -> dict[str, V]:
        """``nodes`` (every traced node and item) in pipeline order: each map's items just before it."""
        out: dict[str, V] = {}
        for name in self._traced:
            for item in self._items.get(name, ()):
                out[item] = nodes[item]
            out[name] = nodes[name]
        if len(out) != len(nodes):  # a name neither traced nor inserted keeps its place after them
            out.update((name, node) for name, node in nodes.items() if name not in out)
        return out
