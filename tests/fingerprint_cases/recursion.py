"""Recursive and mutually recursive functions: the walk must terminate."""

from __future__ import annotations


def factorial(n: int) -> int:
    return 1 if n <= 1 else n * factorial(n - 1)


def is_even(n: int) -> bool:
    return n == 0 or is_odd(n - 1)


def is_odd(n: int) -> bool:
    return n != 0 and is_even(n - 1)


class Node:
    """A class whose method refers back to the class itself."""

    def __init__(self, children: list[Node] | None = None) -> None:
        self.children = children or []

    def depth(self) -> int:
        return 1 + max((Node.depth(child) for child in self.children), default=0)


def tree_depth(node: Node) -> int:
    return Node([node]).depth() - 1
