"""Map items a run reused from a map over another list: the readers of a list that its edges do not name.

A map's item is keyed by its value, not by the list it came from, so a map
over a list that grew (today's partitions) reuses every item computed from
yesterday's list, and a map over [2, 3, 4] the items 2 and 3 of the map over
[1, 2, 3] before it in the same run. A cached item records the edge to its own
list (``RunLoop._cached``), which the walk follows like any other; one recorded
before it did has no edges of its own, and the step run it reused read another
list: found here, through that step run, for ``provenance``'s downstream walk
(right across runs, not for equal items of two maps in one run, which such
records cannot tell apart). Reads the metadata database only.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

from orchestrator.errors import NotFoundError

if TYPE_CHECKING:
    from orchestrator.lineage_db import Lineage


# Types of value a map refuses to run over (it takes a list or a tuple, or a subclass of one): an
# output of one of these has no map items to look for in the runs that used it.
_NOT_MAPPED = frozenset({"int", "float", "complex", "bool", "str", "bytes", "NoneType", "dict", "set", "frozenset"})
_NOT_MAPPED_PACKAGES = ("pandas.", "numpy.", "pyarrow.", "polars.", "sklearn.", "scipy.", "torch.")


def may_be_mapped(type_name: str | None) -> bool:
    """Whether a map may have run over a value of this recorded type (unknown: it may)."""
    return type_name is None or (type_name not in _NOT_MAPPED and not type_name.startswith(_NOT_MAPPED_PACKAGES))


_Reused = tuple[str, str, "str | None", str]  # (run, node, key, origin) of a cached step (see _reused_steps)


def reused_items(lineage: Lineage, sources: dict[str, tuple[str, str] | None],
                 by_list: dict[tuple[str, ...], dict[str, list[_Reused]]], digest: str, run_id: str, node: str,
                 key: str | None) -> list[tuple[str, str, str | None]]:
    """The cached items of a map over ``node``'s output ``digest`` that were computed from another list.

    A map over a list that grew (today's partitions) reuses each item computed
    from yesterday's list: an item's key holds its value, not the list's. The
    step run that computed it read yesterday's list, so matching by digest
    missed it, and "what was built from today's list?" left out all but the
    new items and what they fed. Looked for in ``run_id`` and in every run
    that reused the same computation of ``node`` (its ``key``).

    Returns (run, node, key) of each item; ``sources`` keeps, across the calls
    of one walk, what each reused step run read its item from (``_item_source``),
    and ``by_list`` the reused steps of a list of runs by the node whose list they
    read (``_reused_by_list``).
    """
    outputs: list[tuple[str, str]] | None = None
    found: list[tuple[str, str, str | None]] = []
    runs = (run_id, *([str(r) for (r,) in lineage.conn.execute(
        "SELECT run_id FROM steps WHERE key=? AND node=? AND run_id!=? AND status IN ('ran', 'cached')",
        (key, node, run_id))] if key else []))
    if runs not in by_list:
        by_list[runs] = _reused_by_list(lineage, sources, list(runs))
    for used, item_node, item_key, origin in by_list[runs].get(node, ()):
        read = sources[origin]
        assert read is not None  # grouped by it
        if outputs is None:
            outputs = [(name, d) for way, name, d, _, _ in lineage.flow_edges(run_id, node)[1] if way == "out"]
        if len(outputs) > 1:  # a map over one output of a step with several: only the items of that output
            wanted = next((name for name, d in outputs if d == digest), None)
            if not any(way == "out" and name == wanted and d == read[1]
                       for way, name, d, _, _ in lineage.flow_edges(origin.partition(":")[0], node)[1]):
                continue
        found.append((used, item_node, item_key))
    return found


def _reused_by_list(lineage: Lineage, sources: dict[str, tuple[str, str] | None],
                    runs: list[str]) -> dict[str, list[_Reused]]:
    """The reused steps of ``runs`` that are map items, by the node whose list their origin read, in order.

    Read once per walk for a list of runs: every list of a run of 500 maps
    read all its cached steps again, and looked among them for its own items
    (8 of the 10 s of ``orch lineage RUN --downstream``; 52 s for 1,000 maps).
    """
    grouped: dict[str, list[_Reused]] = {}
    for reused in _reused_steps(lineage, runs):
        origin = reused[3]
        if origin not in sources:
            sources[origin] = _item_source(lineage, origin)
        read = sources[origin]
        if read is not None:
            grouped.setdefault(read[0], []).append(reused)
    return grouped


def _reused_steps(lineage: Lineage, runs: list[str]) -> list[_Reused]:
    """(run, node, key, origin) of the cached steps of ``runs`` that record no inputs of their own: a run, and
    those where a node had its key.

    Each step run they reused is listed once per node name, in the earliest run
    that reused it: a store's re-runs of one pipeline reuse the same ones, and
    the walk shows each computation once anyway.
    """
    first: dict[tuple[str, str], tuple[float, int, str, str | None]] = {}
    for at in range(0, len(runs), 500):  # within SQLite's limit of values in one statement
        chunk = runs[at:at + 500]
        for used, item_node, item_key, origin, started, position in lineage.conn.execute(
                "SELECT s.run_id, s.node, s.key, s.origin, MIN(r.started), s.position FROM steps s "
                "JOIN runs r ON r.run_id=s.run_id "
                f"WHERE s.run_id IN ({', '.join('?' * len(chunk))}) AND s.status='cached' AND s.origin IS NOT NULL "
                # A map item that records the list it came from is found by its edge, not guessed here.
                "AND NOT EXISTS (SELECT 1 FROM edges e WHERE e.run_id=s.run_id AND e.node=s.node "
                "AND e.direction='in') GROUP BY s.origin, s.node", chunk):
            seen = first.get((origin, item_node))
            if seen is None or started < seen[0]:
                first[(str(origin), str(item_node))] = (started, position or 0, str(used), item_key)
    ordered = sorted(first.items(), key=lambda kv: kv[1][:2])
    return [(used, item_node, item_key, origin) for (origin, item_node), (_, _, used, item_key) in ordered]


def _item_source(lineage: Lineage, origin: str) -> tuple[str, str] | None:
    """(node, digest) of the list step run ``origin`` ("RUN:node") took its item from, if it is a map item.

    An item's edge to its list is the one named after a parameter of its key
    (the item itself is a parameter, not an input).
    """
    origin_run, _, origin_node = origin.partition(":")
    found = lineage.conn.execute(
        "SELECT e.source, e.digest FROM steps o CROSS JOIN edges e WHERE o.run_id=? AND o.node=? "
        "AND e.run_id=o.run_id AND e.node=o.node AND e.direction='in' AND e.source IS NOT NULL "
        # A damaged key_parts value (orch doctor names it) is passed over, not an SQL error.
        "AND CASE WHEN json_valid(o.key_parts) THEN json_extract(o.key_parts, '$.params.\"' || e.name || '\"') "
        "END IS NOT NULL LIMIT 1", (origin_run, origin_node)).fetchone()
    return (str(found[0]), str(found[1])) if found else None


def own_list(lineage: Lineage, run_id: str, origin_run: str, source: str, digest: str) -> str | None:
    """The list a map item cached in ``run_id`` came from in that run: the output of its ``source`` there.

    The step run it reused (in ``origin_run``) took the same item from its own
    list, ``digest``, which may be another one (yesterday's, shorter): the
    lineage of today's run must not name yesterday's list as its data. None
    when ``run_id`` has no such output (a pipeline edited since).
    """
    try:  # a map over a map's result names no step as its source (`square.map`): no list of its own then
        theirs, mine = lineage.flow_edges(origin_run, source)[1], lineage.flow_edges(run_id, source)[1]
    except NotFoundError:
        return None
    names = [name for way, name, d, _, _ in theirs if way == "out" and d == digest]
    return next((d for way, name, d, _, _ in mine if way == "out" and names and name == names[0]), None)


# The node of a map's results, which a map over them reads item by item: ``square.map`` for a step's first
# map in a pipeline, ``square.map_2``, ... for the others (numbered as calls of a step are).
MAP_RESULTS = re.compile(r"\.map(_\d+)?$")


def map_item_outputs(lineage: Lineage, run_id: str, map_node: str) -> dict[str, str]:
    """{output digest: item node} of the items of ``map_node`` (``square.map``, ``square.map_2``) in ``run_id``:
    of every map of that step, first item first.

    A map over a map's result reads its item from that list, which is never
    stored as one: the item's producer is the item of the first map whose output
    it is (which map an item belongs to is not recorded). Read in one statement
    per map and run (a cached item's outputs are those of the step run it reused).
    """
    base = MAP_RESULTS.sub("", map_node)
    items: dict[str, str] = {}
    for node, digest in lineage.conn.execute(
            "SELECT s.node, e.digest FROM steps s CROSS JOIN edges e WHERE s.run_id=? AND s.node >= ? AND s.node < ? "
            "AND e.run_id=CASE WHEN s.origin IS NULL THEN s.run_id ELSE substr(s.origin, 1, instr(s.origin, ':') - 1) END "
            "AND e.node=CASE WHEN s.origin IS NULL THEN s.node ELSE substr(s.origin, instr(s.origin, ':') + 1) END "
            "AND e.direction='out' ORDER BY s.position", (run_id, base, base + "\uffff")):
        if re.fullmatch(re.escape(base) + r"(_\d+)?", node):
            items.setdefault(str(digest), str(node))
    return items


def map_item_readers(lineage: Lineage, run_id: str) -> dict[tuple[str, str], list[tuple[str, str | None]]]:
    """{(``square``, item digest): [(node, key)]}: the step runs of ``run_id`` that are items of a map over
    the results of a map of ``square`` (``square.map``, ``square.map_2``), by the item they read (the item is
    a parameter of their key; their edge names the list)."""
    readers: dict[tuple[str, str], list[tuple[str, str | None]]] = {}
    for node, name, source, key, parts in lineage.conn.execute(
            "SELECT e.node, e.name, e.source, s.key, s.key_parts FROM edges e JOIN steps s ON s.run_id=e.run_id "
            "AND s.node=e.node WHERE e.run_id=? AND e.direction='in' AND e.source LIKE '%.map%'", (run_id,)):
        if not MAP_RESULTS.search(str(source)):
            continue
        try:
            item = (json.loads(parts) or {}).get("params", {}).get(name) if parts else None
        except (ValueError, AttributeError):  # a damaged value: orch doctor names it
            item = None
        if isinstance(item, str):
            readers.setdefault((MAP_RESULTS.sub("", str(source)), item), []).append((str(node), key))
    return readers
