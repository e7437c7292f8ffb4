"""Cache decisions: a node's key, whether it is a hit, and why it is not.

A key is the node's static key (code fingerprint, version, constant
parameters; see ``dag``) combined with the digests of its inputs. Each key is
stored with a manifest of its parts, so a miss can be explained by comparing
them with the closest of the keys this node had in its pipeline's recent runs: "code of
``helpers.clean`` changed", "parameter ``alpha`` changed", "input ``raw``
changed". This module reads the cache index and checks that objects exist;
it never loads or writes artifacts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from json.encoder import encode_basestring_ascii as _json_text
from typing import TYPE_CHECKING, Any

from orchestrator.dag import without_address
from orchestrator.errors import DamagedRecordError
from orchestrator.hashing import combine
from orchestrator.shown_fields import field_changes

if TYPE_CHECKING:
    from orchestrator.dag import Node
    from orchestrator.fingerprint import CodeFingerprint
    from orchestrator.lineage_db import CachedOutput, Lineage
    from orchestrator.spelling import Spelling
    from orchestrator.store import ArtifactStore

NO_EARLIER_RESULT = "no earlier result"
CACHE_DISABLED = "cache disabled for this step (cache=False)"
DAMAGED = "stored output was damaged"
# A pickled output whose signature does not verify: most often not damage but a run that signed with another key,
# as each run of a container, CI job or fresh machine does when it makes a key of its own in a home it then drops.
OTHER_KEY = ("stored output was signed with another key (or its record changed): give every run the same "
             "ORCH_SIGNING_KEY to reuse what they store")
MISSING = "stored output is missing"
REMOVED = "its stored result was removed (cache gc or verify --repair)"
_SAME_PARTS = ("no stored result for this key: its code, parameters and inputs are as recorded before, so its "
               "outputs were renamed or an orchestrator upgrade changed how keys are made")


def forced_reason(forced: bool, no_cache: bool, spelling: Spelling) -> str | None:
    """Why a run ignores a node's stored result, if it does: the option that said so, as the user wrote it.

    ``forced with --rerun`` from ``orch run``, ``forced with rerun=`` from
    ``Pipeline.run``; the reason is recorded, so ``orch show`` later says
    which it was too.
    """
    if forced:
        return f"forced with {spelling.rerun}"
    if no_cache:
        return f"caching turned off for this run ({spelling.no_cache})"
    return None


class Decision:
    """Whether a node can be skipped, under which key, and why (not).

    ``parts`` is the key's manifest, made only when something will record or
    explain it (a miss): a hit is recorded by its key alone, so the hot path
    of a cached re-run never builds it. A plain class, not a dataclass: one is
    made per node per run.
    """

    __slots__ = ("_inputs", "_node", "_parts", "_parts_json", "hit", "key", "outputs", "reason")

    def __init__(self, hit: bool, key: str, reason: str, outputs: list[CachedOutput] | None = None, *,
                 node: Node | None = None, inputs: dict[str, str] | None = None,
                 parts: dict[str, Any] | None = None) -> None:
        self.hit, self.key, self.reason, self.outputs = hit, key, reason, outputs
        self._node, self._inputs, self._parts = node, inputs, parts
        self._parts_json: str | None = None

    @property
    def parts(self) -> dict[str, Any]:
        """What the key is made of (see ``key_parts``); empty for a decision made without a node."""
        if self._parts is None:
            self._parts = key_parts(self._node, self._inputs or {}) if self._node is not None else {}
        return self._parts

    @property
    def parts_json(self) -> str:
        """The key's parts as JSON, serialized once however often the node is recorded."""
        if self._parts_json is None:
            if self._parts is None and self._node is not None:
                self._parts_json = key_parts_json(self._node, self._inputs or {})
            else:
                self._parts_json = json.dumps(self.parts)
        return self._parts_json

    def __repr__(self) -> str:
        return f"Decision(hit={self.hit}, key={self.key!r}, reason={self.reason!r})"


def node_key(node: Node, input_hashes: dict[str, str]) -> str:
    """The full cache key of ``node`` given its inputs' hashes."""
    return combine(node.static_key, *(f"{k}={v}" for k, v in sorted(input_hashes.items())))


def key_parts(node: Node, input_hashes: dict[str, str]) -> dict[str, Any]:
    """What ``node``'s key is made of, recorded with it so that a later miss can be explained."""
    parts = {
        "code": node.code.digest,
        "code_parts": node.code.parts,
        "version": node.step.version,
        "params": node.params,
        "inputs": input_hashes,
        "values": node.shown,
    }
    if node.code.methods:
        parts["methods"] = node.code.methods
    value_code = _value_code(node)
    if value_code:
        parts["value_code"] = value_code
    files = _path_arguments(node)
    if files:
        parts["files"] = files
    if node.folder_files:
        parts["folders"] = node.folder_files
    return parts


def _value_code(node: Node) -> dict[str, Any]:
    """The code of the user's classes each parameter holds (``value_code.class_code_parts``).

    Not of the object a class body's step runs on: its digest counts the members the step reaches only.
    """
    from orchestrator.fingerprint import runs_on
    from orchestrator.value_code import class_code_parts

    out = {}
    for name in node.params:
        parts = class_code_parts(node.arguments.get(name))
        if parts and not runs_on(node.step.fn, name):
            out[name] = parts
    return out


# static key -> (the code fingerprint it was made from, JSON of the parts without "inputs")
_STATIC_PARTS_JSON: dict[str, tuple[CodeFingerprint, str]] = {}
_STATIC_PARTS_MEMO = 4096


def key_parts_json(node: Node, input_hashes: dict[str, str]) -> str:
    """``key_parts`` as JSON, for the record of a node that runs.

    Every node is recorded with its parts, but nodes with the same static key
    (the same step and parameters: a chain, a map's items) differ only in
    their inputs, so the rest is serialized once. A node with path
    parameters shows its own paths, so it is serialized whole.
    """
    if node.file_params or node.missing_paths or node.path_lists:
        return json.dumps(key_parts(node, input_hashes))
    memo = _STATIC_PARTS_JSON.get(node.static_key)
    # Two steps with equal code (one module with `from __future__ import annotations`, one
    # without) share a static key but not their explanation parts (bytecode): each keeps its own.
    if memo is not None and (memo[0] is node.code or memo[0].parts == node.code.parts):
        static = memo[1]
    else:
        if len(_STATIC_PARTS_JSON) >= _STATIC_PARTS_MEMO:
            _STATIC_PARTS_JSON.clear()
        parts = key_parts(node, {})
        del parts["inputs"]
        static = json.dumps(parts)[:-1]
        _STATIC_PARTS_JSON[node.static_key] = (node.code, static)
    inputs = ", ".join(f'{_json_text(name)}: "{digest}"' for name, digest in input_hashes.items())
    return f'{static}, "inputs": {{{inputs}}}}}'


def _path_arguments(node: Node) -> dict[str, list[Any]]:
    """Each path argument's absolute path and whether it existed, to explain a miss by its file.

    An argument holding several paths (a list, a dict) gets ``[[path, exists,
    content digest or None], ...]``, one per path in order, so that a miss names
    the file that changed rather than the argument's first one; one path gets
    ``[path, exists, content digest]`` (a key recorded before content digests
    were: ``[path, exists]``), so that a config holding a path whose other
    fields changed is not said to have a changed file.
    """
    files: dict[str, list[Any]] = {arg: [path, True, digest] for arg, (path, digest) in node.file_params.items()}
    files.update((arg, [path, False]) for arg, path in node.missing_paths.items())
    if node.path_lists:
        digests = dict(node.file_params.values())
        for arg, paths in node.path_lists.items():
            for label in [k for k in files if k == arg or k.startswith(f"{arg}[")]:
                del files[label]
            files[arg] = [[path, path in digests, digests.get(path)] for path in paths]
    return files


class History:
    """The key parts each node of a pipeline had last time, loaded once, on the first miss."""

    def __init__(self, lineage: Lineage, pipeline: str) -> None:
        self.lineage, self.pipeline = lineage, pipeline
        self._keys: dict[str, list[tuple[str, str | None]]] | None = None

    def _recent(self, node: str) -> list[tuple[str, str | None]]:
        if self._keys is None:
            self._keys = self.lineage.recent_keys(self.pipeline)
        return self._keys.get(node, [])

    def last_key(self, node: str) -> str | None:
        """The key ``node`` had the last time it ran or was cached."""
        recent = self._recent(node)
        return recent[0][0] if recent else None

    def ran_before(self, node: str) -> bool:
        """Whether ``node`` ran or was cached in one of the last runs (else no miss can be explained)."""
        return bool(self._recent(node))

    def had_key(self, node: str, key: str) -> bool:
        """Whether ``node`` had ``key`` in one of the last runs."""
        return any(k == key for k, _ in self._recent(node))

    def why(self, node: str, parts: dict[str, Any]) -> str:
        """Why ``parts`` match no stored result: the differences from the closest recent key.

        Closest, not latest: after runs with ``C=0.5`` and then the defaults, a
        run that changes only ``features`` is told "parameter `features` changed".
        """
        return _closest_reason(self.earlier(node), parts)

    def earlier(self, node: str) -> list[dict[str, Any] | None]:
        """The parts of each recent key of ``node``, newest first (None where no longer recorded)."""
        return [_parts_or_none(self.lineage, key, stored) for key, stored in self._recent(node)]


def _parts_or_none(lineage: Lineage, key: str, stored: str | None) -> dict[str, Any] | None:
    """A recent key's recorded parts; None when they are gone or damaged.

    They only explain a miss: a damaged record (``orch doctor`` names it) must not
    stop a run or a plan, so it is explained as one no longer recorded.
    """
    try:
        if stored:
            return lineage.decode(stored, f"steps.key_parts of key {key}")  # type: ignore[no-any-return]
        return lineage.key_parts_of(key)
    except DamagedRecordError:
        return None


def _closest_reason(candidates: Sequence[dict[str, Any] | None], parts: dict[str, Any]) -> str:
    """``explain`` against the candidate with the fewest differences (the newest on a tie).

    A candidate no longer recorded (its parts removed by gc, or damaged) cannot
    be compared: it explains only when no recorded one is left. Counted as one
    change, it beat the last run's two real ones, and a step that ran in every
    earlier run said "no earlier result".
    """
    best: tuple[int, bool] | None = None
    said: list[str] = []
    paths_now = _file_paths(parts)
    for old in candidates:
        if old is None:
            continue
        changes = _changes(old, parts)
        if not changes:
            return _SAME_PARTS  # no difference at all: nothing can be closer
        # Counted in full, though a reason names only a few. On a tie, files at the paths read now: the
        # last run read A.csv in a copy of the project, whose result was computed from the original's, and
        # the copy's A.csv was edited.
        rank = (len(changes), _file_paths(old) != paths_now)
        if best is None or rank < best:
            best, said = rank, changes
    return _joined(said) if best is not None else NO_EARLIER_RESULT


def _file_paths(parts: dict[str, Any]) -> dict[str, Any]:
    """The path of each file parameter of a key's parts (their content left out)."""
    files = parts.get("files") or {}
    try:
        return {name: [e[0] for e in _file_entries(files, name)] for name in files}
    except (AttributeError, IndexError, KeyError, TypeError):  # recorded otherwise (an older version)
        return {}


def decide(node: Node, key: str, inputs: dict[str, str], lineage: Lineage, store: ArtifactStore,
           history: History, *, force: str | None = None) -> Decision:
    """Hit or miss for ``node`` under ``key``; a miss carries the reason it must run.

    Args:
        inputs: the digest of each input, which ``key`` was made from.
        history: what each node's key was made of last time, to explain a miss.
        force: a reason that overrides the cache (``--rerun``, ``--no-cache``, damage).
    """
    def miss(reason: str, parts: dict[str, Any] | None = None) -> Decision:
        return Decision(False, key, reason, node=node, inputs=inputs, parts=parts)

    if force:
        return miss(force)
    if not node.step.cache:
        return miss(CACHE_DISABLED)
    if node.missing_paths:
        # A path with no file behind it is the step's to make (an output path given as a
        # parameter), or a missing input the step should report: either way it runs.
        missing = _missing_file(node)
        if history.had_key(node.name, key) or not history.ran_before(node.name):
            return miss(missing)
        parts = key_parts(node, inputs)
        reason = history.why(node.name, parts)
        return miss(missing if reason in (NO_EARLIER_RESULT, _SAME_PARTS) else reason, parts)
    outputs = lineage.lookup(key)
    if outputs is not None:
        if all(o.inline or store.has(o.digest) for o in outputs):
            return Decision(True, key, "cached", outputs)
        return miss(MISSING)
    if history.had_key(node.name, key):
        return miss(REMOVED)
    if not history.ran_before(node.name):
        return miss(NO_EARLIER_RESULT)  # nothing to compare its parts with
    parts = key_parts(node, inputs)
    return miss(history.why(node.name, parts), parts)


def hit_since(node: Node, key: str, lineage: Lineage, store: ArtifactStore, *,
              force: str | None = None) -> Decision | None:
    """The hit ``decide`` would now find for a node it found a miss, or None: a result another run
    stored meanwhile (look with ``lineage`` refreshed).

    Only the cache index can have changed since: a forced node, one with a
    missing file or caching off is a miss whatever it holds, and the rest of
    ``decide`` (the reason of a miss) is not made again.
    """
    if force or not node.step.cache or node.missing_paths:
        return None
    outputs = lineage.lookup(key)
    if outputs is None or not all(o.inline or store.has(o.digest) for o in outputs):
        return None  # none, or one whose objects are gone: ``decide``'s miss stands
    return Decision(True, key, "cached", outputs)


def _missing_file(node: Node) -> str:
    arg, path = next(iter(node.missing_paths.items()))
    return f"file `{arg}` does not exist ({path})"


def own_change(node: Node, history: History) -> str | None:
    """Why ``node`` runs whatever its inputs turn out to be, or None if that depends on them.

    For ``orch plan``: a node downstream of one that runs has unknown inputs,
    but a change to its own code, version or parameters (or a file it must
    make, or caching turned off) makes it run anyway.
    """
    if not node.step.cache:
        return CACHE_DISABLED
    if node.missing_paths:
        return _missing_file(node)
    earlier = [{k: v for k, v in old.items() if k != "inputs"} for old in history.earlier(node.name) if old]
    if not earlier:  # never ran under this name: another node's result may still fit its key
        return None
    parts = key_parts(node, {})
    reason = _closest_reason(earlier, {k: v for k, v in parts.items() if k != "inputs"})
    return None if reason == _SAME_PARTS else reason


def _version(parts: dict[str, Any]) -> str:
    """A key's ``@step(version=...)`` as a reason shows it: "none" when the step gave none."""
    version = parts.get("version")
    return "none" if version is None else repr(version) if isinstance(version, str) and not version else str(version)


def explain(old: dict[str, Any] | None, new: dict[str, Any]) -> str:
    """Why a key differs from the one recorded before, in a few words."""
    if old is None:
        return NO_EARLIER_RESULT
    return _joined(_changes(old, new)) or _SAME_PARTS


def key_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Every difference between two recorded keys' parts, in a reason's words, none left out (``orch diff``)."""
    return _changes(old, new)


# A reason names this many changes at most: a run given a new config of 60 hyperparameters
# would otherwise show a reason of 60 clauses, a screen per step in `orch run` and `orch plan`.
MOST_CHANGES_NAMED = 5


def _joined(changes: list[str]) -> str:
    """``changes`` as one reason; past ``MOST_CHANGES_NAMED``, the rest are counted, not named."""
    if len(changes) <= MOST_CHANGES_NAMED:
        return "; ".join(changes)
    named = changes[:MOST_CHANGES_NAMED - 1]
    return "; ".join(named) + f"; and {len(changes) - len(named)} more changes"


def _changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Each difference between the parts of a recorded key and of a new one, in a few words."""
    reasons: list[str] = []
    if old.get("version") != new.get("version"):
        reasons.append(f"version changed ({_version(old)} → {_version(new)})")
    methods: Methods = (old.get("methods") or {}, new.get("methods") or {})
    code_changed = old.get("code") != new.get("code")
    params = _value_changes("parameter", old.get("params") or {}, new.get("params") or {},
                            old.get("files") or {}, new.get("files") or {},
                            old.get("values") or {}, new.get("values") or {},
                            (old.get("folders") or {}, new.get("folders") or {}),
                            (old.get("value_code") or {}, new.get("value_code") or {}),
                            methods if code_changed else ({}, {}))
    if code_changed:
        # No part named: the step's own default values changed, which the parameters they
        # became already say; or parts recorded differently (an older version).
        reasons.extend(_code_changes(old.get("code_parts") or {}, new.get("code_parts") or {}, methods)
                       or ([] if params else ["its code changed"]))
    reasons.extend(params)
    reasons.extend(_value_changes("input", old.get("inputs") or {}, new.get("inputs") or {}))
    return reasons


Methods = tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]]  # (old, new) methods of each class part


def _code_changes(old: dict[str, str], new: dict[str, str], methods: Methods = ({}, {})) -> list[str]:
    out = []
    moved = _moved_parts(old, new)
    if moved:  # compared under the name shown now, as the key compares them
        old = {moved.get(name, name): digest for name, digest in old.items()}
        methods = ({moved.get(name, name): m for name, m in methods[0].items()}, methods[1])
    renamed = _renamed_parts(old, new)
    for name in sorted(set(old) | set(new), key=lambda n: (n != "<self>", n)):
        before, after = old.get(name), new.get(name)
        if before == after or name in renamed.values():
            continue
        if name in renamed:
            out.append(f"`{name}` is now `{renamed[name]}` (the same code)")
            continue
        if name.startswith("pkg:"):
            out.append(f"package {name[4:]} {before or 'unused'} → {after or 'unused'}")
        elif name == "<self>":
            out.append("its code changed")
        elif name in _BOUND_PARTS:
            out.append(_BOUND_PARTS[name])
        elif name.startswith("closure value ") and before is not None and after is not None:
            out.append(f"{name} changed")  # a value a decorator's wrapper holds (`@scaled(3)`'s k)
        elif name.startswith("module ") and before is not None and after is not None:
            out.append(f"code of module `{name[len('module '):]}` changed")  # one used whole (getattr)
        elif before is None:
            out.append(f"now uses `{name}`")
        elif after is None:
            if not name.endswith(_ENUM_TABLES):  # named by an earlier version; counted still, not named
                out.append(f"no longer uses `{name}`")
        else:
            out.append(_method_changes(name, methods) or f"code of `{name}` changed")
    return out


def _method_changes(name: str, methods: Methods) -> str | None:
    """Which methods of class part ``name`` an edit changed, added or removed, as one clause.

    None when either key did not record them (an older version) or none of
    them differs (a class attribute, a base class or a decorator line
    changed): the reason then names the class. One clause, as the class is
    one part of the key, so a class counts as one change when the closest
    earlier key is chosen, however many of its methods were edited.
    """
    old, new = methods[0].get(name), methods[1].get(name)
    if not old or not new:
        return None
    changed = [f"`{name}.{m}`" for m in old if m in new and old[m] != new[m]]
    added = [f"`{name}.{m}`" for m in new if m not in old]
    removed = [f"`{name}.{m}`" for m in old if m not in new]
    clauses = [f"code of {_listed(changed)} changed" if changed else "",
               f"new method {_listed(added)}" if added else "",
               f"method {_listed(removed)} removed" if removed else ""]
    return "; ".join(clause for clause in clauses if clause) or None


def _listed(names: list[str]) -> str:
    """```a```, ```a`` and ``b```, or the first three and how many more."""
    if len(names) <= 2:
        return " and ".join(names)
    if len(names) == 3:
        return f"{names[0]}, {names[1]} and {names[2]}"
    return f"{', '.join(names[:3])} and {len(names) - 3} more"


def _moved_parts(old: dict[str, str], new: dict[str, str]) -> dict[str, str]:
    """Parts shown under another module's name, the name itself the same: old name -> new name.

    A key counts a helper or a constant by its name without its module
    (``fingerprint``), so ``features.MIN_AGE`` recorded before and
    ``config.MIN_AGE`` now (a constant named by the module that defines it, a
    helper moved to another file) are one part: the same digest is no change,
    another is a change of ``config.MIN_AGE``, not a part gone and one new.
    """
    gone = [name for name in old if name not in new and not name.startswith(("pkg:", "<", "module "))]
    if not gone:
        return {}
    came = [name for name in new if name not in old and not name.startswith(("pkg:", "<", "module "))]
    moved: dict[str, str] = {}
    for name in sorted(gone):
        match = next((other for other in sorted(came) if _same_name(name, other)), None)
        if match is not None:
            moved[name] = match
            came.remove(match)
    return moved


def _same_name(a: str, b: str) -> bool:
    """Whether two shown part names differ only by the module in front (``MIN_AGE``, ``config.MIN_AGE``)."""
    a_rest, b_rest = a.partition(".")[2], b.partition(".")[2]
    return a == b_rest or b == a_rest or (bool(a_rest) and a_rest == b_rest)


def _renamed_parts(old: dict[str, str], new: dict[str, str]) -> dict[str, str]:
    """Parts that went and came back under another name with the same digest: old name -> new name.

    A helper renamed (``clean`` to ``normalize``) or moved to another module
    is one change, not "no longer uses" and "now uses": counted as two, it
    made an older run with another edit look closer than the last one.
    """
    gone = {name: digest for name, digest in old.items() if name not in new and not name.startswith("pkg:")}
    if not gone:
        return {}
    came: dict[str, list[str]] = {}
    for name in sorted(n for n in new if n not in old and not n.startswith("pkg:")):
        came.setdefault(new[name], []).append(name)
    renamed = {}
    for name in sorted(gone):
        names = came.get(gone[name])
        if names:
            renamed[name] = names.pop(0)
    return renamed


# An enum's own tables (`agg.Agg._value2member_map_`, holding its members' values), which keys recorded by
# an earlier version name as parts: the fingerprint counts them in the digest only (``class_tables``).
_ENUM_TABLES = ("._value2member_map_", "._unhashable_values_")

# What ``fingerprint`` binds to a step that is a bound method or a ``functools.partial``, by part name.
_BOUND_PARTS = {
    "<self> bound instance": "the object its method is bound to changed",
    "<self> partial arguments": "the arguments functools.partial binds changed",
}


Folders = tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]]  # (old, new) folder listings


def _file_change(name: str, old_files: dict[str, Any], new_files: dict[str, Any],
                 folders: Folders = ({}, {}), shown: tuple[Any, Any] | None = None,
                 code: str | None = None) -> str:
    """What happened to a path parameter's files: another path, appeared, gone, or edited.

    For a list or dict of paths, the files that changed are named: those the
    parameter now holds and did not, else those that appeared, went or whose
    content changed (by their digests; a key recorded by an older version has
    none, so only a single path can be named by elimination).

    ``shown``: the parameter as each key's run recorded it for people, when
    both did. The same text both times, a relative path names a file
    elsewhere only because the run started in another folder (the project
    was moved, or run from a subfolder): the parameter did not change, the
    file it names did, and is named where it is now. Other text with the same
    files is a config holding a path whose other fields changed
    (``parameter `cfg` changed (alpha: 0.5 → 0.7)``). ``code``: the clause naming the
    code of the user's class it is (``value_code``) that changed, said when its text and files
    are as they were, rather than a content change of a file nobody touched.
    """
    same_text = shown is not None and shown[0] == shown[1]
    old, new = _file_entries(old_files, name), _file_entries(new_files, name)
    old_paths, new_paths = [e[0] for e in old], [e[0] for e in new]
    moved = same_text and old_paths != new_paths and len(old) == len(new)
    if moved:
        old = [(path, was, before) for path, (_, was, before) in zip(new_paths, old)]
        old_paths = new_paths
    if old_paths != new_paths:
        added = [p for p in new_paths if p not in old_paths]
        dropped = [p for p in old_paths if p not in new_paths]
        how = f"now {_few(added)}" if added else f"no longer {_few(dropped)}" if dropped else \
            "the same files in another order"
        return f"parameter `{name}` changed ({how})"
    appeared: list[str] = []
    gone: list[str] = []
    edited: list[str] = []
    unknown = False
    for (path, was, before), (_, now, after) in zip(old, new):
        if was != now:
            (appeared if now else gone).append(path)
        elif now and (before is None or after is None):
            unknown = True
        elif now and before != after:
            edited.append(path)
    parts = [f"file `{name}` now exists ({_few(appeared)})" if appeared else "",
             f"file `{name}` {'does not exist' if moved else 'is gone'} ({_few(gone)})" if gone else "",
             f"content of file `{name}` changed ({_few([_in_folder(p, folders) for p in edited])})"
             if edited else ""]
    if shown is not None and not same_text:
        if not any(parts):  # its files are as they were, or not known: what prints of it changed
            return f"parameter `{name}` changed{_shown_change(*shown)}"
        fields = field_changes(_plain(shown[0]), _plain(shown[1]))  # a config's other fields too
        parts.insert(0, f"parameter `{name}` changed ({fields})" if fields else "")
    if any(parts):
        return "; ".join(part for part in parts if part)
    if code is not None and same_text and not unknown:
        return code
    if not unknown and new and all(before == after for (_, _, before), (_, _, after) in zip(old, new)):
        # Every file as it was, by its content: the key holds each file's path too (relative to the
        # project), which is what differs (run from outside the project, a copy's closure holding an
        # absolute path). "content of file changed" named a file nobody touched.
        return f"parameter `{name}` changed (its file's path as keyed, not its content: {_few(new_paths)})"
    if len(new) == 1:  # one path, there both times: its content is what changed
        return f"content of file `{name}` changed ({_in_folder(new_paths[0], folders)})"
    return f"content of a file of `{name}` changed" if unknown else f"parameter `{name}` changed"


def _in_folder(path: str, folders: Folders) -> str:
    """``path``, or for a folder whose files both keys listed, which of them changed.

    ``/abs/data: y.csv edited, z.csv added`` (a few, then how many more), so
    that a user sees which file re-runs the step, not only which folder.
    """
    old, new = folders[0].get(path), folders[1].get(path)
    if not isinstance(old, dict) or not isinstance(new, dict):
        return path
    changes = [f"{rel} edited" for rel in sorted(old.keys() & new.keys()) if old[rel] != new[rel]]
    changes += [f"{rel} added" for rel in sorted(new.keys() - old.keys())]
    changes += [f"{rel} removed" for rel in sorted(old.keys() - new.keys())]
    if not changes:
        return path  # an empty folder added or removed: the listing holds files only
    return f"{path}: " + ", ".join(changes[:3]) + (f" and {len(changes) - 3} more" if len(changes) > 3 else "")


def _file_entries(files: dict[str, Any], name: str) -> list[tuple[str, bool, str | None]]:
    """(path, existed, digest or None) of each path of parameter ``name``, from a key's recorded parts."""
    value = files[name]
    if value and isinstance(value[0], list):
        return [(e[0], e[1], e[2] if len(e) > 2 else None) for e in value]
    # One path, or the first of several as an older version recorded them (the others as name[N]).
    return [(e[0], e[1], e[2] if len(e) > 2 else None)
            for e in [value, *(v for k, v in files.items() if k.startswith(f"{name}["))]]


def _few(paths: list[str]) -> str:
    """``/a``, ``/a, /b`` or ``/a, /b, /c and 2 more``: a reason stays short however many files changed."""
    return ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")


def _value_changes(kind: str, old: dict[str, str], new: dict[str, str],
                   old_files: dict[str, Any] | None = None, new_files: dict[str, Any] | None = None,
                   old_shown: dict[str, Any] | None = None, new_shown: dict[str, Any] | None = None,
                   folders: Folders = ({}, {}), value_code: ValueCode = ({}, {}),
                   code_methods: Methods = ({}, {})) -> list[str]:
    """Names of the values that differ; a path parameter says what happened to its file.

    A parameter whose value was recorded for display on both sides says how
    it changed: ``(1.0 → 0.5)`` when both are short, or that it prints the
    same (a function whose code changed, a long frame whose data did). An
    instance of the user's class that prints the same but whose class's code
    both keys recorded differs names that code (``value_code``), unless the
    step's code uses that class too (``code_methods``), whose reason names it.
    """
    old_files, new_files = old_files or {}, new_files or {}
    old_shown, new_shown = old_shown or {}, new_shown or {}
    out = []
    for name in sorted(set(old) | set(new)):
        if old.get(name) != new.get(name):
            if name not in old:
                out.append(f"new {kind} `{name}`")
            elif name not in new:
                out.append(f"{kind} `{name}` removed")
            elif name in old_files and name in new_files:
                shown = (old_shown[name], new_shown[name]) if name in old_shown and name in new_shown else None
                out.append(_file_change(name, old_files, new_files, folders, shown,
                                        _value_code_change(name, value_code)))
            elif name in old_shown and name in new_shown:
                said = _shown_change(old_shown[name], new_shown[name])
                code = _value_code_change(name, value_code, code_methods) if said == _PRINTS_SAME else None
                if code != "":  # "": only code the step's own code names changed
                    out.append(code or f"{kind} `{name}` changed{said}")
            else:
                out.append(f"{kind} `{name}` changed")
    return out


ValueCode = tuple[dict[str, Any], dict[str, Any]]  # (old, new) value_code parts of a key


def _value_code_change(name: str, value_code: ValueCode, code_methods: Methods = ({}, {})) -> str | None:
    """``code of `config.ModelConfig.forest_kwargs` changed``: a parameter holding the user's classes whose code
    changed, its fields as they were, one clause per class; None when a key did not record them or
    none of their code differs, ``""`` when each that did is a class part of the step's own code
    (``code_methods``: its reason names the class already)."""
    old, new = value_code[0].get(name), value_code[1].get(name)
    if not isinstance(old, dict) or not isinstance(new, dict):
        return None
    clauses = []
    named = False
    for cls, now in new.items():
        was = old.get(cls)
        if not isinstance(was, dict) or not isinstance(now, dict) or was.get("code") == now.get("code"):
            continue
        methods = ({cls: was.get("methods") or {}}, {cls: now.get("methods") or {}})
        if _named_by_code(cls, methods, code_methods):
            named = True
            continue
        clauses.append(_method_changes(cls, methods) or f"code of `{cls}` changed")
    return "; ".join(clauses) or ("" if named else None)


def _named_by_code(cls: str, methods: Methods, code_methods: Methods) -> bool:
    """Whether class ``cls`` of a parameter (``pk.config.Cfg``) is a class part of the step's code
    (``config.Cfg``, shown by fewer of its module's names) whose methods were and are the same code.

    A method's digest is the same in both records (``code_analysis.method_digests``), so an edit of
    the class shows in both; the parameter's leaves out what a dataclass generates (``__init__``).
    """
    was, now = methods[0][cls], methods[1][cls]
    if not now:
        return False
    for part, part_now in code_methods[1].items():
        part_was = code_methods[0].get(part) or {}
        if (part == cls or cls.endswith(f".{part}")) \
                and all(part_now.get(m) == d for m, d in now.items()) \
                and all(part_was.get(m) == d for m, d in was.items()):
            return True
    return False


def class_code_changed(name: str, old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether two keys' parts explain parameter ``name``'s change as its class's code (``orch diff``'s kind):
    it prints the same, any files it holds are as they were, and the code of a class of it differs."""
    old_shown, new_shown = old.get("values") or {}, new.get("values") or {}
    if name not in old_shown or name not in new_shown or \
            _shown_change(old_shown[name], new_shown[name]) != _PRINTS_SAME:
        return False
    if (old.get("files") or {}).get(name) != (new.get("files") or {}).get(name):
        return False
    return _value_code_change(name, (old.get("value_code") or {}, new.get("value_code") or {})) is not None


_PRINTS_SAME = " (it prints the same: its code or contents changed)"
_SHOWN_WIDTH = 40  # longer values are not repeated in a reason
_SHOWN_CUT = 200  # a value shown for lineage is cut to this many characters, "..." included (see dag._shown)


def _shown_change(old: Any, new: Any) -> str:
    """`` (1.0 → 0.5)``, or the fields of a long config that changed (`` (n_estimators: 30 → 40)``),
    or why equal-looking values have different keys, or nothing."""
    before, after = _brief(old), _brief(new)
    if before == after:
        if isinstance(old, str) and old.endswith("...") and len(old) >= _SHOWN_CUT:
            # Both were cut where lineage shows them (a long frame, a long list): equal up to there.
            return " (equal in the first 200 characters it prints: it differs after them)"
        return _PRINTS_SAME
    if len(before) > _SHOWN_WIDTH or len(after) > _SHOWN_WIDTH:
        fields = field_changes(_plain(old), _plain(new))
        return f" ({fields})" if fields else ""
    return f" ({before} → {after})"


def _plain(shown: Any) -> Any:
    return without_address(shown) if isinstance(shown, str) else shown


def _brief(shown: Any) -> str:
    if isinstance(shown, str):
        shown = without_address(shown)  # recorded before addresses were left out
    return json.dumps(shown, ensure_ascii=False, separators=(", ", ": "))
