"""One pipeline's DAG: nodes from a trace, their edges in a networkx graph, static keys.

``build_dag`` turns the calls recorded while a pipeline body ran into
``Node`` objects: the step, its constant arguments (hashed now, once) and its
inputs (templates holding ``Output`` placeholders, resolved at run time). It
collects every problem it finds before raising, naming the step and its
``file:line``. The static part of each node's cache key (code fingerprint,
version, constant parameters) is computed here; the digests of inputs are
added by ``cache`` when upstream nodes are done. This module never touches
the store or the metadata database.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import types
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from datetime import date, time
from enum import Enum
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

from orchestrator.containers import like
from orchestrator.errors import PipelineDefinitionError, UnhashableValueError, UserError
from orchestrator.fingerprint import CodeFingerprint, fingerprint, self_digest
from orchestrator.hashing import combine, hash_file, hash_value, paths_as
from orchestrator.project import find_project
from orchestrator.step import Step
from orchestrator.text_paths import paths_in_text
from orchestrator.tracing import MAP_ITEM, SINGLE_OUTPUT, Call, Output, iter_outputs
from orchestrator.user_code import object_kind

if TYPE_CHECKING:
    import networkx as nx

KEY_FORMAT = "orchestrator-key-1"


@dataclass(frozen=True)
class _FileRef:
    """Stands in for a path in a hashed template: the path as the step is given it, and the file's content digest.

    Both: a step may use the path itself (``path.name``, the date in a partition
    folder ``date=2024-01-01/``), so a copy of a file is another input, whose
    result is not the original's.
    """

    path: str  # ``path_in_key``
    content: str


@dataclass(frozen=True)
class _InputRef:
    """Stands in for an upstream output in a hashed template: its digest."""

    digest: str


@dataclass
class Node:
    """One call of a step in a pipeline."""

    name: str
    step: Step
    site: str
    arguments: dict[str, Any]
    params: dict[str, str]
    inputs: dict[str, Any]
    upstream: tuple[str, ...]
    outputs: tuple[str, ...]
    code: CodeFingerprint
    static_key: str = ""
    file_params: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (path, content digest)
    missing_paths: dict[str, str] = field(default_factory=dict)  # name -> absolute path with no file behind it
    # name -> the absolute paths a list, tuple or dict argument holds, in order, with or without a file
    # behind them: a changed one is named in a reason, which the argument's one hash cannot say
    path_lists: dict[str, list[str]] = field(default_factory=dict)
    # absolute path of a folder input -> {relative path: content digest (its start)} of its files
    # (up to LISTED_FILES of them), so that a reason can name the files of the folder that changed
    folder_files: dict[str, dict[str, str]] = field(default_factory=dict)
    shown: dict[str, Any] = field(default_factory=dict)  # parameter values for people (lineage), not keys
    map_over: Output | None = None  # set on a map node: it becomes one node per item at run time
    map_param: str = ""
    item_of: Output | None = None  # set on an item of a map over a step's output: the list it came from
    item_index: int = -1  # set with item_of: the item's place in that list (which item of a map's results it read)
    in_map: str = ""  # set on an item of a map over a list the body holds: that map's name

    @property
    def is_map(self) -> bool:
        return self.map_over is not None

    @property
    def label(self) -> str:
        return f"step '{self.name}' ({self.site})"

    def __repr__(self) -> str:
        # What a notebook shows: not the fingerprint, digests and arguments the dataclass would print.
        step = "" if self.step.name == self.name else f" of step '{self.step.name}'"
        after = f", after {', '.join(self.upstream)}" if self.upstream else ""
        return f"<node '{self.name}'{step} ({self.site}){after}>"


@dataclass
class DAG:
    """A traced pipeline: nodes in call order (a topological order) and the graph."""

    pipeline: str
    params: dict[str, Any]
    nodes: dict[str, Node]
    result: Any
    _graph: nx.DiGraph | None = None
    # step or alias -> the number of the last item name a map expansion gave it (see ``expand_map``)
    _numbered: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    @property
    def graph(self) -> nx.DiGraph:
        """The networkx graph: an edge ``a -> b`` labelled with b's input names."""
        if self._graph is None:
            import networkx as nx

            g = nx.DiGraph()
            for node in self.nodes.values():
                g.add_node(node.name, step=node.step.name, site=node.site)
                for up in node.upstream:
                    names = [k for k, t in node.inputs.items() if any(o.node == up for o in iter_outputs(t))]
                    g.add_edge(up, node.name, inputs=names)
            self._graph = g
        return self._graph

    def __repr__(self) -> str:
        # `p.build(n=4)` in a notebook: which nodes, not a dump of every fingerprint.
        names = list(self.nodes)
        shown = ", ".join(names[:12]) + (f", … ({len(names) - 12} more)" if len(names) > 12 else "")
        params = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"<dag of pipeline '{self.pipeline}'({params}): {len(names)} node{'s' * (len(names) != 1)}: {shown}>"

    def downstream(self, names: set[str]) -> set[str]:
        """Every node that depends, directly or not, on one of ``names`` (excluded)."""
        out: set[str] = set()
        for node in self.nodes.values():
            if any(u in names or u in out for u in node.upstream):
                out.add(node.name)
        return out

    def result_outputs(self) -> list[Output]:
        return list(iter_outputs(self.result))


def build_dag(
    pipeline: str,
    params: dict[str, Any],
    calls: list[Call],
    result: Any,
    problems: list[str],
    *,
    file_memo: MutableMapping[str, str] | None = None,
    site: str = "",
    known_digests: dict[int, tuple[Any, str]] | None = None,
) -> DAG:
    """Build and validate the DAG of one traced pipeline body (``site``: where the pipeline is defined).

    ``known_digests``: argument values already hashed while the body ran (see
    ``Trace.copy_digests``), by id, each beside its digest, so that a value given to
    many calls is hashed once.

    Raises:
        PipelineDefinitionError: with every problem found, one per line.
    """
    problems = list(problems)
    fingerprints: dict[int, CodeFingerprint] = {}
    static_keys: dict[tuple[int, tuple[tuple[str, str], ...]], str] = {}
    nodes: dict[str, Node] = {}
    for call in calls:
        node = _make_node(call, nodes, fingerprints, static_keys, problems, file_memo, known_digests or {})
        if node is not None:
            nodes[node.name] = node
    for out in iter_outputs(result):
        if out.node not in nodes and not problems:
            problems.append(f"pipeline '{pipeline}' returns the output of unknown step '{out.node}'.")
    plain = _first_plain_value(result, "")
    if plain is not None:
        where, value = plain
        shown = _short_repr(value)
        if isinstance(value, Step):
            # `return evaluate` (the step, not a call of it): "a plain value" read as a mistake in the step
            problems.append(
                f"pipeline '{pipeline}'{f' ({site})' if site else ''} returns step '{value.name}' itself"
                f"{f' as {where}' if where else ''}, not a call of it: write {value.name}(...) to return its output.")
        else:
            problems.append(
                f"pipeline '{pipeline}'{f' ({site})' if site else ''} returns a plain value, not a step output: "
                f"{f'{where} is ' if where else ''}{shown}. A pipeline returns step outputs (one, or a "
                "tuple/list/dict of them) or nothing: pass the value to a step, or leave it out."
            )
    if problems:
        raise PipelineDefinitionError(problems)
    return DAG(pipeline=pipeline, params=params, nodes=nodes, result=result)


def _known_digest(value: Any, known: dict[int, tuple[Any, str]]) -> str | None:
    """``value``'s digest when the body's trace already took it (the same object), else None."""
    held = known.get(id(value))
    return held[1] if held is not None and held[0] is value else None


def _hidden_output(value: Any) -> str | None:
    """Why a placeholder inside ``value`` would not reach the step, or None (the common case).

    Placeholders are found as arguments and inside lists, tuples and dicts
    (as values). One in a set (``{a, b}``), in a dataclass
    (``Config(model=fit(...))``) or as a dict's key (``{raw: 1}``) would be
    hashed and passed as the placeholder itself, and the step would fail on
    it, or quietly use it, not even waiting for its producer. Only those kinds
    are looked into, one level deep, so a plain value costs one type check.
    """
    kind = type(value)
    if isinstance(value, dict):
        found = next((k for k in value if type(k) is Output), None)
        if found is None:
            return None
        return ("{label}: argument '{arg}' holds the output of step '" + found._node + "' as a key of a dict, "
                "where it would stay a placeholder: a step's output reaches a step as an argument, or inside a "
                "list, tuple or dict (as a value). Pass it that way and build the dict inside the step.")
    if kind is set or kind is frozenset:
        found, what = next((v for v in value if type(v) is Output), None), f"a {kind.__name__}"
    elif is_dataclass(value) and not isinstance(value, type):
        found = next((o for f in fields(value) for o in iter_outputs(getattr(value, f.name, None))), None)
        what = f"dataclass {kind.__name__}"
    else:
        return None
    if found is None:
        return None
    return ("{label}: argument '{arg}' holds the output of step '" + found.node + f"' inside {what}, where "
            "it would stay a placeholder: a step's output reaches a step as an argument, or inside a list, "
            f"tuple or dict. Pass it that way and build {what} inside the step.")


def _make_node(
    call: Call,
    nodes: dict[str, Node],
    fingerprints: dict[int, CodeFingerprint],
    static_keys: dict[tuple[int, tuple[tuple[str, str], ...]], str],
    problems: list[str],
    file_memo: MutableMapping[str, str] | None,
    known_digests: dict[int, tuple[Any, str]],
    stored_arg: str | None = None,
) -> Node | None:
    step = call.step
    label = f"step '{call.name}' ({call.site})"
    code = fingerprints.get(id(step))
    if code is None:
        try:
            code = fingerprint(step.fn)
        except UnhashableValueError as exc:
            # Said of the step, not of each call: the items of a map (forty folds) share one line.
            problems.append(f"step '{step.name}' ({call.site}): {exc}")
            return None
        fingerprints[id(step)] = code
    params: dict[str, str] = {}
    inputs: dict[str, Any] = {}
    file_params: dict[str, tuple[str, str]] = {}
    missing_paths: dict[str, str] = {}
    path_lists: dict[str, list[str]] = {}
    folder_files: dict[str, dict[str, str]] = {}
    upstream: list[str] = []
    map_param = ""
    mapped = call.map_over is not None
    for arg, value in call.arguments.items():
        if value is MAP_ITEM or (mapped and type(value) is tuple and value and value[0] is MAP_ITEM):
            map_param = arg  # in a tuple: a map of a ``*args`` step, whose item is args[0]
            continue
        # An item of a map over a map's result was loaded from the store: no placeholder is in it, and
        # looking through a list of 50,000 numbers for one took a third of a cached run.
        from_store = arg == stored_arg
        hidden = None if from_store else _hidden_output(value)
        if hidden is not None:
            problems.append(hidden.format(label=label, arg=arg))
            continue
        outs = [] if from_store else [value] if type(value) is Output else list(iter_outputs(value))
        if outs:
            inputs[arg] = value
            for out in outs:
                producer = out._node  # not ``.node``: that property is for users, once the body has run
                if producer not in nodes:
                    if not problems:  # else the producer's own problem is said, which is the one to fix
                        problems.append(f"{label}: input '{arg}' comes from step '{producer}', which failed to build.")
                elif producer not in upstream:
                    upstream.append(producer)
            continue
        try:
            if arg in step.path_params:
                # Text for `path: Path` counts by its file, and so does text in `dict[str, Path]`, `list[Path]`.
                value = PurePath(value) if isinstance(value, str) else \
                    paths_in_text(step, arg, value) if isinstance(value, (list, tuple, dict)) else value
            listed: list[str] = []
            template = _with_file_refs(value, file_memo, file_params, arg, listed, folder_files)
            if isinstance(value, PurePath) and arg not in file_params:
                missing_paths[arg] = os.path.abspath(value)
            elif listed and not isinstance(value, PurePath):
                path_lists[arg] = listed
            # The object a step of a class body runs on counts as far as the step reaches it.
            params[arg] = (template is value and (self_digest(step.fn, arg, value)
                                                  or _known_digest(value, known_digests))) or hash_value(template)
        except UnhashableValueError as exc:
            problems.append(f"{label}: argument '{arg}' cannot be hashed ({exc}). {_unhashable_fix(value)}")
        except OSError as exc:
            problems.append(f"{label}: cannot read input file for argument '{arg}': {exc}")
    if call.map_over is not None:
        if call.map_over.node not in nodes:
            if not problems:
                problems.append(f"{label}: maps over the output of step '{call.map_over.node}', which failed to build.")
        elif call.map_over.node not in upstream:
            upstream.append(call.map_over.node)
    # Calls of one step with the same parameters (a chain, a loop) share their static key.
    memo_key = (id(step), tuple(sorted(params.items())))
    static_key = static_keys.get(memo_key)
    if static_key is None:
        static_key = static_keys[memo_key] = _static_key(step, code, params)
    return Node(
        name=call.name, step=step, site=call.site, arguments=call.arguments, params=params,
        inputs=inputs, upstream=tuple(upstream), outputs=step.output_names, code=code,
        static_key=static_key, file_params=file_params, missing_paths=missing_paths, path_lists=path_lists,
        folder_files=folder_files,
        shown={k: _shown(call.arguments[k]) for k in params},
        map_over=call.map_over, map_param=map_param, in_map=call.in_map,
    )


def _unhashable_fix(value: Any) -> str:
    """What to pass instead of an argument that cannot be hashed (so cannot be pickled or stored either)."""
    if isinstance(value, (types.GeneratorType, Iterator)) and not hasattr(value, "read"):
        return "Pass a list of its items (`list(...)`): a generator or iterator is used up once read."
    return ("Pass data that can be pickled: for a connection, client, lock or open file, pass what it is "
            "made from (a path, a URL, settings) and open it inside the step.")


def _static_key(step: Step, code: CodeFingerprint, params: dict[str, str]) -> str:
    """The part of a node's key known when the DAG is built: code, version, outputs, parameters."""
    return combine(KEY_FORMAT, code.digest, step.version or "", ",".join(step.output_names),
                   *(f"{k}={v}" for k, v in sorted(params.items())))


def rekey(node: Node, file_memo: MutableMapping[str, str] | None = None) -> Node | None:
    """``node`` as the next build will see it, if it made files its path parameters named.

    A step given a path to write (``out: Path = Path("report.csv")``) was keyed
    with "no file there"; the next build finds the file and hashes it. Storing
    the result under that key too keeps the next run cached, while a deleted
    or edited file still makes the step run again. Only files that did not
    exist are taken: a file that existed may have been changed by someone else
    while the step read it. ``file_memo`` gets the new files' digests, so the
    next build does not read them again. None when no such file appeared.
    """
    made = {arg: path for arg, path in node.missing_paths.items() if os.path.exists(path)}
    if not made:
        return None
    params, file_params = dict(node.params), dict(node.file_params)
    for arg in made:
        given = node.arguments[arg]  # as given, as the next build keys it (`../out/report.csv`, not absolute)
        try:
            params[arg] = hash_value(_with_file_refs(PurePath(given), file_memo, file_params, arg))
        except OSError:
            return None  # unreadable now: the next run will say so
    missing = {arg: path for arg, path in node.missing_paths.items() if arg not in made}
    return replace(node, params=params, file_params=file_params, missing_paths=missing,
                   static_key=_static_key(node.step, node.code, params))


def changed_files(node: Node, file_memo: MutableMapping[str, str] | None = None) -> list[str]:
    """The paths of ``node``'s file inputs whose content is not what its key was built with.

    A file hashed when the DAG was built may be written before the step reads
    it (by an earlier step of the run), and a path with no file behind it may
    have got one. Files left as they were cost a
    ``stat`` each: ``file_memo`` knows their digests.
    """
    changed = []
    for path, digest in node.file_params.values():
        try:
            now = hash_file(path, file_memo)
        except OSError:
            now = ""
        if now != digest:
            changed.append(path)
    return changed + [path for path in node.missing_paths.values() if os.path.exists(path)]


def rebuilt(node: Node, nodes: dict[str, Node], file_memo: MutableMapping[str, str] | None = None) -> Node | None:
    """``node`` keyed by its files as they are now (see ``changed_files``); None if it cannot be hashed now."""
    outputs = tuple(Output(node.name, o) for o in node.outputs)
    call = Call(name=node.name, step=node.step, arguments=node.arguments, site=node.site, outputs=outputs,
                in_map=node.in_map)
    problems: list[str] = []
    made = _make_node(call, nodes, {id(node.step): node.code}, {}, problems, file_memo, {})
    if made is None or problems:
        return None
    return replace(made, item_of=node.item_of, item_index=node.item_index, map_param=node.map_param)


def expand_map(dag: DAG, node: Node, items: list[Any] | tuple[Any, ...],
               known_digests: dict[int, tuple[Any, str]] | None = None) -> list[Node]:
    """One node per item for a map node whose items are now known, named like repeated calls.

    Names continue the step's own sequence (``square``, ``square_2``, …),
    skipping names the pipeline already uses. The caller adds the nodes to
    ``dag.nodes``; the next map of the same step then counts on from the last
    name this one gave, rather than from ``square`` again (the 2,000th map of a
    step tried the 6,000 names its earlier maps took, one by one).

    ``known_digests`` holds the digest of each item already known (a map over a
    map's result: each item is an output), by ``id``: it is not hashed again.

    Raises:
        PipelineDefinitionError: an item that cannot be hashed.
    """
    problems: list[str] = []
    expanded: list[Node] = []
    fingerprints = {id(node.step): node.code}
    static_keys: dict[tuple[int, tuple[tuple[str, str], ...]], str] = {}
    base = node.name.partition(".map")[0]  # the step's name, or the alias it was mapped under
    n = dag._numbered.get(base, 0)
    if n and (base if n == 1 else f"{base}_{n}") not in dag.nodes:
        n = 0  # that expansion's nodes were not kept: every name from the first may be free
    taken: set[str] = set()  # names given here, not in dag.nodes yet
    for index, item in enumerate(items):
        while True:
            n += 1
            name = base if n == 1 else f"{base}_{n}"
            if name not in dag.nodes and name not in taken:
                break
        taken.add(name)
        made = _make_node(_item_call(node, name, item), dag.nodes, fingerprints, static_keys, problems, None,
                          known_digests or {}, node.map_param if known_digests else None)
        if made is not None:
            made.item_of, made.item_index, made.map_param = node.map_over, index, node.map_param  # for its lineage
            expanded.append(made)
    if problems:
        raise PipelineDefinitionError(problems)
    if expanded:
        dag._numbered[base] = n
    return expanded


def filled_item(dag: DAG, node: Node, pending: Node, item: Any,
                known_digests: dict[int, tuple[Any, str]]) -> Node:
    """``pending``, an item of map ``node`` made before its item was known, made again with ``item``.

    An item of a map over a map's result is made when that map expands, its
    item a placeholder of the output it will be (so that it waits for that
    item's node alone); it is keyed by the item's value, as any map item is, so
    its node is made again once that output is done. It keeps its upstream: it
    is counted among that output's readers.

    Raises:
        PipelineDefinitionError: the item cannot be hashed.
    """
    problems: list[str] = []
    made = _make_node(_item_call(node, pending.name, item), dag.nodes, {id(node.step): node.code}, {}, problems,
                      None, known_digests, node.map_param if known_digests else None)
    if made is None or problems:
        raise PipelineDefinitionError(problems)
    return replace(made, upstream=pending.upstream, item_of=pending.item_of, item_index=pending.item_index,
                   map_param=node.map_param)


def _item_call(node: Node, name: str, item: Any) -> Call:
    """The call of map ``node``'s step on one item, as node ``name``."""
    template = node.arguments[node.map_param]
    arguments = {**node.arguments, node.map_param: item if template is MAP_ITEM else (item, *template[1:])}
    outputs = tuple(Output(name, o) for o in node.outputs)
    return Call(name=name, step=node.step, arguments=arguments, site=node.site, outputs=outputs)


def map_digests(node: Node, children: list[str], digests: dict[tuple[str, str], str]) -> None:
    """Record the digests of a map's result, once every item's node has its outputs.

    Each output of the step gets the list of its items' digests. The map's
    placeholder (``Output(MAP, "out")``) stands for the list of its items' whole
    results, so for a step with several outputs (whose items are tuples) it
    gets its own digest too: a step that takes the list, or a map over it, is
    keyed by it.
    """
    for out in node.outputs:
        digests[(node.name, out)] = combine("map", *(digests[(c, out)] for c in children))
    if node.outputs != (SINGLE_OUTPUT,):
        digests[(node.name, SINGLE_OUTPUT)] = combine(
            "map", *(combine(*(digests[(c, out)] for out in node.outputs)) for c in children))


def _shown(value: Any) -> Any:
    """A short JSON-able rendering of a parameter value, for lineage displays.

    An Enum member, a date or a time reads as a user writes it (``Color.BLUE``,
    ``2024-05-06``), not as its repr (``<Color.BLUE: 'blue'>``,
    ``datetime.date(2024, 5, 6)``), which a reason would repeat in quotes.
    """
    if isinstance(value, Enum):
        return f"{type(value).__name__}.{value.name}"
    if isinstance(value, (date, time)):
        return value.isoformat()
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return value if len(value) <= 200 else value[:197] + "..."
    if isinstance(value, PurePath):
        return os.fspath(value)
    shape = getattr(value, "shape", None)
    if isinstance(shape, tuple) and type(value).__module__.partition(".")[0] in ("pandas", "pyarrow", "polars"):
        # A frame's repr lays out its rows (2 ms for three): a map over 20,000 small frames spent a
        # quarter of a cached run on labels. Its shape says which one it is as well as 200 characters do.
        return f"<{type(value).__name__} {' × '.join(map(str, shape))}>"
    if isinstance(value, (list, tuple, dict)) and _plain_json(value, 3):
        text = json.dumps(value)
        if len(text) <= 200:
            return json.loads(text)  # lists and dicts stay structured in `--json` output
    if isinstance(value, (list, tuple, dict)) and len(value) > 50:
        # Its first items: the repr of a list of 50,000 floats, to keep 200 characters of it, took a
        # sixth of a cached run of a map over 300 of them.
        head = dict(list(value.items())[:10]) if isinstance(value, dict) else value[:10]
        try:
            text = without_address(repr(head))[:150]
        except Exception:  # noqa: BLE001 - as below
            text = f"<{type(value).__qualname__}>"
        return f"{text} … ({len(value):,} {'entries' if isinstance(value, dict) else 'items'})"
    try:
        text = without_address(repr(value))
    except Exception:  # noqa: BLE001 - a value that cannot show itself is still a valid argument
        text = f"<{type(value).__qualname__}>"  # e.g. a dataclass with a field its repr lacks
    return text if len(text) <= 200 else text[:197] + "..."


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+(?=>)")


def without_address(text: str) -> str:
    """``<function f at 0x7f..>`` as ``<function f>``: the same in every process."""
    return _ADDRESS.sub("", text)



def _plain_json(value: Any, depth: int) -> bool:
    """Whether ``value`` is made of JSON scalars, lists and string-keyed dicts only (and not too deep)."""
    if value is None or isinstance(value, (bool, int, str)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if depth <= 0:
        return False
    if isinstance(value, (list, tuple)):
        return len(value) <= 50 and all(_plain_json(v, depth - 1) for v in value)
    if isinstance(value, dict):
        return len(value) <= 50 and all(isinstance(k, str) and _plain_json(v, depth - 1) for k, v in value.items())
    return False


# A folder input of up to this many files has them listed in its key's parts, with the first
# LISTED_DIGEST characters of their digests (enough to tell an edit; the key has the full digest of
# the folder), so that a reason names the files that changed. Every run records a node's parts, so
# a larger folder is named as a whole: its listing would grow lineage by its size on every run.
LISTED_FILES = 200
LISTED_DIGEST = 16


def _with_file_refs(value: Any, memo: MutableMapping[str, str] | None,
                    seen: dict[str, tuple[str, str]], arg: str, listed: list[str] | None = None,
                    folders: dict[str, dict[str, str]] | None = None) -> Any:
    """Replace every path in ``value`` by its content digest (missing paths by their text).

    ``listed`` gets every path's absolute form, in order, whether a file is there or not;
    ``folders`` each folder's files with their digests (see ``Node.folder_files``).
    """
    if type(value) in _PLAIN:
        return value  # the common case: a number or a text holds no path
    if isinstance(value, PurePath):
        path = os.fspath(value)
        if listed is not None:
            listed.append(os.path.abspath(path))
        if os.path.exists(path):
            files: list[tuple[str, str]] = []
            content = hash_file(path, memo, files)
            if folders is not None and os.path.isdir(path) and len(files) <= LISTED_FILES:
                folders[os.path.abspath(path)] = {rel: digest[:LISTED_DIGEST] for rel, digest in files}
            seen[arg if arg not in seen else f"{arg}[{len(seen)}]"] = (os.path.abspath(path), content)
            return _FileRef(path_in_key(value), content)
        return ("missing-path", path_in_key(value))
    if isinstance(value, (list, tuple)) and any(_may_hold_path(v) for v in value):
        return type(value)(_with_file_refs(v, memo, seen, arg, listed, folders) for v in value) \
            if isinstance(value, list) else tuple(_with_file_refs(v, memo, seen, arg, listed, folders) for v in value)
    if hasattr(type(value), "__dataclass_fields__") and not isinstance(value, type) and _holds_path(value, 0):
        # A config object's path fields are file inputs too (`cfg.data.read_text()`): by their
        # content as well as by the object's fields, so editing the file re-runs the step.
        files = [(f.name, _with_file_refs(getattr(value, f.name, None), memo, seen, arg, listed, folders))
                 for f in fields(value) if _holds_path(getattr(value, f.name, None), 1)]
        with paths_as(path_in_key):  # its path fields as the files above are keyed, not where the project is
            return ("dataclass-files", hash_value(value), files)
    held = _held_values(value)
    if held is not None and _holds_path(value, 0):
        # A partial, a function with a closure, an instance of a class of the user's, attrs or
        # pydantic, given as a parameter: its paths are file inputs as a dataclass's are.
        files = [(name, _with_file_refs(item, memo, seen, arg, listed, folders))
                 for name, item in held if _holds_path(item, 1)]
        with paths_as(path_in_key):
            return ("object-files", hash_value(value), files)
    if isinstance(value, dict) and any(_may_hold_path(v) for v in value.values()):
        # In the order of the keys, so that the paths are listed alike however the dict was built.
        return {k: _with_file_refs(v, memo, seen, arg, listed, folders)
                for k, v in sorted(value.items(), key=_key_text)}
    return value


def path_in_key(path: PurePath) -> str:
    """The text a key holds for a path parameter: the same for the same file in any checkout of a project.

    A path inside the project relative to the project's root: the folder of
    the pyproject.toml whose ``[tool.orchestrator]`` table gives the store
    that every folder of the project shares, else the working folder. So
    ``data/raw.csv`` from the root, ``../data/raw.csv`` from ``notebooks/``
    and a default ``Path(__file__).parent / "data/raw.csv"`` are one key. A
    path outside it as given: a relative one (``../shared/x.csv``) as text, an
    absolute one as it is. POSIX form, so that a key is the same on every
    machine. Never reads the file: a cached run's key costs no more than it did.
    """
    folder = _key_folder()
    absolute = os.path.abspath(path)
    inside = _below(absolute, folder)
    if inside is None and path.is_absolute():
        # Named through a symlink (a home folder that is one) into the folder, which getcwd() names
        # resolved: the folder holding it resolved, not the file itself, which may link anywhere.
        head, name = os.path.split(absolute)
        inside = _below(os.path.join(os.path.realpath(head), name), folder)
    return path.as_posix() if inside is None else PurePath(inside).as_posix()


_KEY_FOLDERS: dict[str, str] = {}  # working folder -> the folder path_in_key makes paths relative to


def _key_folder() -> str:
    """The project root of the working folder (``project.find_project``), else the working folder itself.

    Looked up once per working folder in a process: it reads each pyproject.toml up to the file
    system's root, and a path parameter is keyed at every build.
    """
    here = os.getcwd()
    folder = _KEY_FOLDERS.get(here)
    if folder is None:
        try:
            project = find_project(Path(here))
        except UserError:  # a broken table: the store cannot be found either, and that says so
            project = None
        folder = os.fspath(project.folder) if project is not None else here
        if len(_KEY_FOLDERS) > 64:
            _KEY_FOLDERS.clear()
        _KEY_FOLDERS[here] = folder
    return folder


def _below(text: str, folder: str) -> str | None:
    """``text`` relative to ``folder`` when it lies inside it (``.`` for the folder itself), else None.

    By its text: ``/proj/../x`` is ``../x`` from ``/proj``, which names the same file.
    """
    if text == folder:
        return "."
    prefix = folder if folder.endswith(os.sep) else folder + os.sep
    return text[len(prefix):] if text.startswith(prefix) else None


def _may_hold_path(value: Any) -> bool:
    if type(value) in _PLAIN:
        return False  # asked of every element of a list parameter: numbers and text at one lookup
    return isinstance(value, (PurePath, list, tuple, dict)) or (is_dataclass(value) and not isinstance(value, type)) \
        or _held_values(value) is not None


_PLAIN = frozenset({int, float, str, bytes, bool, type(None), complex})


_USER_CLASSES: dict[type, bool] = {}  # a class's kind is asked for each object of a list: once per class


def _is_user_class(cls: type) -> bool:
    try:
        kind = _USER_CLASSES.get(cls)
    except TypeError:  # a metaclass that makes its classes unhashable
        return object_kind(cls)[0] == "user"
    if kind is None:
        if len(_USER_CLASSES) > 256:
            _USER_CLASSES.clear()
        kind = _USER_CLASSES[cls] = object_kind(cls)[0] == "user"
    return kind


def _held_values(value: Any) -> list[tuple[str, Any]] | None:
    """The values a parameter holds by name, for the kinds other than containers and dataclasses.

    A ``functools.partial``'s bound arguments; a function's closure values and
    default values; the attributes of an instance of one of the user's classes,
    of an attrs class or of a pydantic model. None for any other value (a
    library's object, whose insides are its own business).
    """
    if isinstance(value, functools.partial):
        return [(f"args[{i}]", a) for i, a in enumerate(value.args)] + sorted(value.keywords.items())
    if isinstance(value, types.FunctionType):
        cells = []
        for name, cell in zip(value.__code__.co_freevars, value.__closure__ or ()):
            try:
                cells.append((name, cell.cell_contents))
            except ValueError:  # a cell not filled in yet
                continue
        defaults = [(f"defaults[{i}]", d) for i, d in enumerate(value.__defaults__ or ())]
        return cells + defaults + sorted((value.__kwdefaults__ or {}).items())
    cls = type(value)
    if cls in _PLAIN or isinstance(value, type) or is_dataclass(value):
        return None
    names: Any = None
    if hasattr(cls, "__attrs_attrs__"):
        names = [a.name for a in cls.__attrs_attrs__]
    elif isinstance(getattr(cls, "model_fields", None), dict):  # pydantic 2
        names = list(cls.model_fields)
    elif _is_user_class(cls) and isinstance(getattr(value, "__dict__", None), dict):
        names = sorted(vars(value))
    if names is None:
        return None
    return [(name, getattr(value, name, None)) for name in names]


def _holds_path(value: Any, depth: int) -> bool:
    """Whether a dataclass, list, tuple or dict holds a path (a few levels deep; a cycle ends it)."""
    if type(value) in _PLAIN:
        return False
    if isinstance(value, PurePath):
        return True
    if depth > 4:
        return False
    if isinstance(value, (list, tuple)):
        return any(_holds_path(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return any(_holds_path(v, depth + 1) for v in value.values())
    if is_dataclass(value) and not isinstance(value, type):
        return any(_holds_path(getattr(value, f.name, None), depth + 1) for f in fields(value))
    held = _held_values(value)
    return held is not None and any(_holds_path(item, depth + 1) for _, item in held)


def _key_text(item: tuple[Any, Any]) -> str:
    return repr(item[0])


def input_hash(template: Any, digest_of: Callable[[Output], str]) -> str:
    """Hash of an input argument: the upstream digest, or a structure of them."""
    if isinstance(template, Output):
        return digest_of(template)
    return hash_value(substitute(template, lambda out: _InputRef(digest_of(out))))


def substitute(template: Any, value_of: Callable[[Output], Any]) -> Any:
    """``template`` with every ``Output`` replaced by ``value_of(output)``."""
    if isinstance(template, Output):
        return value_of(template)
    if isinstance(template, (list, tuple)):
        return like(template, [substitute(v, value_of) for v in template])
    if isinstance(template, dict):
        return like(template, [(k, substitute(v, value_of)) for k, v in template.items()])
    return template


def _first_plain_value(result: Any, where: str) -> tuple[str, Any] | None:
    """(where, value) of the first value in a pipeline's result that is no step output, or None."""
    if result is None or isinstance(result, Output):
        return None
    if isinstance(result, (list, tuple)):
        items: Any = enumerate(result)
    elif isinstance(result, dict):
        items = result.items()
    else:
        return where, result
    for key, value in items:
        found = _first_plain_value(value, f"{where}[{key!r}]")
        if found is not None:
            return found
    return None


def _short_repr(value: Any) -> str:
    text = " ".join(repr(value).split())  # a frame's repr spans lines: the message is one
    return text if len(text) <= 60 else f"{text[:57]}..."
