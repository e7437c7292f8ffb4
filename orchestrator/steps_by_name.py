"""``run.steps`` and ``plan.steps``: a dict of node name to its record whose missing name says which there are.

A bare ``KeyError: 'fitt'`` in a notebook says neither that the run (or
plan) has no such step nor how its nodes are named: a step called twice, or
mapped, is ``fit``, ``fit_2``, ...; a map over an output not made yet is one
node, ``fit.map``, until its items are. ``Run`` and ``Plan`` share this one
mapping, so both say it alike. It only looks names up: it reads no store.
"""

from __future__ import annotations

from typing import Any, TypeVar

from orchestrator.errors import did_you_mean

__all__ = ["StepsByName"]

V = TypeVar("V")


class StepsByName(dict[str, V]):
    """A dict of node name to ``V``, in the pipeline's order; a missing name raises a KeyError that helps.

    ``owner`` names what holds the steps in the message (``run 1a2b3c4d5e6f``,
    ``the plan of pipeline 'train'``), ``spelled`` how the user reached this
    mapping (``run.steps``), for the hint that names a map's second item.
    """

    def __init__(self, items: Any = (), owner: str = "", spelled: str = "steps") -> None:
        super().__init__(items)
        self.owner = owner
        self.spelled = spelled

    def __missing__(self, name: object) -> V:
        names = list(self)
        hint = ""
        if isinstance(name, str):
            hint = did_you_mean(name, names)
            mapped = name.partition("[")[0] if name.endswith("]") else name
            if mapped in self and mapped != name:
                hint = (f" The items of a map are nodes named after its step: {mapped}, {mapped}_2, ... "
                        f"({self.spelled}[{mapped + '_2'!r}] is its second item).")
            elif f"{mapped}.map" in self:
                hint = (f" Its items are not made yet (their number is known when the step before is done): "
                        f"the map is {self.spelled}[{mapped + '.map'!r}].")
        shown = ", ".join(names[:12]) + (f", ... ({len(names)} in all)" if len(names) > 12 else "")
        raise KeyError(f"{self.owner} has no step {name!r}.{hint} Its steps: {shown or 'none'}.")

    def __reduce__(self) -> tuple[Any, ...]:
        return dict, (dict(self),)  # a plain dict once pickled: no class of ours needed to read it back
