"""Planning: what a run would do now, without running anything.

``plan_pipeline`` walks the DAG like the runner does and reports, for every
node, ``cached``, ``will run`` (with the reason) or ``may run`` (an input
comes from a node that will run, so its key is not known yet). The helpers
shared with the runner (tracing with the store's file memo, checking
``--rerun`` names, input hashes) live here too.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orchestrator import cache
from orchestrator.context import Context
from orchestrator.dag import DAG, Node, expand_map, input_hash, map_digests
from orchestrator.errors import (
    DatabaseAccessError,
    DatabaseWriteError,
    OrchestratorError,
    UserError,
    did_you_mean,
)
from orchestrator.hashing import skipping_folders
from orchestrator.name_clashes import shared_name_warnings
from orchestrator.self_state import self_state_warnings
from orchestrator.shared_globals import shared_global_warnings
from orchestrator.spelling import CLI, Spelling
from orchestrator.steps_by_name import StepsByName
from orchestrator.task import stored_item
from orchestrator.tracing import SINGLE_OUTPUT, Output
from orchestrator.untracked import untracked_path_warnings

if TYPE_CHECKING:
    from orchestrator.pipeline import Pipeline


@dataclass(frozen=True)
class PlanEntry:
    """One node of a plan: ``cached``, ``will run`` or ``may run``, why, and its key when known."""

    node: str
    status: str  # "cached" | "will run" | "may run"
    reason: str
    key: str | None


@dataclass
class Plan:
    """What a run would do now (``pipeline.plan(...)``, ``orch plan``): one ``PlanEntry`` per node, in order."""

    pipeline: str
    entries: list[PlanEntry]
    # Paths steps use outside their parameters, whose files the keys do not count (``untracked``).
    warnings: list[str] = field(default_factory=list)

    @property
    def steps(self) -> StepsByName[PlanEntry]:
        """The entries by node name, in order, as ``run.steps``: ``plan.steps["fit"].reason``.

        A name the plan has not says which it has (``Did you mean 'fit'?``), as ``run.steps`` does.
        """
        return StepsByName(((e.node, e) for e in self.entries), owner=f"the plan of pipeline {self.pipeline!r}",
                           spelled="plan.steps")

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for e in self.entries:
            out[e.status] = out.get(e.status, 0) + 1
        return out

    def __repr__(self) -> str:
        # A REPL shows what `orch plan` prints: one node per line, its status and why.
        width = max((len(e.node) for e in self.entries), default=0)
        lines = [f"  {e.node:<{width}}  {e.status:<8}  {e.reason if e.reason != e.status else ''}".rstrip()
                 for e in self.entries]
        counts = ", ".join(f"{n} {status}" for status, n in self.counts().items())
        notes = [f"  warning: {w}" for w in self.warnings]
        return "\n".join([f"<plan of pipeline {self.pipeline!r}: {counts}", *lines, *notes]) + ">"


def check_rerun(dag: DAG, rerun: Iterable[str], spelling: Spelling = CLI) -> set[str]:
    """The node names ``--rerun`` forces; an item of a map over a step's output counts before it exists.

    ``--rerun square.map`` forces every item of that map, also of a map over
    a list the body holds (whose items are nodes from the start), and
    ``--rerun square_3`` only that item (items are named like repeated calls:
    ``square``, ``square_2``, ...). A map over a step's output named so (as
    ``orch dag`` lists it) is that map alone: maps over lists the body holds
    of the same step are forced by their items' names.

    Raises:
        UserError: a name that is no node and no map item of this pipeline,
            naming the option as ``spelling`` writes it.
    """
    names = set(rerun)
    # A map node's name is its own: a map over a list the body holds has no node, and `orch dag` lists
    # its items alone (forcing both made --rerun sq.map run sq, sq_2 of range(m) as well).
    maps = {n for n in names if n.endswith(".map") and n not in dag.nodes}
    if maps:
        items = {node.name: node.in_map for node in dag.nodes.values() if node.in_map in maps}
        names |= set(items)
        names -= {m for m in items.values() if m not in dag.nodes}  # no node of its own to force
    unknown = [n for n in names if n not in dag.nodes and _map_of_item(dag, n) is None]
    if unknown:
        raise UserError(
            f"{spelling.rerun_of([unknown[0]])}: pipeline '{dag.pipeline}' has no step '{unknown[0]}'."
            + (_item_names_hint(dag, unknown[0]) or _renamed_hint(dag, unknown[0], spelling)
               or did_you_mean(unknown[0], [*dag.nodes, *_map_names(dag)]))
        )
    return names


def _renamed_hint(dag: DAG, name: str, spelling: Spelling) -> str:
    """Where the function ``name`` is a step under another name (``@step(name="fit_2") def other``)."""
    calls = [n.name for n in dag.nodes.values() if getattr(n.step.fn, "__name__", None) == name]
    if not calls:
        return ""
    named = ", ".join(f"'{c}'" for c in calls[:3]) + (", …" if len(calls) > 3 else "")
    return f" Function '{name}' is the step {named} here (named by @step(name=...) or an alias): {spelling.rerun_of([calls[0]])}."


def _map_names(dag: DAG) -> list[str]:
    """The ``NAME.map`` names ``--rerun`` takes: those of the maps a run expands, and of the static ones."""
    return sorted({n.name if n.is_map else n.in_map for n in dag.nodes.values() if n.is_map or n.in_map})


def _item_names_hint(dag: DAG, name: str) -> str:
    """How a map's items are named, for ``fit_1`` or ``fit_0`` (the first item is ``fit``, then ``fit_2``)."""
    match = re.fullmatch(r"(.+)_0*[01]", name)
    if match is None or match.group(1) not in _map_bases(dag):
        return ""
    base = match.group(1)
    return (f" The items of a map are named like repeated calls: '{base}' for the first, "
            f"then '{base}_2', '{base}_3', …")


def _map_bases(dag: DAG) -> set[str]:
    """``square`` for ``square.map`` and ``square.map_2``: the names a map's items are numbered after."""
    return {name.partition(".map")[0] for name in _map_names(dag)}


def unforced_items(dag: DAG, expanded: dict[str, list[str]], forced: set[str]) -> list[str]:
    """Map items ``--rerun`` named that no map made (``square_7`` of 3 items).

    A name counts once every map whose items could bear it has expanded: two
    maps of one step number their items in one sequence.
    """
    out = []
    for name in (n for n in forced if n not in dag.nodes):  # forced items that exist: the common case
        base = _item_base(name)
        if base is None:
            continue
        maps = [n.name for n in dag.nodes.values() if n.is_map and n.name.partition(".map")[0] == base]
        if maps and all(m in expanded for m in maps):
            out.append(name)
    return sorted(out, key=_item_number)


def unforced_message(dag: DAG, expanded: dict[str, list[str]], names: list[str], spelling: Spelling = CLI) -> str:
    """``--rerun square_7: no item of map 'square.map' has that name (its 3 items are square … square_3)``."""
    base = _item_base(names[0])
    maps = [n.name for n in dag.nodes.values() if n.is_map and n.name.partition(".map")[0] == base]
    items = sorted((item for m in maps for item in expanded[m]), key=lambda n: _item_number(n) if n != base else 1)
    which = f"map '{maps[0]}'" if len(maps) == 1 else "maps " + ", ".join(f"'{m}'" for m in maps)
    made = "it made no items" if not items else f"its item is {items[0]}" if len(items) == 1 else \
        f"{'its' if len(maps) == 1 else 'their'} {len(items)} items are {items[0]} … {items[-1]}"
    return f"{spelling.rerun_of(names)}: no item of {which} has that name ({made})"


def _item_base(name: str) -> str | None:
    """``square`` for ``square_3``: the step a numbered item name would belong to (numbers start at 2)."""
    match = re.fullmatch(r"(.+?)_([2-9]|[1-9]\d+)", name)
    return match.group(1) if match else None


def _item_number(name: str) -> int:
    return int(name.rpartition("_")[2])


def build(pipeline: Pipeline, params: dict[str, Any], ctx: Context) -> DAG:
    """Trace the pipeline, hashing file inputs through the store's memo (a folder input without the store).

    The memo only spares reading unchanged files again: a store that cannot take the new entries (a
    teammate's, a read-only mount, a full disk) is planned without keeping them, as `orch plan` is said
    to work on such a store; a run then stops at its first record, naming the store.
    """
    memo = ctx.lineage.load_file_memo()
    before = dict(memo)
    with skipping_folders(ctx.own_folders()):
        dag = pipeline.build(file_memo=memo, **params)
    with contextlib.suppress(DatabaseAccessError, DatabaseWriteError):
        ctx.lineage.save_file_memo({k: v for k, v in memo.items() if before.get(k) != v})
    return dag


def _map_of_item(dag: DAG, name: str) -> Node | None:
    """The map node whose items would include ``name`` (``square_2`` of ``square.map``), if any."""
    # Items are named like repeated calls: ``square``, ``square_2``, ... (never ``square_1``).
    base = _item_base(name) or name
    for candidate in (f"{name}.map", f"{base}.map"):
        node = dag.nodes.get(candidate)
        if node is not None and node.is_map:
            return node
    return None


def forced_items(map_node: Node, items: Iterable[str], forced: set[str]) -> set[str]:
    """Which of a map's new item nodes ``--rerun`` forces: all for the map's own name, else those named."""
    return set(items) if map_node.name in forced else {name for name in items if name in forced}


def plan_pipeline(pipeline: Pipeline, params: dict[str, Any], *, store: str | None = None,
                  metadata: str | None = None,
                  rerun: tuple[str, ...] = (), no_cache: bool = False, spelling: Spelling = CLI,
                  short: bool = False) -> Plan:
    """For each node: cached, will run, or may run (an input comes from a node that runs), and why.

    ``spelling``: how the user wrote the options (``--rerun`` or ``rerun=``), for messages and reasons.
    ``short``: a command that ends with the plan (``orch plan``), which may then read a store on a
    full disk (``Context.open``).
    """
    pipeline.resolve_params(params, spelling)  # a missing parameter is named as the user passes it
    ctx = Context.open(store, metadata, spelling=spelling, short=short)
    dag = build(pipeline, params, ctx)
    forced = check_rerun(dag, rerun, spelling)
    history = cache.History(ctx.lineage, dag.pipeline)
    digests: dict[tuple[str, str], str] = {}
    state: dict[str, str] = {}
    entries: list[PlanEntry] = []
    map_children: dict[str, list[str]] = {}  # an expanded map -> its item nodes

    def plan_node(node: Node) -> None:
        running_up = [u for u in node.upstream if state[u] != "cached"]
        if running_up:
            # Its inputs are not known yet, but a change of its own (code, parameters...) makes it run.
            sure = cache.forced_reason(node.name in forced, no_cache, spelling) or cache.own_change(node, history)
            state[node.name] = "will run" if sure else "may run"
            entries.append(PlanEntry(node.name, state[node.name],
                                     sure or f"input from step '{running_up[0]}', which {state[running_up[0]]}",
                                     None))
            return
        inputs = input_hashes(node, digests)
        key = cache.node_key(node, inputs)
        force = cache.forced_reason(node.name in forced, no_cache, spelling)
        decision = cache.decide(node, key, inputs, ctx.lineage, ctx.store, history, force=force)
        if decision.hit:
            assert decision.outputs is not None
            for o in decision.outputs:
                digests[(node.name, o.name)] = o.digest
            state[node.name] = "cached"
            entries.append(PlanEntry(node.name, "cached", "cached", key))
        else:
            state[node.name] = "will run"
            entries.append(PlanEntry(node.name, "will run", decision.reason + _missing_files(node, decision.reason),
                                     key))

    for node in list(dag.nodes.values()):
        if not node.is_map:
            plan_node(node)
            continue
        children = _expand_known_map(dag, node, state, digests, ctx, map_children)
        if children is None:
            state[node.name] = "may run"
            entries.append(PlanEntry(node.name, "may run",
                                     f"one step per item of step '{node.map_over.node}', made when it is done",  # type: ignore[union-attr]
                                     None))
            continue
        map_children[node.name] = [c.name for c in children]
        forced |= forced_items(node, map_children[node.name], forced)
        for child in children:
            dag.nodes[child.name] = child  # so that a later map of the same step names its items after these
            plan_node(child)
        # Like a run: the items are the entries, and the map's output is the list of theirs.
        if all(state[c.name] == "cached" for c in children):
            state[node.name] = "cached"
            map_digests(node, [c.name for c in children], digests)
        else:
            state[node.name] = "may run"
    unforced = unforced_items(dag, map_children, forced)
    if unforced:
        raise UserError(unforced_message(dag, map_children, unforced, spelling) + ".")
    return Plan(dag.pipeline, entries, untracked_path_warnings(dag) + self_state_warnings(dag)
                + shared_global_warnings(dag) + shared_name_warnings(dag))


def _missing_files(node: Node, reason: str) -> str:
    """A note naming path parameters with nothing behind them (a typo, or an output to be made).

    A path the reason already names (``file `path` does not exist (/abs/path)``) is not named twice.
    """
    missing = [f"{arg}: no file at {path}" for arg, path in node.missing_paths.items() if f"({path})" not in reason]
    return f" ({'; '.join(missing)})" if missing else ""


def _expand_known_map(dag: DAG, node: Node, state: dict[str, str], digests: dict[tuple[str, str], str],
                      ctx: Context, map_children: dict[str, list[str]]) -> list[Node] | None:
    """The item nodes of a map whose list is already in the store (its producer is cached), else None.

    Loads that one list artifact (verified like any load), or, for a map over
    another map, each of that map's items' outputs; a list that cannot be
    loaded or is not a list leaves the map to be expanded by the run.
    """
    if any(state[u] != "cached" for u in node.upstream):
        return None
    source = node.map_over
    assert source is not None
    try:
        known: dict[int, tuple[Any, str]] = {}
        if source.node in map_children:  # a map over a map: its list is made of its items' outputs
            names = dag.nodes[source.node].outputs if source.name == SINGLE_OUTPUT else (source.name,)
            if len(names) == 1:  # each item by its digest, one stored as a file unread (as the run does)
                items: Any = []
                for child in map_children[source.node]:
                    digest = digests[(child, names[0])]
                    item = stored_item(ctx.artifact_info(digest), ctx.store.get)
                    items.append(item)
                    known[id(item)] = (item, digest)
            else:
                items = [tuple(ctx.load(digests[(c, name)]) for name in names) for c in map_children[source.node]]
        else:
            items = ctx.load(digests[(source.node, source.name)])
        if not isinstance(items, (list, tuple)):
            return None
        return expand_map(dag, node, items, known)
    except (OrchestratorError, KeyError):
        return None


def input_hashes(node: Node, digests: dict[tuple[str, str], str]) -> dict[str, str]:
    """The digest of each input argument of ``node`` (a structure of outputs hashes as one)."""
    hashes = {}
    for arg, template in node.inputs.items():
        if type(template) is Output:  # the common case, once per node per run: no closure, no call
            hashes[arg] = digests[(template._node, template._name)]  # the slots: no property calls
        else:
            hashes[arg] = input_hash(template, lambda o: digests[(o._node, o._name)])
    return hashes
