"""Where each node of a running pipeline stands in pipeline order, while its maps expand.

A map over a step's output becomes its item nodes, placed just before the map
node, once that output is ready. A step record names its node's place in the
order as it is when the record is made (``steps.position``, which ``orch show``
sorts by). Writing the order out again at each expansion cost the whole DAG per
map: a pipeline of 2,000 maps and 12,000 nodes spent 12 s of a 13 s cached run
there. Here an expansion costs its items and a Fenwick tree's log n, and a
place is counted as it is asked for; the order itself is written out once, at
the end of the run (``ordered``). This module knows names only, not nodes,
steps or the store.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

V = TypeVar("V")


class NodeOrder:
    """The places of a pipeline's nodes, the items of its maps inserted before each map node.

    ``names``: the nodes as traced, in call order. Every map node is one of them;
    items are never maps themselves.
    """

    def __init__(self, names: Iterable[str]) -> None:
        self._traced = list(names)
        # A traced node's index; an item's, its map's traced index plus its own (see ``place``).
        self._base = {name: i for i, name in enumerate(self._traced)}
        self._item_slot: dict[str, int] = {}      # item -> the traced index whose items count before it
        self._items: dict[str, list[str]] = {}    # map node -> its items, in item order
        self._tree: list[int] | None = None       # items inserted before each traced node (Fenwick tree)

    def insert(self, map_node: str, items: list[str]) -> None:
        """``items`` (new names) now stand, in order, just before ``map_node``."""
        slot = self._base[map_node]
        for i, item in enumerate(items):
            self._base[item] = slot + i
            self._item_slot[item] = slot - 1
        self._items[map_node] = items
        if self._tree is None:
            self._tree = [0] * (len(self._traced) + 1)
        at = slot + 1  # the tree counts from 1
        while at < len(self._tree):
            self._tree[at] += len(items)
            at += at & -at

    def place(self, name: str) -> int:
        """``name``'s index in the pipeline's order as it is now (items of expanded maps included)."""
        base = self._base[name]
        if self._tree is None:
            return base
        # A traced node moves down by the items of the maps at or above it (a map's own items stand
        # before it); an item by those of the maps above its map, then sits at its number there.
        return base + self._before(self._item_slot.get(name, base))

    def _before(self, slot: int) -> int:
        """How many items the maps at traced indexes up to ``slot`` (included) inserted."""
        assert self._tree is not None
        total, at = 0, slot + 1
        while at > 0:
            total += self._tree[at]
            at -= at & -at
        return total

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
