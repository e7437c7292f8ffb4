"""Lineage walks: what produced an artifact (upstream) and what was built from it (downstream).

The walk crosses runs and follows the pipeline's data flow: from a step run,
an input's producer is the node its input edge names (the step run that
computed it, when that node was cached), and an output's consumers are the
step runs that read it from that node, in its run or in later runs that
reused the same computation. From a bare digest, the walk goes by content:
its producer is the step run that first computed it, and its consumers every
step run, in any run, that read it. The result is a small graph
of artifact and step-run vertices that ``render`` prints as a tree, JSON,
Graphviz dot or Mermaid. Reads the metadata database only.
"""

from __future__ import annotations

import json
import math
import re
import shlex
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orchestrator.diagrams import dot_quote, mermaid_quote
from orchestrator.errors import DamagedRecordError, NotFoundError, UserError
from orchestrator.hashing import skipping_folders
from orchestrator.lineage_items import (
    MAP_RESULTS,
    map_item_outputs,
    map_item_readers,
    may_be_mapped,
    own_list,
    reused_items,
)
from orchestrator.lineage_refs import (
    looks_like_path,
    model_row,
    names_a_file,
    other_contents,
    resolve_ref,
    runs_using_roots,
)

if TYPE_CHECKING:
    from orchestrator.lineage_db import Lineage


@dataclass
class Vertex:
    id: str
    kind: str  # "artifact" | "file" | "step"
    label: str
    data: dict[str, Any] = field(default_factory=dict)
    children: list[tuple[str, str]] = field(default_factory=list)  # (edge label, vertex id)
    # The same pairs as a set: an artifact read by every item of a 5,000-item map has 5,000
    # children, and checking the list for each one made the walk quadratic.
    linked: set[tuple[str, str]] = field(default_factory=set, repr=False, compare=False)


@dataclass
class LineageGraph:
    roots: list[str]
    vertices: dict[str, Vertex]
    direction: str
    model: dict[str, Any] | None = None  # the audit record when REF is a registered model
    # Going down: the runs that used the REF. A step run elsewhere that read an equal value
    # (a cached step's output, reused by a run of older data) was not built from it.
    runs: set[str] | None = None
    # Going down from a step run (or a run): its run, where a later step of it reused a computation
    # shows that computation; and that run's steps, {node: (key, status)}, read once.
    home: str | None = None
    home_steps: dict[str, tuple[str | None, str]] | None = None
    # vertex id -> the steps left to show below it when it was expanded: a vertex first met at
    # the end of a long path is expanded again when a shorter one reaches it with more left.
    expanded: dict[str, float] = field(default_factory=dict)
    # Visits scheduled and not done yet: (kind, ident, depth, via), the next one last.
    pending: list[tuple[str, str, float, tuple[str, str] | None]] = field(default_factory=list)
    # REF a file: the other contents runs read at its path, [{digest, runs}] (None for other REFs).
    other_contents: list[dict[str, Any]] | None = None
    # "RUN:node" of a step run some cached step reused -> the (node, digest) of the list it took its
    # item from, or None when it is no map item (see `lineage_items.reused_items`).
    item_sources: dict[str, tuple[str, str] | None] = field(default_factory=dict)
    # The runs a list's items may have been reused in -> their reused map items by list node (`reused_items`).
    reused_by_list: dict[tuple[str, ...], dict[str, list[Any]]] = field(default_factory=dict)
    # (run, run that computed its item, list node, that run's list) -> the list of the run (`own_list`).
    own_lists: dict[tuple[str, str, str, str], str | None] = field(default_factory=dict)
    # (run, "square.map") -> {output digest: item node} of the step's map items (`map_item_outputs`).
    map_items: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    # (run, node) -> the digests that step run output, itself or by the step run it reused (`_made_in`).
    outputs_of: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    # run -> its items of maps over a map's result, by (map, item digest) (`map_item_readers`).
    map_readers: dict[str, dict[tuple[str, str], list[tuple[str, str | None]]]] = field(default_factory=dict)
    # (path, content) -> ``file_now`` of it: each file a walk meets is hashed once (`_file_mark`).
    file_marks: dict[tuple[str, str], str] = field(default_factory=dict)
    # Lines the tree ends with, after the other contents: what to ask next.
    notes: list[str] = field(default_factory=list)

    def add_child(self, parent: Vertex, label: str, child: str) -> None:
        """Link ``child`` under ``parent`` once, however often the walk passes there."""
        if (label, child) not in parent.linked:
            parent.linked.add((label, child))
            parent.children.append((label, child))


def walk(lineage: Lineage, ref: str, direction: str = "upstream", depth: int | None = None) -> LineageGraph:
    """The lineage graph of ``ref`` in ``direction`` ("upstream" or "downstream")."""
    if direction not in ("upstream", "downstream"):
        raise UserError(f"direction must be 'upstream' or 'downstream', not {direction!r}.")
    graph = LineageGraph(roots=[], vertices={}, direction=direction)
    if "@" in ref:
        from orchestrator.audit import audit_version

        graph.model = audit_version(lineage, model_row(lineage, ref))
    # A folder is hashed as runs hashed it: without the store inside it (its metadata folder).
    with skipping_folders([lineage.path.parent]):
        roots = resolve_ref(lineage, ref)
        if direction == "downstream":
            graph.runs = runs_using_roots(lineage, roots)
            graph.home = _home_run(roots)
        shown: set[str] = set()  # graph.roots as a set: a run's roots are its steps, thousands for a map
        for kind, ident in roots:
            # No limit is infinity, not a large number: it never grows along a shorter path, so no
            # vertex is expanded twice.
            vid = _walk_from(lineage, graph, kind, ident, depth if depth is not None else math.inf)
            if vid not in shown:
                shown.add(vid)
                graph.roots.append(vid)
    if names_a_file(ref) or ("@" not in ref and ":" not in ref and looks_like_path(ref)):  # a path, on disk or not
        if len(graph.roots) > 1:  # the file, and the path a step returned, shown under it
            below = _reachable(graph, graph.roots)
            # ... as the output of the step that returned it: the same artifact, seen through that step,
            # and then no vertex of its own in the JSON and the diagrams either
            seen = {vid.partition("@")[0] for vid in below if vid.startswith("artifact:")} - below
            kept = [r for r in graph.roots if r not in below and r not in seen]
            if kept:
                graph.roots = kept
                for vid in seen:
                    graph.vertices.pop(vid, None)
        graph.other_contents = other_contents(lineage, ref, roots)
        alone = [graph.vertices[r] for r in graph.roots]
        if direction == "upstream" and alone and all(v.kind == "file" and not v.children for v in alone):
            # Traced up, an input file is a line alone: the question was most likely the other one.
            graph.notes.append(f"an input file: no step made it. What was built from it: "
                               f"`orch lineage {shlex.quote(ref)} --downstream`.")
    return graph


def _home_run(roots: list[tuple[str, str]]) -> str | None:
    """The run of a REF that is step runs of one run (``RUN:STEP``, ``RUN:STEP.OUTPUT``, a run, a model version)."""
    runs = {(ident.partition("@")[2] if kind == "output" else ident).split(":", 1)[0]
            for kind, ident in roots if kind in ("step", "output")}
    return runs.pop() if len(runs) == 1 and all(kind in ("step", "output") for kind, _ in roots) else None


def _in_home(lineage: Lineage, g: LineageGraph, run_id: str, node: str, key: str | None) -> bool:
    """Whether the REF's own run has a step run of the computation step run ``run_id:node`` is.

    A later run that reused it (cached), or computed its key again with an equal output, is
    that computation: walked down from a step run of that later run, it is shown there (as
    ``scale (run B, cached from run A)``), not in the run that first computed it.
    """
    if g.home is None or run_id == g.home or key is None:
        return False
    if g.home_steps is None:
        g.home_steps = {str(n): (k, str(status)) for n, k, status in lineage.conn.execute(
            "SELECT node, key, status FROM steps WHERE run_id=?", (g.home,))}
    mine = g.home_steps.get(node)
    if mine is None or mine[0] != key or mine[1] not in ("ran", "cached"):
        return False
    return _outputs_of(lineage, g, g.home, node) == _outputs_of(lineage, g, run_id, node)


def _in_used_runs(lineage: Lineage, g: LineageGraph, run_id: str, node: str, key: str | None) -> str | None:
    """``run_id`` when its run used the REF, else a run that did and reused the same step run; None if none."""
    if g.runs is None or run_id in g.runs:
        return run_id
    for (other,) in lineage.conn.execute(
            "SELECT s.run_id FROM steps s JOIN runs r ON r.run_id=s.run_id WHERE s.node=? AND s.key=? "
            "AND s.status IN ('ran', 'cached') ORDER BY s.status='ran' DESC, r.started ASC", (node, key)):
        if other in g.runs:
            return str(other)
    return None


def _reachable(graph: LineageGraph, roots: list[str]) -> set[str]:
    """Every vertex below ``roots`` (not the roots themselves, unless one is below another)."""
    seen: set[str] = set()
    stack = [child for root in roots for _, child in graph.vertices[root].children]
    while stack:
        vid = stack.pop()
        if vid not in seen:
            seen.add(vid)
            stack.extend(child for _, child in graph.vertices[vid].children)
    return seen


def _vertex_id(kind: str, ident: str, via: tuple[str, str] | None) -> str:
    return f"{kind}:{ident}" if via is None else f"{kind}:{ident}@{via[0]}:{via[1]}"


def _later(g: LineageGraph, kind: str, ident: str, depth: float, via: tuple[str, str] | None = None) -> str:
    """Schedule a visit (see ``_visit``) and return the id its vertex has, to link it now."""
    g.pending.append((kind, ident, depth, via))
    return _vertex_id(kind, ident, via)


def _walk_from(lineage: Lineage, g: LineageGraph, kind: str, ident: str, depth: float) -> str:
    """Visit a root and everything beyond it, depth first, in the order a recursive walk would.

    With a stack of its own rather than Python's: the lineage of the last step of a
    2,000-step chain is 4,000 vertices deep, past Python's recursion limit. The
    visits one vertex schedules are reversed on the stack, so the first is done first.
    """
    if kind == "output":  # one output of a step run, seen through it: the walk follows its data flow
        digest, _, made_by = ident.partition("@")
        run_id, _, node = made_by.partition(":")
        through = lineage.origin(run_id, node) if g.direction == "downstream" else (run_id, node)
        vid = _later(g, "artifact", digest, depth, through)
    else:
        vid = _later(g, kind, ident, depth)
    while g.pending:
        item = g.pending.pop()
        mark = len(g.pending)
        _visit(lineage, g, *item)
        g.pending[mark:] = g.pending[mark:][::-1]
    return vid


def _visit(lineage: Lineage, g: LineageGraph, kind: str, ident: str, depth: float,
           via: tuple[str, str] | None = None) -> str:
    """Add the vertex of a step run (``RUN:node``), artifact or file, and schedule what lies beyond it.

    ``via`` is the step run an artifact is seen through, when the walk came
    from a step: going up, the node that output what that step read; going
    down, the node that output it. The walk then follows the pipeline's data
    flow: a step that passed its input on unchanged is the producer its
    consumers read from, and a run elsewhere that happened to make or read
    equal content is not mixed in. Without ``via`` (a digest given as REF),
    the artifact is taken by content, across runs.

    ``depth`` is how many more step runs may be shown along this path: a step
    run at 0 is shown but not expanded, so ``--depth N`` shows N steps beyond
    the REF (the artifacts between them do not count).
    """
    vid = _vertex_id(kind, ident, via)
    if vid in g.vertices and g.expanded.get(vid, -1) >= depth:
        return vid
    if kind == "step":
        run_id, node = ident.split(":", 1)
        row = lineage.step_row(run_id, node)
        if vid in g.vertices:
            return _expand_step(lineage, g, g.vertices[vid], run_id, node, row, depth)
        origin = lineage.origin(run_id, node, row)
        parts = _key_parts(lineage, run_id, node, row, origin)
        if not isinstance(parts.get("values") or {}, dict):
            raise DamagedRecordError(lineage.path, f"steps.key_parts of {run_id}:{node}",
                                     "its `values` is not an object")
        v = Vertex(vid, "step", f"{node} (run {run_id}, {row['status']}{_computed_elsewhere(run_id, node, origin)})", {
            "run_id": run_id, "step": node, "status": row["status"], "key": row["key"],
            "computed_by": _computed_by(row, origin),
            "code": parts.get("code"), "code_parts": parts.get("code_parts"), "params": parts.get("values"),
            "param_hashes": parts.get("params"),
        })
        g.vertices[vid] = v
        return _expand_step(lineage, g, v, run_id, node, row, depth)
    if vid in g.vertices:
        return _expand_data(lineage, g, g.vertices[vid], kind, ident, depth, via)
    # A file from disk is "DIGEST@PATH"; a file given by digest alone is its content at any path.
    digest, _, path = ident.partition("@") if kind == "file" else (ident, "", "")
    artifact = lineage.artifact_row(ident) if kind == "artifact" else None
    label = f"{digest[:12]}" + (f" ({artifact['type']}, {artifact['size']} B)" if artifact else "")
    extra: dict[str, Any] = {"type": artifact["type"], "size": artifact["size"], "stored": True} if artifact else {}
    if kind == "artifact" and artifact is None and via is not None and MAP_RESULTS.search(via[1]):
        # The list of a map's results, which a map over it read item by item: never stored as one
        # artifact (each item's output is), so not one that gc removed.
        label += f" (the list of {via[1]}'s results, run {via[0]}: each item's output is stored, not the list)"
        extra["stored"] = False
    elif kind == "artifact" and artifact is None:
        # Its record outlived its object (`cache gc`, `cache verify --repair`): say so, or the bare
        # digest reads like a display glitch and the user looks for it with `orch cache ls`.
        label += " (no longer stored: removed by orch cache gc or verify --repair)"
        extra["stored"] = False
    if kind == "file":
        found = (path,) if path else lineage.conn.execute(
            "SELECT path FROM edges WHERE digest=? AND path IS NOT NULL LIMIT 1", (digest,)).fetchone()
        if found:
            # A file REF on disk is traced as it is now; one no longer there, or a content given by
            # its digest that the file no longer has (an older dataset), as runs read it: say so.
            now = _file_mark(lineage, g, str(found[0]), digest)
            label, extra = f"{found[0]} ({digest[:12]}{now})", {"path": found[0], **({"now": now[2:]} if now else {})}
    named = artifact["meta"].get("file") if artifact else None
    if named:  # a path output: the file it names, by content
        if not isinstance(named, dict) or not isinstance(named.get("path"), str):
            raise DamagedRecordError(lineage.path, f"artifacts.meta of artifact {ident}",
                                     "its `file` is not an object with a `path`")
        # The file at that path today may be what a later run wrote there, or nothing: marked as an input
        # file is, or it reads as the file this step run made.
        now = _file_mark(lineage, g, named["path"], named["content"]) if isinstance(named.get("content"), str) else ""
        extra["file"] = {**named, **({"now": now[2:]} if now else {})}
        label += f" → {named['path']}" + (f" ({now[2:]})" if now else "")
    models = _registered_as(lineage, ident) if artifact else []
    if models:  # "what was built from this dataset?" ends at the model version, not at its artifact
        extra["models"] = models
        label += " → model " + ", ".join(
            f"{m['name']}@{m['version']}" + (" (production)" if m["production"] else "") for m in models)
    v = Vertex(vid, kind, label, {"digest": digest, **extra})
    g.vertices[vid] = v
    return _expand_data(lineage, g, v, kind, ident, depth, via)


def _key_parts(lineage: Lineage, run_id: str, node: str, row: dict[str, Any],
               origin: tuple[str, str]) -> dict[str, Any]:
    """A step run's parameters and code, as its key was made of.

    A cached step run records none of its own: they are those of the step run
    that computed its key, which keeps them. The cache index has them too, but
    ``cache gc`` drops its entries with their artifacts, and the lineage of an
    older run (its parameters and code) must still answer from the runs' records.
    """
    if row["key_parts"]:
        return dict(row["key_parts"])
    if origin != (run_id, node):
        try:
            computed = lineage.step_row(*origin)["key_parts"]
        except NotFoundError:  # that run was deleted from the store
            computed = None
        if computed:
            return dict(computed)
    return (lineage.key_parts_of(row["key"]) if row["key"] else None) or {}


def _made_in(lineage: Lineage, g: LineageGraph, run_id: str, node: str, digest: str) -> bool:
    """Whether step run ``run_id:node`` output ``digest`` (computed there, or reused with that output)."""
    return digest in _outputs_of(lineage, g, run_id, node)


def _outputs_of(lineage: Lineage, g: LineageGraph, run_id: str, node: str) -> set[str]:
    """The digests step run ``run_id:node`` output, computed there or reused (none: no such step run)."""
    known = g.outputs_of.get((run_id, node))
    if known is None:
        try:
            _, edges = lineage.flow_edges(run_id, node)
        except NotFoundError:  # no such node in that run (another pipeline's step reused)
            edges = []
        known = g.outputs_of[(run_id, node)] = {e[2] for e in edges if e[0] == "out"}
    return known


def _computed_by(row: dict[str, Any], origin: tuple[str, str]) -> str | None:
    """``RUN:STEP`` of the step run that computed this one's result (itself unless cached).

    None for a skipped step: it never ran, and no step run computed anything for it
    (its own run was no more its computation than any other).
    """
    return None if row["status"] == "skipped" else f"{origin[0]}:{origin[1]}"


def _computed_elsewhere(run_id: str, node: str, origin: tuple[str, str]) -> str:
    """``", cached from run X"``: the step run that computed what a cached one reused, where its logs are."""
    if origin == (run_id, node):
        return ""
    return f" from run {origin[0]}" + (f" step {origin[1]}" if origin[1] != node else "")


def _expand_step(lineage: Lineage, g: LineageGraph, v: Vertex, run_id: str, node: str, row: dict[str, Any],
                 depth: float) -> str:
    """Add a step run's inputs (going up) or outputs (going down) under it, unless no step is left to show."""
    g.expanded[v.id] = depth
    origin, edges = lineage.flow_edges(run_id, node, row)
    wanted = "in" if g.direction == "upstream" else "out"
    own: set[str] = set()  # inputs a cached map item recorded itself: read from nodes of its own run
    if g.direction == "upstream" and origin != (run_id, node):
        # Its list: the step run it reused may have taken an equal item from another list (the map before
        # it in this run). Not the list of a map's results, which is found by the item it holds (below).
        recorded = {e[1]: e for e in lineage.own_inputs(run_id, node) if not MAP_RESULTS.search(e[4] or "")}
        if recorded:
            own = set(recorded)
            edges = [recorded.pop(e[1], e) if e[0] == "in" else e for e in edges] + list(recorded.values())
    if depth <= 0:
        # Cut by --depth: say so, or a step shown without inputs reads as one that had none.
        if any(edge[0] == wanted for edge in edges):
            v.data["truncated"] = True
        return v.id
    v.data.pop("truncated", None)
    for direction, name, digest, path, source in edges:
        if direction != wanted:
            continue
        if path:  # a file is its content at its path: an equal copy elsewhere is another file
            fid = f"file:{digest}@{path}"
            if fid not in g.vertices:
                now = _file_mark(lineage, g, path, digest)
                g.vertices[fid] = Vertex(fid, "file", f"{path} ({digest[:12]}{now})",
                                         {"path": path, "digest": digest, **({"now": now[2:]} if now else {})})
            g.add_child(v, name, fid)
            continue
        edge_run = run_id if name in own else origin[0]  # the run whose node ``source`` names
        if g.direction == "upstream" and source and edge_run != run_id and _made_in(lineage, g, run_id, source, digest):
            # A result reused after early cutoff: this run's own `source` made the same value (from other
            # data, or other code), and that is where this run's value came from, not the run that computed
            # the reused result. Going down from this run's data reaches this step the same way.
            edge_run = run_id
        # Going down, through the step run that computed it, whose readers are those of this computation,
        # in any run; not for one reused in its own run (an item equal to one of the map before it):
        # its readers are those that name it, not those of the node it reused.
        through = (origin if origin[0] != run_id else (run_id, node)) if g.direction == "downstream" else \
            (edge_run, source) if source else None
        if g.direction == "upstream" and source and edge_run != run_id and name in (v.data.get("param_hashes") or {}):
            # A map item reused from another run: the list it came from is this run's (its key holds the
            # item, not the list, so the run that computed it may have had another list).
            asked = (run_id, origin[0], source, digest)  # the same for every item of one map
            if asked not in g.own_lists:
                g.own_lists[asked] = own_list(lineage, *asked)
            mine = g.own_lists[asked]
            if mine is not None:
                digest, through = mine, (run_id, source)
        if g.direction == "upstream" and source and MAP_RESULTS.search(source) and \
                name in (v.data.get("param_hashes") or {}):
            # An item of a map over a map's result: it came from one item's output of that map.
            item = v.data["param_hashes"][name]
            if (origin[0], source) not in g.map_items:
                g.map_items[(origin[0], source)] = map_item_outputs(lineage, origin[0], source)
            made_by = g.map_items[(origin[0], source)].get(item)
            if made_by is not None:
                digest, through = item, (origin[0], made_by)
        g.add_child(v, name, _later(g, "artifact", digest, depth, through))
    return v.id


def _expand_data(lineage: Lineage, g: LineageGraph, v: Vertex, kind: str, ident: str, depth: float,
                 via: tuple[str, str] | None) -> str:
    """Add an artifact's or a file's producer (going up) or readers (going down) under it."""
    g.expanded[v.id] = depth
    if depth <= 0:
        return v.id
    digest, _, path = ident.partition("@") if kind == "file" else (ident, "", "")
    if via is not None and kind == "artifact":
        _visit_flow(lineage, g, v, ident, depth, via)
    elif g.direction == "upstream":
        producers = lineage.conn.execute(
            "SELECT e.run_id, e.node FROM edges e JOIN steps s ON s.run_id=e.run_id AND s.node=e.node "
            "JOIN runs r ON r.run_id=e.run_id WHERE e.digest=? AND e.direction='out' "
            # Within a run, the earliest step: a later one that passed the same value on
            # (returned its input unchanged) did not make it.
            "ORDER BY s.status='ran' DESC, r.started ASC, s.position ASC LIMIT 1", (digest,)).fetchall()
        for run_id, node in producers:
            g.add_child(v, "produced by", _later(g, "step", f"{run_id}:{node}", depth - 1))
    else:
        seen = _Computations()
        # A step that failed on it read it too: "which runs used this bad file?" names the run it broke.
        for run_id, node, key, status, made in lineage.conn.execute(
            f"SELECT e.run_id, e.node, s.key, s.status, {_MADE} FROM edges e JOIN steps s ON s.run_id=e.run_id "
            "AND s.node=e.node JOIN runs r ON r.run_id=e.run_id WHERE e.digest=? AND e.direction='in' "
            f"AND s.status IN ('ran', 'cached', 'failed', 'interrupted'){' AND e.path=?' if path else ''} "
            # In a run, pipeline order: a map's items read `square, square_2, …`, not `square_1000`.
            "ORDER BY s.status='ran' DESC, r.started ASC, s.position ASC", (digest, path) if path else (digest,)):
            if seen.first(node, key, status, made):
                g.add_child(v, "read by", _later(g, "step", f"{run_id}:{node}", depth - 1))
        if kind == "artifact" and may_be_mapped(v.data.get("type")):
            # The items of maps over it that runs reused from a map over another list, as along the flow.
            producers = lineage.conn.execute(
                "SELECT DISTINCT e.run_id, e.node, s.key FROM edges e JOIN steps s ON s.run_id=e.run_id "
                "AND s.node=e.node WHERE e.digest=? AND e.direction='out'", (digest,)).fetchall()
            for made_in, made_by, made_key in producers:
                for run_id, node, key in reused_items(lineage, g.item_sources, g.reused_by_list, digest, made_in, made_by,
                                                        made_key):
                    if seen.first(node, key, "cached"):  # an item a run reused
                        g.add_child(v, "read by", _later(g, "step", f"{run_id}:{node}", depth - 1))
    return v.id


# What a reader made, "name=digest" of each output (NULL for a step run that recorded none).
_MADE = ("(SELECT group_concat(o.name || '=' || o.digest, ' ') FROM edges o "
         "WHERE o.run_id=e.run_id AND o.node=e.node AND o.direction='out')")


def _outputs(status: str, made: str | None) -> str | None:
    """What a step run made, comparable across runs; None for a cached one, which made nothing itself."""
    return None if status == "cached" else " ".join(sorted((made or "").split()))


# A reader in one of these made nothing from the input: not a computation, but a run the input broke.
_BROKEN = ("failed", "interrupted")


@dataclass
class _Computations:
    """The readers listed under one vertex, each computation once.

    A computation is a node's key and what it made. A later run that reused it
    (cached), or computed the same key again with the same result (``--no-cache``,
    a re-run after ``cache gc``), is that computation, shown once. A step forced
    again (``--rerun`` of a step that reads what its key cannot see: a clock, an
    environment variable, an unseeded random state) that made another output is
    another computation: what was built from it is not what the first one fed,
    and listing the key once hid the model it made. A step that failed on the
    input (or was interrupted) made nothing and is no computation: each such step
    run is listed, beside a later run that succeeded with it and beside the other
    runs that failed on it alike, so bad data names every run it broke.
    """

    made: dict[tuple[str, str | None], set[str | None]] = field(default_factory=dict)

    def first(self, node: str, key: str | None, status: str | None, made: str | None = None) -> bool:
        """True the first time this computation is met, and for every step run that broke on the input.

        ``status`` and ``made`` are the reader's step status and outputs (``_MADE``);
        ``status`` None is a reader found by its key alone, compared as a cached reuse is.
        """
        if status in _BROKEN:
            return True
        outputs = _outputs(status or "cached", made)
        shown = self.made.setdefault((node, key), set())
        if shown and (outputs is None or None in shown or outputs in shown):
            return False
        shown.add(outputs)
        return True


def _registered_as(lineage: Lineage, digest: str) -> list[dict[str, Any]]:
    """The model versions registered from artifact ``digest`` (a model candidate), oldest first."""
    return [{"name": name, "version": version, "production": production == version}
            for name, version, production in lineage.conn.execute(
                "SELECT v.name, v.version, m.production FROM model_versions v LEFT JOIN models m ON m.name=v.name "
                "WHERE v.digest=? ORDER BY v.created", (digest,))]


def file_now(lineage: Lineage, path: str, digest: str) -> str:
    """``", changed since"`` or ``", gone since"`` when the file no longer has the content a run read."""
    from orchestrator.hashing import hash_file

    try:
        return "" if hash_file(path, lineage.load_file_memo()) == digest else ", changed since"
    except FileNotFoundError:
        return ", gone since"
    except OSError:
        return ""  # unreadable now: say nothing rather than guess


def _file_mark(lineage: Lineage, g: LineageGraph, path: str, digest: str) -> str:
    """``file_now`` of a file (read by a step, or written and returned as a path), once per walk.

    A path output is seen through each step run that made or passed it on, a
    vertex each: the file, maybe a large model, is hashed once, not per vertex.
    """
    mark = g.file_marks.get((path, digest))
    if mark is None:
        mark = g.file_marks[(path, digest)] = file_now(lineage, path, digest)
    return mark


def _visit_flow(lineage: Lineage, g: LineageGraph, v: Vertex, digest: str, depth: float,
                via: tuple[str, str]) -> None:
    """An artifact's producer or consumers along the data flow, seen through step run ``via``."""
    run_id, node = via
    row = lineage.row("SELECT key FROM steps WHERE run_id=? AND node=?", (run_id, node))
    if g.direction == "upstream":
        if row is not None:
            g.add_child(v, "produced by", _later(g, "step", f"{run_id}:{node}", depth - 1))
        return
    # Read from this node, in its run or in a later one where the same computation (its key) was
    # reused; and edges recorded before sources were, by content as before.
    seen = _Computations()
    readers: list[tuple[str, str, str | None, str | None, str | None]] = [*lineage.conn.execute(
        f"SELECT e.run_id, e.node, s.key, s.status, {_MADE} FROM edges e JOIN steps s ON s.run_id=e.run_id "
        "AND s.node=e.node JOIN runs r ON r.run_id=e.run_id LEFT JOIN steps p ON p.run_id=e.run_id AND p.node=e.source "
        "WHERE e.digest=? AND e.direction='in' AND s.status IN ('ran', 'cached', 'failed', 'interrupted') "
        # In its own run, a reader names the node it read: another node of the same key is another node.
        "AND (e.source IS NULL OR (e.run_id=? AND e.source=?) OR (p.key IS NOT NULL AND p.key=? AND e.run_id!=?)) "
        # Of equal computations, the one of this node's run: from `--no-cache` run B's `load`, B's `split`
        # read it, not the `split` of run A that B computed again.
        "ORDER BY s.status='ran' DESC, e.run_id=? DESC, r.started ASC, s.position ASC",
        (digest, run_id, node, row["key"] if row else None, run_id, run_id))]
    # A cached step of the same run records no edges: it read this output if the step run that
    # computed its key read it from a node of that name. Not a map item that records its own (found
    # above): the step run it reused may have read an equal item from another list.
    # CROSS JOIN keeps SQLite from starting at the run's steps: that scanned every step of a
    # 5,000-item map once per item. From the readers of this digest, each join is one index lookup.
    readers += lineage.conn.execute(
        "SELECT s.run_id, s.node, s.key, s.status, NULL FROM edges e CROSS JOIN cache c CROSS JOIN steps s "
        "WHERE e.digest=? AND e.direction='in' AND e.source=? AND c.run_id=e.run_id AND c.node=e.node "
        "AND s.key=c.key AND s.run_id=? AND s.status='cached' AND NOT EXISTS (SELECT 1 FROM edges o "
        "WHERE o.run_id=s.run_id AND o.node=s.node AND o.direction='in') "
        "ORDER BY s.position", (digest, node, run_id)).fetchall()
    if may_be_mapped(v.data.get("type")):
        readers += [(*item, "cached", None) for item in reused_items(lineage, g.item_sources, g.reused_by_list, digest,
                                                             run_id, node, row["key"] if row else None)]
    # Items of a map over a map's result read one item's output each (their edge names the list).
    if run_id not in g.map_readers:
        g.map_readers[run_id] = map_item_readers(lineage, run_id)
    base = re.sub(r"_\d+$", "", node)
    readers += [(run_id, reader, key, None, None) for reader, key in g.map_readers[run_id].get((base, digest), [])]
    for consumer_run, consumer, key, status, made in readers:
        if not seen.first(consumer, key, status, made):
            continue
        if status not in _BROKEN and _in_home(lineage, g, consumer_run, consumer, key):
            used: str | None = g.home
        else:
            used = _in_used_runs(lineage, g, consumer_run, consumer, key)
        if used is not None:
            g.add_child(v, "read by", _later(g, "step", f"{used}:{consumer}", depth - 1))


def lineage_doc(g: LineageGraph) -> dict[str, Any]:
    """The document ``orch lineage --format json`` prints (and ``orchestrator.lineage`` returns), as data.

    Strict JSON values: a model's NaN metric is None, a tuple a list, so that
    the dict equals what a reader of the printed JSON gets.
    """
    from orchestrator.json_values import strict_json

    doc = strict_json(_json(g))
    assert isinstance(doc, dict)
    return doc


def render(g: LineageGraph, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(lineage_doc(g), indent=2)
    if fmt == "dot":
        lines = ["digraph lineage {", "  rankdir=LR;"]
        for v in g.vertices.values():
            shape = "box" if v.kind == "step" else "ellipse"
            lines.append(f"  {dot_quote(v.id)} [label={dot_quote(_shown(v, chr(10), cut=True))}, shape={shape}];")
        for v in g.vertices.values():
            for label, child in v.children:
                a, b = (child, v.id) if g.direction == "upstream" else (v.id, child)
                lines.append(f"  {dot_quote(a)} -> {dot_quote(b)} [label={dot_quote(_arrow_label(g, label))}];")
        if g.model is not None:  # REF a model version: the diagram names it, as the tree's first line does
            lines.append(f"  \"model\" [label={dot_quote(_model_label(g.model))}, shape=note];")
            lines += [f"  {dot_quote(root)} -> \"model\" [label=\"registered as\"];" for root in g.roots]
        lines.append("}")
        return "\n".join(lines)
    if fmt == "mermaid":
        ids = {vid: f"n{i}" for i, vid in enumerate(g.vertices)}
        lines = ["graph LR"]
        for v in g.vertices.values():
            text = mermaid_quote(_shown(v, "  ", cut=True))
            lines.append(f"  {ids[v.id]}[{text}]" if v.kind == "step" else f"  {ids[v.id]}({text})")
        for v in g.vertices.values():
            for label, child in v.children:
                a, b = (child, v.id) if g.direction == "upstream" else (v.id, child)
                lines.append(f"  {ids[a]} -->|{mermaid_quote(_arrow_label(g, label))}| {ids[b]}")
        if g.model is not None:
            lines.append(f"  model[/{mermaid_quote(_model_label(g.model))}/]")
            lines += [f"  {ids[root]} -->|registered as| model" for root in g.roots if root in ids]
        return "\n".join(lines)
    head = []
    if g.model is not None:
        m = g.model
        head.append(f"model {m['model']} v{m['version']} ({m['stage']}), registered {m['registered']} "
                    f"by run {m['run'].get('run_id')}; details: orch models show {m['model']}@{m['version']}")
    return "\n".join(head + _tree_lines(g) + _other_contents_lines(g) + g.notes)


def _model_label(m: dict[str, Any]) -> str:
    return f"model {m['model']}@{m['version']} ({m['stage']})"


def _other_contents_lines(g: LineageGraph) -> list[str]:
    """The closing note of a file's tree: its path's other contents that runs read, and how to trace one."""
    if not g.other_contents:
        return []
    shown = [f"{c['digest'][:12]} (run{'s' if len(c['runs']) > 1 else ''} {', '.join(c['runs'][:3])}"
             f"{' …' if len(c['runs']) > 3 else ''})" for c in g.other_contents[:5]]
    more = f" and {len(g.other_contents) - 5} more" if len(g.other_contents) > 5 else ""
    direction = " --downstream" if g.direction == "downstream" else ""
    return [f"other contents runs read at this path: {', '.join(shown)}{more}. Trace one with "
            f"`orch lineage DIGEST{direction}`."]


def _arrow_label(g: LineageGraph, label: str) -> str:
    """An edge's label as it reads along a diagram's arrow, which always points the way data flowed.

    The tree reads from REF outwards (``X ← produced by: features``); going
    up, a diagram's arrow runs the other way, from the step to what it made,
    where "produced by" would say the opposite of what happened.
    """
    return "produced" if g.direction == "upstream" and label == "produced by" else label


def _shown(v: Vertex, sep: str, cut: bool = False) -> str:
    """A vertex as the tree and the diagrams show it: a step run with its parameters and code.

    "Which data, code and parameters made this model?" must be answerable
    from a diagram too, not only from the tree or the JSON. ``cut``: say
    where ``--depth`` stopped (the tree says it after the line, with its other
    notes); in a diagram a step drawn without its inputs reads as one that had none.
    """
    text = v.label
    if v.kind == "step" and v.data.get("params"):
        from orchestrator.report import one_line

        text += sep + ", ".join(f"{k}={one_line(val)}" for k, val in v.data["params"].items())
    if v.kind == "step" and v.data.get("code"):
        text += f"{sep}code {v.data['code'][:12]}"
    if cut and v.data.get("truncated"):
        text += f"{sep}(more beyond --depth)"
    return text


# How deep the tree nests before it stops at a step and names the command that goes on from it.
# Each level indents by 4 characters: the last step of a 2,000-step chain made a 4,000-level tree
# of 32 MB, its lines 16,000 characters wide. 48 levels are 24 steps beyond REF.
TREE_LEVELS = 48
# How many of a vertex's children the tree lists: the list every item of a 5,000-item map read
# had 5,000 (15,000 lines), alike but for their numbers. The rest are counted on one line.
TREE_CHILDREN = 50


def _tree_lines(g: LineageGraph) -> list[str]:
    """The tree, each vertex's subtree printed once (later: ``(shown above)``).

    A step deeper than ``TREE_LEVELS`` is not expanded: its line names the
    ``orch lineage`` command that shows what lies beyond it, and past
    ``TREE_CHILDREN`` children of a vertex one line counts the others (the
    JSON, dot and Mermaid formats keep everything). With a stack of its own,
    not recursion.
    """
    lines: list[str] = []
    printed: set[str] = set()
    # (vertex, prefix, last among its siblings, edge label, nesting level), the next one last
    stack: list[tuple[str, str, bool, str, int]] = [(root, "", True, "", 0) for root in reversed(g.roots)]
    while stack:
        vid, prefix, last, label, level = stack.pop()
        if vid == "":  # the line counting the children left out; `label` says how many
            lines.append(f"{prefix}└── … {label}")
            continue
        v = g.vertices[vid]
        branch = "" if level == 0 else ("└── " if last else "├── ")
        head = f"{label}: " if label else ""
        # An ancestor met again (a cycle) was printed too: it is repeated, and not descended into.
        repeated = vid in printed and bool(v.children)
        deeper = not repeated and bool(v.children) and level >= TREE_LEVELS and v.kind == "step"
        note = "  (shown above)" if repeated else "  (more beyond --depth)" if v.data.get("truncated") else ""
        if deeper:
            down = " --downstream" if g.direction == "downstream" else ""
            note = f"  (more beyond: orch lineage {v.data['run_id']}:{v.data['step']}{down})"
        lines.append(f"{prefix}{branch}{head}{_shown(v, '  ')}{note}")
        if repeated or deeper:
            continue
        printed.add(vid)
        ext = prefix + ("" if level == 0 else ("    " if last else "│   "))
        kids = v.children[:TREE_CHILDREN]
        left = len(v.children) - len(kids)
        if left:
            stack.append(("", ext, True, f"{left} more{_counted(v.children[len(kids):])} (--format json "
                          "lists every one)", level + 1))
        stack.extend((child, ext, i == len(kids) - 1 and not left, elabel, level + 1)
                     for i, (elabel, child) in reversed(list(enumerate(kids))))
    return lines


def _counted(children: list[tuple[str, str]]) -> str:
    """What the children a tree leaves out are: `` read by``, `` xs[…]`` (one input's items), or
    ``: 4000 read by, 950 out`` when they are of several kinds."""
    labels: dict[str, int] = {}
    for label, _ in children:
        key = re.sub(r"\[\d+\]$", "[…]", label)
        labels[key] = labels.get(key, 0) + 1
    if len(labels) == 1:
        return f" {next(iter(labels))}"
    return ": " + ", ".join(f"{n} {label}" for label, n in labels.items())


def _json(g: LineageGraph) -> dict[str, Any]:
    doc: dict[str, Any] = {"model": g.model} if g.model is not None else {}
    if g.other_contents is not None:
        doc["other_contents"] = g.other_contents
    return {
        **doc,
        "direction": g.direction,
        "roots": g.roots,
        "nodes": [{"id": v.id, "kind": v.kind, "label": v.label, **v.data} for v in g.vertices.values()],
        "edges": [
            {"from": (c if g.direction == "upstream" else v.id), "to": (v.id if g.direction == "upstream" else c),
             "label": label}
            for v in g.vertices.values() for label, c in v.children
        ],
    }
