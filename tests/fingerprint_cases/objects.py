"""Classes across modules and a module-level instance whose class code must count."""

from __future__ import annotations

from tests.fingerprint_cases.recursion import Node


class Tree(Node):
    """A Node subclass defined in another module than its base."""

    def size(self) -> int:
        return 1 + sum(Tree.size(child) for child in self.children)  # type: ignore[arg-type]


DEFAULT_TREE = Tree([Tree(), Tree()])


def step() -> int:
    return DEFAULT_TREE.size()


def step_with_local_class(values: list[int]) -> list[int]:
    class Doubler:
        def apply(self, v: int) -> int:
            return 2 * v

    return [Doubler().apply(v) for v in values]
