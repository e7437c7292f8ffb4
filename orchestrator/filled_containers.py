"""Module-level containers that a run's own steps fill: a memo dict is not an edit.

A step reads a module-level dict, list or set by value (``CONFIG["scale"]``),
so a notebook cell that changes it re-runs the steps that read it. A memo
a helper fills while it runs (``_CACHE[x] = ...``) is one too: in a
long-lived process (a notebook) the second run found it full and re-ran
every step using it ("code of `_CACHE` changed"), while a fresh process,
where it starts empty again, found them cached.

The rule here: a container whose contents changed *during* a run, and not
since, keeps the digest the run's keys used. After each run the runner
hashes the containers the keys read (``settle``); before the next one the
fingerprint asks ``key_digest``, which answers the earlier digest only while
the container still holds exactly what that run left in it. A change made
between runs (a cell's ``CONFIG["scale"] = 5``) gives a new digest and
re-runs as before. The first run's digest is that of the container as
import (or the cells) left it, which is what a fresh process sees, so the
two agree.

This module keeps process-wide state only; it must not hash anything
itself (the fingerprint passes its own digest function) nor import the
runner.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

# Mutable containers a step may fill as it runs; tuples and frozensets cannot change.
MUTABLE = (dict, list, set)

# (module, global name) -> (id of the container, its digest when the last run using it ended,
# the digest keys use). By name, not holding the container: a notebook that runs `_CACHE = {}`
# again must not keep the old memo alive. A container rebound under the name has another id.
_SETTLED: dict[tuple[str, str], tuple[int, str, str]] = {}
_LOCK = threading.Lock()


class Attribute:
    """A class attribute, read when a run is settled: a counter a method increments (``cls.calls += 1``)
    is rebound to another object, which the object the fingerprint held would not show."""

    __slots__ = ("name", "owner")

    def __init__(self, owner: Any, name: str) -> None:
        self.owner, self.name = owner, name

    def current(self) -> Any:
        return vars(self.owner).get(self.name)


def is_fillable(value: Any) -> bool:
    """Whether ``value`` is a container a run could fill (a dict, list or set, or a subclass)."""
    return isinstance(value, MUTABLE)


def key_digest(owner: str, name: str, value: Any, digest: str) -> str:
    """The digest a key uses for ``value``, global ``name`` of module ``owner``, whose digest now is ``digest``.

    The digest of the last run's keys while ``value`` holds what that run
    left in it; else ``digest`` itself.
    """
    with _LOCK:
        entry = _SETTLED.get((owner, name))
    if entry is not None and entry[0] == id(value) and entry[1] == digest:
        return entry[2]
    return digest


def settle(used: Iterable[tuple[str, str, Any, str]], digest_of: Callable[[Any], str]) -> None:
    """After a run: remember each container the run's keys read that the run changed.

    ``used`` holds (module, global name, container, the digest its keys
    used); ``digest_of`` hashes a container as the fingerprint does (one
    the run put a connection in by the rest of what it holds).
    """
    for owner, name, value, used_digest in used:
        if isinstance(value, Attribute):
            value = value.current()
        now = digest_of(value)
        with _LOCK:
            entry = _SETTLED.get((owner, name))
            if now == used_digest and (entry is None or entry[0] != id(value)):
                _SETTLED.pop((owner, name), None)
                continue  # untouched by the run: its digest is its own
            _SETTLED[(owner, name)] = (id(value), now, used_digest)
