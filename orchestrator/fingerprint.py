"""Code fingerprints of step functions.

A step's fingerprint covers its own code and, transitively, every function,
class and module-level constant of the *user's* code that it reaches: by
global name, through an imported user module (``helpers.clean``), through a
local import, a closure cell or a default argument, as a subclass of a class
whose code looks through its ``__subclasses__()``, or as a pandas accessor
whose name the code reads (``df.feat``). Installed packages
count by distribution version (``pkg:scikit-learn``); the standard library,
builtins and this package count for nothing.

Code is compared as a normalized AST (no docstrings, no decorators on the
step, no names of the step, no line numbers), so formatting-only edits and
moves keep the digest. The digest never contains file paths, module names
or object ids: the same code imported as ``pipelines.training`` or run as
``__main__`` fingerprints the same.

Three modules share the work: ``user_code`` decides whose code an object
is (the user's, an installed package's, the standard library's or this
package's), ``code_analysis`` digests one function's or class's code and
lists the names it reads, and this module walks from the step through
everything those names reach and combines the parts into one digest.

This module must not run user code beyond the imports a step's own local
``import`` statements would run anyway, and must not import numpy, pandas or
pyarrow. Values are hashed by ``hashing.hash_value``; this module only
decides which values and which code take part.
"""

from __future__ import annotations

import enum
import functools
import importlib
import importlib.util
import inspect
import sys
import threading
import types
from collections.abc import Callable
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import PurePath
from typing import Any

from orchestrator import filled_containers, hashing
from orchestrator.code_analysis import (
    Ref,
    body_names,
    class_info,
    computed_attributes,
    first_argument_attributes,
    function_info,
    literal_attributes,
    method_digests,
    module_source_digest,
)
from orchestrator.code_analysis import _class_functions as class_functions
from orchestrator.code_analysis import _code_digest as code_digest
from orchestrator.errors import UnhashableValueError
from orchestrator.import_origins import defined_in
from orchestrator.method_reach import Reach, bound_reach
from orchestrator.user_code import (
    file_kind,
    is_user_module,
    module_kind,
    object_kind,
    package_versions,
)

__all__ = ["CodeFingerprint", "code_root", "fingerprint", "is_user_module", "self_digest"]

#: A value that cannot be hashed cannot be pickled either, so it cannot be a parameter or an output:
#: the step has to make it itself.
_FIX = ("Create it inside the step (or in a function the step calls), from a path, URL or setting the "
        "step takes as a parameter: a connection, client, generator or open file cannot be hashed or stored.")
_MISSING = object()
_LIBRARY = ("stdlib", "installed")  # kinds of file whose code counts for nothing but a version
_CONTAINERS = (list, tuple, set, frozenset, dict)
# Read-only views of a dict (``types.MappingProxyType({"sq": square})``): hashed by their cloudpickle
# bytes, which name a function of yours and leave its code out, so one holding code is walked as a dict.
_MAPPINGS = (dict, types.MappingProxyType)
_STRUCTURAL = (
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.ModuleType,
    type,
    functools.partial,
    staticmethod,
    classmethod,
)


@dataclass(frozen=True)
class CodeFingerprint:
    """The digest of a step's code and everything it reaches, with a digest per part.

    ``parts`` maps a display name (``"<self>"``, ``"helpers.clean_text"``,
    ``"THRESHOLD"``, ``"pkg:scikit-learn"``) to that part's digest, or to
    the version for packages; it exists to explain why a digest changed.
    """

    digest: str
    parts: dict[str, str] = field(hash=False)
    # Paths the code reaches as values, not as parameters: (kind, name, path), such as
    # ("module constant", "DATA", "data.csv"). They count by their text only, so the file behind
    # one can change while the step stays cached; ``untracked`` turns them into a warning.
    paths: tuple[tuple[str, str, str], ...] = field(default=(), hash=False, compare=False)
    # Module-level dicts, lists and sets the code reads: (module, name, container, the digest used),
    # for the runner to tell a memo the run's own steps filled from an edit (filled_containers).
    filled: tuple[tuple[str, str, Any, str], ...] = field(default=(), hash=False, compare=False, repr=False)
    # Imports of a module named only when the code runs: (what, where), such as
    # ("importlib.import_module", "plugins.load"). What they import is in no key; ``untracked`` warns.
    dynamic: tuple[tuple[str, str], ...] = field(default=(), hash=False, compare=False)
    # The methods of each class part, by the part's display name: {method: digest of its code}. A
    # class counts as one part; these only say which of its methods an edit changed.
    methods: dict[str, dict[str, str]] = field(default_factory=dict, hash=False, compare=False, repr=False)
    # The functions of the user's the walk went through, the step's own first: what the code may run,
    # for ``shared_globals`` to tell which module-level values a step changes and which it reads.
    functions: tuple[types.FunctionType, ...] = field(default=(), hash=False, compare=False, repr=False)


def fingerprint(fn: Callable[..., Any]) -> CodeFingerprint:
    """Fingerprint a step function, a ``Step``, a bound method or a ``functools.partial``.

    Raises:
        UnhashableValueError: A constant, closure variable or default value
            that the code uses cannot be hashed.
        TypeError: ``fn`` is not one of the supported callables.
    """
    walk = _Walk()
    extras: list[tuple[str, object, object]] = []
    root = _peel(fn, extras)
    if not isinstance(root, types.FunctionType):
        raise TypeError(f"fingerprint() takes a function or a step, not {type(fn).__qualname__}")
    walk.root_module = root.__module__
    walk.root_name = root.__qualname__
    walk.accessors = _project_accessors()
    for label, value, method in extras:
        # A method bound right around the step's function: only the members of its class that
        # the method reaches through `self` count, when its code says which (method_reach).
        reach = bound_reach(value, root) if method is root else None
        if reach is None:
            token = walk.token(value, label, root.__qualname__)
        else:
            token = walk.reached(value, reach, label, root.__qualname__)
        shown = walk.add_part(f"<self> {label}", f"<self> {label}", token)
        if reach is None and method is not None and not isinstance(value, type):
            # The whole class counts, as a part of its own (`token` walks it): the object's part
            # explains its data, so an edit of `Trainer.__len__` does not also read "the object its
            # method is bound to changed". Explanation only: the key holds `token`.
            with hashing.without_code_of(type(value)):
                walk.parts[shown] = hashing.hash_value(value)
        if method is None:
            _note_bound_paths(walk, root, value)
    walk.function(root, is_root=True)
    _name_decorated_parts(walk, root)
    _note_class_paths(walk, root)
    return walk.result()


def _note_bound_paths(walk: _Walk, root: types.FunctionType, bound: Any) -> None:
    """Paths a ``functools.partial`` step binds, each by the parameter it is bound to (``load.path``)."""
    args, keywords = bound
    names = root.__code__.co_varnames[:root.__code__.co_argcount]
    for index, value in enumerate(args):
        name = names[index] if index < len(names) else f"args[{index}]"
        walk.note_paths("argument bound by functools.partial", f"{root.__name__}.{name}", value)
    for name, value in sorted(keywords.items()):
        walk.note_paths("argument bound by functools.partial", f"{root.__name__}.{name}", value)


def _note_class_paths(walk: _Walk, root: types.FunctionType) -> None:
    """Paths in class attributes a step defined in a class body reads through ``self`` (``self.DATA``).

    The instance arrives as the parameter ``self``, but a class attribute is
    code, not the instance's data: it counts by its text, as a module constant does.
    """
    owner, dot, _ = root.__qualname__.rpartition(".")
    if not dot or "<locals>" in owner:
        return
    cls: Any = sys.modules.get(root.__module__)
    for part in owner.split("."):
        cls = getattr(cls, part, None)
    if not isinstance(cls, type):
        return
    reach = bound_reach(cls, root)
    members = [(m.owner, m.name, m.value) for m in reach.members] if reach is not None \
        else [(cls, name, value) for name, value in vars(cls).items() if not name.startswith("__")]
    for klass, name, value in members:
        walk.note_paths("class attribute", walk.display(klass.__module__, f"{klass.__qualname__}.{name}"), value)


def self_digest(fn: Any, arg: str, value: Any) -> str | None:
    """The digest of the object a step defined in a class body runs on, as far as the step reaches it.

    ``@step`` on a method in a class body, called as ``trainer.fit(x)``,
    receives ``trainer`` as its parameter ``self``: hashed whole, its value
    would carry the code of every method of its class, so editing any of them
    would re-run the step. When ``value`` is an object whose class has this
    step as a member and the method's code says what it reaches through
    ``arg`` (``method_reach``), the digest covers the object's data and only
    those members; otherwise None (hash the value whole).
    """
    root = _class_body_method(fn)
    if root is None or root.__code__.co_varnames[0] != arg or isinstance(value, type):
        return None
    try:
        member = inspect.getattr_static(type(value), root.__name__)
    except AttributeError:
        return None
    if code_root(member) is not root:
        return None
    reach = bound_reach(value, root)
    if reach is None:
        return None
    walk = _Walk()
    walk.root_module = root.__module__
    walk.root_name = root.__qualname__
    walk.accessors = _project_accessors()
    token = walk.reached(value, reach, f"parameter '{arg}'", root.__qualname__)
    return hashing.combine("self", token, walk.result().digest)


@functools.lru_cache(maxsize=1024)
def runs_on(fn: Any, arg: str) -> bool:
    """Whether parameter ``arg`` of step ``fn`` is the object a step of a class body runs on (``self``).

    Its digest may cover only the members the step reaches (``self_digest``),
    not its class's whole code, so its class's methods say nothing of why it changed.
    """
    root = _class_body_method(fn)
    return root is not None and root.__code__.co_varnames[0] == arg


def _class_body_method(fn: Any) -> types.FunctionType | None:
    """The function under ``fn`` if it was defined in a class body and takes a first argument, else None.

    Asked for every parameter of every node a build makes, so it is cached:
    almost every step is a plain function, told apart by its qualified name.
    """
    root = code_root(fn)
    if root is None:
        return None
    owner, dot, _ = root.__qualname__.rpartition(".")
    if not dot or owner.endswith("<locals>") or root.__code__.co_argcount == 0:
        return None
    return root


def _name_decorated_parts(walk: _Walk, root: types.FunctionType) -> None:
    """Under a decorator of the user's, explain the step's own code as ``<self>``, the wrapper by name.

    ``@step @timed def load`` digests ``timed``'s wrapper as the root and
    ``load`` as code it reaches, so an edit of ``load`` would read "code of
    `load` changed" and an edit of the decorator "its code changed". Only the
    explanation is swapped: the digest stays as the walk made it.
    """
    inner = root
    wrapped = getattr(inner, "__wrapped__", None)
    while isinstance(wrapped, types.FunctionType) and object_kind(wrapped)[0] == "user":
        inner, wrapped = wrapped, getattr(wrapped, "__wrapped__", None)
    if inner is root:
        return
    shown = walk.display(inner.__module__ or "", inner.__qualname__)
    if shown not in walk.parts:
        return
    del walk.parts[shown]
    walk.parts[_decorator_shown(walk, root)] = walk.parts["<self>"]
    walk.parts["<self>"] = code_digest(inner.__code__)
    for name in walk.root_closures:
        # The decorator's values (`@scaled(3)`'s k), not the step's: named so; the function it
        # wraps is the step itself (`<self>`).
        token = walk.parts.pop(name)
        value = dict(zip(root.__code__.co_freevars, root.__closure__ or ())).get(name)
        if value is not None and _unwrap(_cell_value(value)) is not inner:
            walk.parts[_closure_shown(walk, name, root, "`" + shown + "`" if shown else "the step")] = token


def _cell_value(cell: Any) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # a cell not yet filled in
        return None


def _decorator_shown(walk: _Walk, wrapper: types.FunctionType) -> str:
    """A functools.wraps wrapper shown as the decorator whose code it is (``utils.timed``, from
    ``timed.<locals>.inner`` in utils): its ``__module__`` and name are the wrapped function's."""
    module = str(wrapper.__globals__.get("__name__") or wrapper.__module__ or "")
    return walk.display(module, wrapper.__code__.co_qualname.partition(".<locals>")[0])


def _closure_shown(walk: _Walk, name: str, wrapper: types.FunctionType, of: str | None = None) -> str:
    """``closure value `k` of `tricky.double_sq` (decorator `scaled`)``: a value a decorator's wrapper holds."""
    if of is None:
        of = "`" + walk.display(wrapper.__module__ or "", wrapper.__qualname__) + "`"
    decorator = wrapper.__code__.co_qualname.partition(".<locals>")[0]
    return f"closure value `{name}` of {of} (decorator `{decorator}`)"


def code_root(fn: Any) -> types.FunctionType | None:
    """The Python function whose code ``fingerprint(fn)`` digests, or None if it cannot take ``fn``.

    ``@step`` asks this when it is applied, so that a class or another
    callable without Python code is refused there, not when a run starts.
    """
    root = _peel(fn, [])
    return root if isinstance(root, types.FunctionType) else None


def _peel(fn: Any, extras: list[tuple[str, object, object]]) -> Any:
    """``fn`` without steps, bound methods and partials around it.

    What they bind goes to ``extras``: (label, bound value, and for a bound
    method the function it binds, else None).
    """
    root = _unwrap(fn)
    while isinstance(root, (types.MethodType, functools.partial)):
        if isinstance(root, types.MethodType):
            extras.append(("bound instance", root.__self__, _unwrap(root.__func__)))
            root = _unwrap(root.__func__)
        else:
            extras.append(("partial arguments", (root.args, root.keywords), None))
            root = _unwrap(root.func)
    return root


# -- the walk --------------------------------------------------------------------------------


def _unwrap(obj: Any) -> Any:
    while _is_step(obj):
        obj = obj.__wrapped__
    return obj


def _name_in_own_module(fn: types.FunctionType, alias: str, bound_in: tuple[str, str] | None = None) -> tuple[str, str]:
    """The module and name that bind ``fn``, where the code read it as ``alias`` (``import helper as hh``).

    Shown as ``helpers.hh``, the part named a function the helpers module does
    not have. A decorator's wrapper (defined in ``decos``) is bound where the
    function it wraps was defined (``helpers.other``): that module is looked in
    too. ``bound_in`` is the module and name the code's reference resolved to
    (import lines followed), first when it binds ``fn``: a function another
    module's factory made (``add2 = make_adder(2)`` in ``ops``, the factory in
    ``utils``) is ``ops.add2``, not ``utils.add2``. ``(fn's module, alias)``
    when no module binds it otherwise.
    """
    if bound_in is not None:
        module = sys.modules.get(bound_in[0])
        if module is not None and vars(module).get(bound_in[1]) is fn:
            return bound_in
    home = fn.__module__ or ""
    places = [home]
    for cell in fn.__closure__ or ():
        try:
            held = cell.cell_contents
        except ValueError:  # a cell not yet filled in
            continue
        if isinstance(held, types.FunctionType) and held.__module__ and held.__module__ not in places:
            places.append(held.__module__)
    for place in places:
        module = sys.modules.get(place)
        found = vars(module) if module is not None else {}
        if found.get(alias) is fn:
            return place, alias
        name = next((name for name, value in found.items() if value is fn), None)
        if name is not None:
            return place, name
    return home, alias


def _binds_own_signature(fn: types.FunctionType) -> bool:
    """True when ``inspect.signature`` of ``fn`` is its own (not one ``__wrapped__`` names)."""
    return not hasattr(fn, "__wrapped__") and not hasattr(fn, "__signature__")


def _ref_text(ref: Ref) -> str:
    """The name as the code reads it (``train.BATCH``; an import by its module's text), never where it resolved."""
    root = ref.root[1] if ref.root[0] == "global" else "import " + ":".join(map(str, ref.root[1:]))
    return ".".join((root, *ref.attrs))


def _last(module_name: str) -> str:
    return module_name.rpartition(".")[2]


class _Walk:
    """One fingerprint computation: the parts found so far and the objects already seen."""

    def __init__(self) -> None:
        self.root_module: str | None = None
        self.root_name: str | None = None  # the step function's qualified name
        self.last_display: tuple[str, str, str] = ("", "", "")  # the last name ``display`` gave, and its parts
        self.seen: dict[int, object] = {}  # id -> object, kept alive so ids stay unique
        self.pairs: list[tuple[str, str]] = []
        self.parts: dict[str, str] = {}
        self.constants: dict[tuple[str, str], str] = {}  # (module name, global name) -> its digest
        self.digests: dict[int, str] = {}  # id of a function of the user's -> its digest, once walked
        self.open_containers: set[int] = set()
        self.paths: dict[tuple[str, str], tuple[str, str, str]] = {}  # see CodeFingerprint.paths
        self.filled: list[tuple[str, str, Any, str]] = []  # see CodeFingerprint.filled
        self.dynamic: set[tuple[str, str]] = set()  # see CodeFingerprint.dynamic
        self.methods: dict[str, dict[str, str]] = {}  # see CodeFingerprint.methods
        self.accessors: dict[str, list[type]] = {}  # see _project_accessors: a step's walk sets them
        self.root_closures: list[str] = []  # parts the step's own closure values are shown as
        self.functions: list[types.FunctionType] = []  # see CodeFingerprint.functions

    def result(self) -> CodeFingerprint:
        flat = [item for pair in sorted(self.pairs) for item in pair]
        return CodeFingerprint(hashing.combine(*flat), dict(sorted(self.parts.items())),
                               tuple(self.paths.values()), tuple(self.filled), tuple(sorted(self.dynamic)),
                               dict(sorted(self.methods.items())), tuple(self.functions))

    def note_paths(self, kind: str, name: str, value: Any) -> None:
        """Remember a value the code reaches that is or holds a path (the first one, for a container)."""
        found = paths_in(value)
        if found and (kind, name) not in self.paths:
            self.paths[(kind, name)] = (kind, name, found[0] if len(found) == 1 else f"{found[0]}, …")

    def add_part(self, key: str, display: str, digest: str) -> str:
        """Record a part; ``key`` (no module name) feeds the digest, ``display`` explains it.

        Returns the name the part is shown by (``display``, numbered when taken by another digest).
        """
        self.pairs.append((key, digest))
        if display in self.parts and self.parts[display] != digest:
            shown, module, name = self.last_display
            longer = f"{module}.{name}"
            if shown == display and longer != display and self.parts.get(longer, digest) == digest:
                display = longer  # `clean` of pa.utils and of pb.utils: `utils.clean`, `pb.utils.clean`
            else:
                display = f"{display} #{sum(1 for name in self.parts if name.startswith(display))}"
        self.parts[display] = digest
        return display

    def display(self, module_name: str, name: str) -> str:
        shown = name if module_name == self.root_module else f"{_last(module_name)}.{name}"
        self.last_display = (shown, module_name, name)  # for a name another part took (``add_part``)
        return shown

    def first_visit(self, obj: object) -> bool:
        if id(obj) in self.seen:
            return False
        self.seen[id(obj)] = obj
        return True

    # Structural objects --------------------------------------------------------------

    def function(
        self, fn: types.FunctionType, is_root: bool = False, alias: str | None = None,
        shown: str | None = None, bound_in: tuple[str, str] | None = None,
    ) -> None:
        """Account for a function of the user's; ``shown`` names its part instead of its own name,
        ``bound_in`` is where the code's name for it is bound (``_name_in_own_module``)."""
        if not self.first_visit(fn):
            return
        self.functions.append(fn)
        info = function_info(fn)
        where = fn.__qualname__
        tokens = [info.digest]
        # The step's own defaults are bound as parameters of every call, so they are in the key
        # as the values used: hashed here too, a changed default would re-run the calls that pass
        # their own value. Not so when the signature the call binds is another function's.
        if not (is_root and _binds_own_signature(fn)):
            defaults = fn.__defaults__ or ()
            first = fn.__code__.co_argcount - len(defaults)
            for index, value in enumerate(defaults):
                tokens.append(self.token(value, f"default value #{index + 1}", where))
                self.note_paths("default value", f"{where}.{fn.__code__.co_varnames[first + index]}", value)
            for name, value in sorted((fn.__kwdefaults__ or {}).items()):
                tokens.append(self.token(value, f"default value of parameter '{name}'", where))
                self.note_paths("default value", f"{where}.{name}", value)
        closures: list[tuple[str, str]] = []
        for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or ()):
            try:
                value = cell.cell_contents
            except ValueError:  # a cell not yet filled in
                tokens.append(f"<empty cell {name}>")
                continue
            label = f"closure variable '{name}'"
            if filled_containers.is_fillable(value):  # a memo a factory's function fills (`memo = {}`)
                tokens.append(self.fillable_token(value, f"{fn.__module__}.{fn.__qualname__}@{id(fn)}", f"<closure {name}>",
                                                  label, where))
            else:
                tokens.append(self.token(value, label, where))
            closures.append((f"<{name}>" if _is_structural(value) and not is_root else name, tokens[-1]))
            self.note_paths("closure variable", name, value)
        digest = hashing.combine(*tokens)
        self.digests[id(fn)] = digest
        if is_root:
            self.add_part("<self>", "<self>", digest)
            # Explanations only (the digest above covers them all): the body on its own, and each
            # closure value by name, so a changed closure reads "code of `factor` changed" rather
            # than "its code changed". A changed default of the step's own parameter shows as that
            # parameter (the value it is called with).
            self.parts["<self>"] = code_digest(fn.__code__)  # bytecode: without the default values
            for name, token in closures:
                if name not in self.parts:
                    self.parts[name] = token
                    self.root_closures.append(name)
        else:
            # A lambda is better known by the global name it is bound to than by "<lambda>",
            # and a decorator's wrapper (named after what it wraps) by its own code's name.
            name = shown or (alias if alias and fn.__name__ == "<lambda>" else fn.__qualname__)
            if fn.__code__.co_qualname != fn.__qualname__ and fn.__name__ != "<lambda>" and not shown:
                # A functools.wraps wrapper: named after what it wraps, its code is the decorator's.
                # Shown as the decorator (`utils.timed`), by its code alone, and each value its
                # closure holds (`@scaled(2)`'s k) apart, so an edit reads as what was edited.
                self.pairs.append((f"{name} (via {fn.__code__.co_qualname})", digest))
                self.parts[_decorator_shown(self, fn)] = info.digest
                for closure, token in closures:
                    if not closure.startswith("<"):
                        self.parts[_closure_shown(self, closure, fn)] = token
                self.follow_wrapper(fn, info, where)
                return
            # A function a factory made (`SCALE4 = make_scaler(4)`) is shown by the name the code
            # reads, not as `make_scaler.<locals>.scale`: a changed factory argument names SCALE4.
            # Shown only: its key is its qualified name, as before.
            # Shown by the name its own module has for it (not `helpers.hh` for `import helper as hh`).
            place, own = _name_in_own_module(fn, alias, bound_in) if alias else (fn.__module__ or "", alias)
            seen_as = own if own and name == fn.__qualname__ and "<locals>" in name else name
            shown_in = place if seen_as is not name else fn.__module__ or ""
            if seen_as is not name and self.display(shown_in, seen_as) in self.parts:
                # A decorator of yours without functools.wraps (`helper = deco(helper)`): the name is
                # the function it wraps, already a part; the wrapper reads as the decorator's code.
                seen_as = f"{own} (via {fn.__qualname__})"
            self.add_part(name, self.display(shown_in, seen_as), digest)
        self.follow_wrapper(fn, info, where)

    def follow_wrapper(self, fn: types.FunctionType, info: Any, where: str) -> None:
        """What a function's code reads, and the function it wraps (``__wrapped__``)."""
        wrapped = getattr(fn, "__wrapped__", None)
        if wrapped is not None:
            self.reference(wrapped, "__wrapped__", where)
        for ref in info.refs:
            self.follow(ref, fn.__globals__, where)
        if self.accessors and not self.accessors.keys().isdisjoint(info.attributes):
            self.accessors_read(info.attributes, where)

    def klass(self, cls: type) -> None:
        if not self.first_visit(cls):
            return
        digest, refs, attributes = class_info(cls)
        shown = self.add_part(cls.__qualname__, self.display(cls.__module__, cls.__qualname__), digest)
        self.methods[shown] = method_digests(cls)
        # `class Paths: TRAIN = Path("train.csv")`, read as Paths.TRAIN. Not a dataclass field's
        # default: an instance given as a parameter is what usually holds it, and counts by content.
        defaults = {f.name for f in fields(cls)} if is_dataclass(cls) else set()
        for name, value in vars(cls).items():
            if not name.startswith("__") and name not in defaults:
                self.note_paths("class attribute", self.display(cls.__module__, f"{cls.__qualname__}.{name}"), value)
        for name in computed_attributes(cls):
            self.class_value(cls, name)
        self.held_attributes(cls)
        self.class_tables(cls)
        self.set_from_outside(cls)
        for base in cls.__bases__:
            self.reference(base, "base class", cls.__qualname__)
        for owner, ref in refs:
            if isinstance(owner, types.FunctionType) and file_kind(owner.__code__.co_filename) in _LIBRARY:
                # What library code in the class reads (Enum.__new__ reads enum.Flag, 3.13's
                # dataclass __replace__ dataclasses.MISSING, scikit-learn's wrapper around a
                # transform its own helpers) is no code of the user's and changes with each
                # release; the method such a wrapper wraps is followed (class_info).
                continue
            scope = owner.__globals__ if isinstance(owner, types.FunctionType) else vars(owner)
            registers = isinstance(owner, types.FunctionType) and owner.__name__ == "__init_subclass__"
            self.follow(ref, scope, cls.__qualname__, registers)
        if "__subclasses__" in attributes:
            # `cls.__subclasses__()` in a factory (`type(self)`, `Model`: no matter which): it runs
            # a subclass no name in the code reads.
            self.subclasses(cls, cls.__qualname__)
        if self.accessors and not self.accessors.keys().isdisjoint(attributes):
            self.accessors_read(attributes, cls.__qualname__)

    def held_attributes(self, cls: type) -> None:
        """Attributes whose value the class's source does not give: they count by the value the class holds.

        A literal in the body (``K = 1``) counts by its text, unless the class in
        memory holds another value: set on it (``Cfg.K = 7`` in a cell), or its
        file edited after it was imported (a result computed with 1 was keyed as
        if made with 7, and a fresh process reused it), or ``%autoreload``. A
        class without source (defined in a notebook cell, which Python cannot
        read back) counts by its methods' bytecode: every public attribute by its
        value, so ``lr: float = 0.5`` in a cell run again re-runs its steps.

        A value the run itself changed (a counter a method increments, a memo it
        fills) is no edit: as for a module's memo (``filled_containers``), it keeps
        the digest the run's keys used while it holds what the run left. Private
        names (``_model = None`` set by a lazy loader) are state, not settings.
        """
        source = body_names(cls) is not None
        literals = literal_attributes(cls) if source else {}
        held = vars(cls)
        for name in list(literals) if source else list(held):
            value = held.get(name, _MISSING)
            if name.startswith("_") or value is _MISSING or isinstance(value, enum.Enum) \
                    or _is_structural(value) or hasattr(type(value), "__get__") or _is_logger(value) or _is_lock(value):
                continue  # an enum's members are what its body says; methods and descriptors are its code
            label = f"class attribute '{cls.__qualname__}.{name}'"
            try:
                now = self.token(value, label, cls.__qualname__)
            except UnhashableValueError:
                continue  # counts by the class's source only, as a computed one that cannot be hashed
            owner = f"{cls.__module__}:{cls.__qualname__}"
            used = filled_containers.key_digest(owner, name, value, now)
            self.filled.append((owner, name, filled_containers.Attribute(cls, name), used))
            if source and used == self.token(literals[name], label, cls.__qualname__):
                continue  # what its source says: counted by the class's text
            shown = f"{cls.__qualname__}.{name}"
            self.add_part(shown, self.display(cls.__module__, shown), used)

    def set_from_outside(self, cls: type) -> None:
        """Attributes set on the class after its body (``Scaler.SCALE = 3``, ``Scaler.twice = _twice``).

        The class's source does not show them, so each counts as what it is: a
        function by its code (``Scaler.twice``), a value by its value, one that
        cannot be hashed by nothing, as a computed class attribute. Names
        Python, ``enum`` and ``dataclasses`` keep (``__x__``, ``_x_``) and
        private values (``_x``) are left out.
        """
        inside = body_names(cls)
        if inside is None:
            return
        for name, value in vars(cls).items():
            if name in inside or (name.startswith("_") and name.endswith("_")):
                continue
            if isinstance(value, (staticmethod, classmethod)):
                value = value.__func__
            shown = f"{cls.__qualname__}.{name}"
            if isinstance(value, types.FunctionType) and object_kind(value)[0] == "user":
                self.function(value, shown=shown)
            elif _is_structural(value):
                self.reference(value, shown, cls.__qualname__)
            elif not name.startswith("_"):
                # A private value is what a library's machinery keeps on the classes it makes
                # (scikit-learn's _sklearn_auto_wrap_output_keys, abc's _abc_impl), not settings.
                self.class_value(cls, name)

    def class_tables(self, cls: type) -> None:
        """Tables of code the class's own methods read through ``cls`` or ``self`` (``cls.KINDS[kind]()``).

        A factory's ``create`` runs whichever class ``__init_subclass__``
        registered under the name it is given: every class and function such a
        table holds counts, as when code reads it by the class's name
        (``class_registry``). A method whose use of ``self`` cannot be told
        (``type(self)``) may read any of them. Most classes hold no such table,
        and cost one look at their attributes.

        An enum's own tables (``_value2member_map_``, holding its members'
        values: a ``functools.partial`` is code) are read by ``Enum.__new__``,
        copied into the class: they count as ever, shown by no part of their
        own, as its members and the class say what changed.
        """
        tables: dict[str, tuple[type, Any]] = {}
        for owner in reversed(cls.__mro__):
            for name, value in vars(owner).items():
                if type(value) in _CONTAINERS and not name.startswith("__") \
                        and object_kind(owner)[0] == "user" and _holds_code(value, set()):
                    tables[name] = (owner, value)
        if not tables:
            return
        static = {id(value.__func__) for value in vars(cls).values() if isinstance(value, staticmethod)}
        for function in class_functions(cls):
            if function.__name__ == "__init_subclass__" or id(function) in static:
                continue  # reads the table to fill it; takes no `self` or `cls`
            names = first_argument_attributes(function)
            for name in tables if names is None else names & tables.keys():
                owner, value = tables[name]
                self.table(value, f"{owner.__qualname__}.{name}", owner.__module__, cls.__qualname__,
                           shown=not (isinstance(owner, enum.EnumMeta) and _is_sunder(name)))

    def table(self, value: Any, name: str, module_name: str, where: str, shown: bool = True) -> None:
        """A class attribute holding code (a registry) as a part (``shown``, else in the digest only);
        with what cannot be hashed in it (an instance holding a connection), by the code it holds
        alone, as the class did before."""
        try:
            self.constant(value, name, module_name, where, "class attribute", shown)
        except UnhashableValueError:
            items = [*value.keys(), *value.values()] if isinstance(value, dict) else list(value)
            for item in items:
                if _is_structural(item):
                    self.reference(item, name, where)

    def class_value(self, cls: type, name: str) -> None:
        """A class attribute computed when its module was imported (``MODE = os.environ.get(...)``).

        Its value counts as a part of its own (``Cfg.MODE``), as a module
        constant's does. One that cannot be hashed (a client, a connection)
        counts by the class's source only, as before: a class attribute is
        not always read by the step, so it must not make the step fail.
        """
        value = vars(cls).get(name, _MISSING)
        if isinstance(value, enum.Enum):
            value = value.value  # a member: its class's code is the class being walked
        if value is _MISSING or _is_structural(value) or hasattr(type(value), "__get__") \
                or _is_logger(value) or _is_lock(value):
            return
        try:
            token = self.token(value, f"class attribute '{cls.__qualname__}.{name}'", cls.__qualname__)
        except UnhashableValueError:
            return
        shown = f"{cls.__qualname__}.{name}"
        self.add_part(shown, self.display(cls.__module__, shown), token)

    def module(self, module: types.ModuleType) -> None:
        """A user module used as a whole (passed around, ``getattr``, ``import *``)."""
        if not self.first_visit(module):
            return
        members = [
            (name, v)
            for name, v in vars(module).items()
            if isinstance(v, (types.FunctionType, type))
            and getattr(v, "__module__", None) == module.__name__
        ]
        codes = tuple(v.__code__ for _, v in members if isinstance(v, types.FunctionType))
        digest = module_source_digest(module, codes)
        self.add_part("<module>", f"module {_last(module.__name__)}", digest)
        for name, member in sorted(members, key=lambda item: (item[1].__qualname__, item[0])):
            # A lambda is named by its global name (`square`), as when a step reads it by name.
            alias = name if getattr(member, "__name__", None) == "<lambda>" else None
            self.reference(member, member.__qualname__, module.__name__, alias=alias)
        # What it imports from your other modules is as much its attribute (a package's __init__.py
        # re-exporting `from .features import clean`, read as getattr(src, "clean")): its text here
        # is one import line, so the code itself counts. Constants imported count by that line.
        for name, member in sorted(vars(module).items(), key=lambda item: item[0]):
            if not (name.startswith("__") and name.endswith("__")) and _imported_code(member, module.__name__):
                visited = set(self.seen)
                try:
                    self.reference(member, name, module.__name__)
                except UnhashableValueError:
                    # A default or closure value of it that cannot be hashed (a connection): it
                    # counts by its import line, as before, rather than refuse the step; what the
                    # step calls by name is walked again (and refused, as ever).
                    for key in [key for key in self.seen if key not in visited]:
                        del self.seen[key]

    def package(self, top: str) -> None:
        for key, version in package_versions(top):
            if key not in self.parts:
                self.add_part(key, key, version)

    # References ------------------------------------------------------------------------

    def follow(self, ref: Ref, scope: dict[str, Any], where: str, registers: bool = False) -> None:
        """Resolve a reference found in code and account for what it reaches.

        ``registers``: the code is a class's ``__init_subclass__``, which reads a
        registry only to fill it (see ``class_registry``).
        """
        if ref.root[0] == "global":
            name = ref.root[1]
            if name not in scope or (name.startswith("__") and name.endswith("__")):
                # A builtin, a name not defined yet (the code's own digest names it), or module
                # metadata such as __name__, which every class body reads and must not count.
                if name == "globals" and not ref.attrs:
                    self.own_module(scope, where)
                elif name == "__import__" and name not in scope:
                    self.dynamic.add(("__import__", self.display(scope.get("__name__", ""), where)))
                return
            target, owner = scope[name], scope.get("__name__", "")
        elif ref.root[0] == "own module":  # sys.modules[__name__]: as globals()
            self.own_module(scope, where)
            return
        else:
            target = _import_root(ref.root, scope)
            owner = getattr(target, "__name__", "")
            name = owner
            if target is None:
                return
        used = 0
        for attr in ref.attrs:
            if not isinstance(target, types.ModuleType) or module_kind(target) != "user":
                break
            used += 1
            owner, name = target.__name__, attr
            target = getattr(target, attr, _MISSING)
            if target is _MISSING:  # a submodule imported elsewhere, or a name the code will miss
                target = sys.modules.get(f"{owner}.{attr}", _MISSING)
            if target is _MISSING:
                return
        if target is importlib.import_module or \
                (target is importlib and ref.attrs[used:used + 1] == ("import_module",)):
            # Which module it imports is text known only when it runs: its code cannot count.
            self.dynamic.add(("importlib.import_module", self.display(scope.get("__name__", ""), where)))
        if ref.binding and isinstance(target, types.ModuleType):
            return
        if used < len(ref.attrs) and isinstance(target, type) and not registers:
            if ref.attrs[used] == "__subclasses__":
                self.subclasses(target, where)
            self.class_registry(target, ref.attrs[used], where)
        if _is_structural(target) and not isinstance(target, (types.MethodType, functools.partial)):
            token = self.placed(target, self.reference(target, name, where, alias=name,
                                                       bound_in=defined_in(owner, name)))
        else:  # a value, or a method or partial whose bound values need a part of their own
            token = self.constant(target, name, owner, where)
        # Which name of the code reached what: parts are keyed by bare names (`BATCH`, `<lambda>`), so
        # `train.BATCH` and `evaluate.BATCH` swapping values, or `LOW`/`HIGH` swapping the functions a
        # factory made, would leave the same parts under the same keys. The text read is the code's own.
        # The step itself by no name: renaming a step keeps its key.
        self.pairs.append((f"use {'<self>' if where == self.root_name else where} {_ref_text(ref)}", token))

    def class_registry(self, cls: type, attr: str, where: str) -> None:
        """A container of code that code reads from a class of yours by name (``Base.REGISTRY["rf"]``).

        A class's ``REGISTRY = {}`` counts by its text, but ``__init_subclass__``
        (or a decorator) fills it with classes and functions when their modules are
        imported, and the code that reads it runs one of them: each counts, as
        in a module-level table (``MODELS = {"rf": make_rf}``). ``__init_subclass__``
        reading it to register a class does not make every subclass count.
        """
        for owner in cls.__mro__:
            if attr in vars(owner):
                value = vars(owner)[attr]
                break
        else:
            return
        if type(value) in _CONTAINERS and object_kind(owner)[0] == "user" and _holds_code(value, set()):
            self.table(value, f"{owner.__qualname__}.{attr}", owner.__module__, where)

    def subclasses(self, cls: type, where: str) -> None:
        """The subclasses of a class of yours, at any depth, for code that reads its ``__subclasses__()``.

        A plugin lookup (``for sub in cls.__subclasses__(): if sub.name == kind``)
        runs whichever subclass its modules defined, by no name the code reads:
        each of yours counts, as those a registry holds do. A class that its
        module's name now finds another class under (a notebook cell run again,
        ``importlib.reload``) is a stale one Python has not collected yet: it
        runs nowhere, and would give the step another key until it is.
        """
        if object_kind(cls)[0] != "user":
            return  # `object.__subclasses__()`: no plugin lookup of the project's
        pending: list[type] = [cls]
        found = {id(cls)}
        while pending:
            below: list[type] = type.__subclasses__(pending.pop())
            for sub in below:
                if id(sub) in found:
                    continue  # a diamond: reached through two bases
                found.add(id(sub))
                pending.append(sub)
                if object_kind(sub)[0] == "user" and not _superseded(sub):
                    self.reference(sub, "subclass", where)

    def accessors_read(self, attributes: frozenset[str], where: str) -> None:
        """The project's pandas accessors that code reading these attribute names may run (``df.feat``).

        ``register_dataframe_accessor("feat")`` makes ``df.feat`` build the
        class it decorates: the code names the attribute, not the class. An
        accessor of yours counts for code reading an attribute of its name,
        from whatever object; other code pays a look at one dict (``function``, ``klass``).
        """
        for name in sorted(self.accessors.keys() & attributes):
            for cls in self.accessors[name]:
                self.reference(cls, f"accessor '{name}'", where)

    def own_module(self, scope: dict[str, Any], where: str) -> None:
        """The module whose globals code reads through ``globals()`` (``globals()[name](x)``), as a whole.

        Which of its names the code picks is a string known when it runs, so
        every function, class and statement of the module counts.
        """
        module = sys.modules.get(scope.get("__name__", ""))
        if module is not None and vars(module) is scope:
            self.reference(module, "globals()", where)

    def reference(self, obj: Any, name: str, where: str, alias: str | None = None,
                  bound_in: tuple[str, str] | None = None) -> str:
        """Account for a function, class, module or other callable; return a token for it.

        ``bound_in``: the module and name the code's reference resolved to, to show a function by.
        """
        obj = _unwrap(obj)
        if isinstance(obj, types.ModuleType):
            kind = module_kind(obj)
            if kind == "user":
                self.module(obj)
            elif kind == "installed":
                self.package(obj.__name__.partition(".")[0])
            return f"<module {_last(obj.__name__)}>"
        if isinstance(obj, (types.MethodType, functools.partial)):
            inner = obj.__func__ if isinstance(obj, types.MethodType) else obj.func
            bound = obj.__self__ if isinstance(obj, types.MethodType) else (obj.args, obj.keywords)
            return hashing.combine(
                self.reference(inner, name, where), self.token(bound, name, where)
            )
        if isinstance(obj, (staticmethod, classmethod)):
            return self.reference(obj.__func__, name, where)
        kind, top = object_kind(obj)
        if kind in ("installed", "stdlib") and alias is not None and not _wraps_user_code(obj):
            # Which library object a name is bound to: `Model` swapped from LogisticRegression to
            # RandomForestClassifier is the same package at the same version, but other code.
            # A ufunc (numpy.add) has a __name__ but no __qualname__.
            qualname = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) \
                or type(obj).__qualname__
            self.add_part(f"binding {alias}", alias,
                          hashing.combine("binding", _importable_name(obj), qualname))
        if kind == "installed":
            self.package(top)
        elif kind == "user" and isinstance(obj, types.FunctionType):
            self.function(obj, alias=alias, bound_in=bound_in)  # follows __wrapped__ itself, after its own part
            return f"<ref {obj.__qualname__}>"
        elif kind == "user" and isinstance(obj, type):
            self.klass(obj)
        elif _is_wrapper(obj) and object_kind(type(obj))[0] == "user":
            # A decorator that is a class of yours (`@Traced def f`, functools.update_wrapper in its
            # __init__): its __call__ runs around the function, so its code counts as the function's.
            self.klass(type(obj))
        wrapped = getattr(obj, "__wrapped__", None)
        if wrapped is not None:  # an lru_cache, a contextmanager, a library's decorator
            self.reference(wrapped, name, where)
            if isinstance(obj, types.FunctionType) and "registry" in obj.__dict__:
                self.dispatch_registry(obj, where)
        return f"<ref {getattr(obj, '__qualname__', type(obj).__qualname__)}>"

    def dispatch_registry(self, fn: types.FunctionType, where: str) -> None:
        """The implementations a ``functools.singledispatch`` function chooses from, by type.

        Calling ``describe(x)`` runs the implementation registered for
        ``type(x)`` (``@describe.register def _(x: int)``), which no name in
        the caller's code reads: each counts as code of its own
        (``describe.register(int)``), and which type picks which as one more part.
        """
        registry = fn.__dict__["registry"]
        if not isinstance(registry, types.MappingProxyType) or not callable(fn.__dict__.get("dispatch")):
            return
        owner = _unwrap(getattr(fn, "__wrapped__", fn))
        base = getattr(owner, "__qualname__", fn.__qualname__)
        module = getattr(owner, "__module__", None) or fn.__module__ or ""
        choices = []
        for cls, impl in registry.items():
            if cls is object:
                continue  # the decorated function itself: followed as __wrapped__
            kind = f"{_importable_name(cls)}.{getattr(cls, '__qualname__', repr(cls))}"
            label = f"{base}.register({getattr(cls, '__qualname__', repr(cls))})"
            inner = _unwrap(impl)
            if isinstance(inner, types.FunctionType) and object_kind(inner)[0] == "user":
                self.function(inner, shown=label)
                choices.append((kind, label))
            else:
                choices.append((kind, self.reference(impl, label, where)))
        if choices:
            flat = [item for pair in sorted(choices) for item in pair]
            self.add_part(f"{base}.register", self.display(module, f"{base}.register"),
                          hashing.combine("dispatch", *flat))

    def reached(self, obj: Any, reach: Reach, label: str, where: str) -> str:
        """Account for the class members a bound method reaches; return a token for the object's data.

        Each member counts as the code or value it is (``Trainer.helper``,
        ``Trainer.THRESHOLD``), so an edit of a member the method never
        reaches changes nothing, and a reason names the member that changed.
        """
        for member in reach.members:
            name = f"{member.owner.__qualname__}.{member.name}"
            value = member.value
            if isinstance(value, property):
                for accessor in (value.fget, value.fset, value.fdel):
                    if accessor is not None:
                        self.reference(accessor, name, where)
            elif isinstance(value, functools.cached_property):
                self.reference(value.func, name, where)
            elif _is_structural(value) or hasattr(type(value), "__get__"):
                self.reference(value, name, where)
            else:
                self.constant(value, name, member.owner.__module__, where, "class attribute")
        cls = obj if isinstance(obj, type) else type(obj)
        if reach.state is None:
            return hashing.combine("class", cls.__qualname__)
        return hashing.combine("instance", cls.__qualname__, self.token(reach.state, label, where))

    def placed(self, obj: Any, token: str) -> str:
        """``token`` of ``obj`` where a place holds it (a list's item, a dict's value, a name the code reads),
        with the digest of its code when it is a function or class of the user's.

        A part is keyed by its bare name (``<lambda>``, ``make_scaler.<locals>.scale``), so a list of
        lambdas reordered, or two functions one factory made swapped between names, leave the same
        parts: the place must say which code it holds. Not while the function's own walk is open
        (recursion), when its digest is not known yet.
        """
        obj = _unwrap(obj)
        if type(obj) is types.FunctionType:
            digest = self.digests.get(id(obj))
            return token if digest is None else hashing.combine(token, digest)
        if isinstance(obj, type) and object_kind(obj)[0] == "user":
            return hashing.combine(token, class_info(obj)[0])
        return token

    def container_token(self, value: Any, label: str, where: str) -> str:
        """A list, dict... holding functions or classes: a registry, a pipeline of helpers."""
        if id(value) in self.open_containers:
            raise UnhashableValueError(f"{label} used by '{where}' contains itself. {_FIX}")
        self.open_containers.add(id(value))
        try:
            if isinstance(value, _MAPPINGS):
                pairs = [
                    (self.placed(k, self.token(k, label, where)), self.placed(v, self.token(v, label, where)))
                    for k, v in value.items()
                ]
                tokens = [token for pair in sorted(pairs) for token in pair]
            else:
                tokens = [self.placed(item, self.token(item, label, where)) for item in value]
                if isinstance(value, (set, frozenset)):
                    tokens.sort()
        finally:  # also when an item cannot be hashed and a caller goes on without it
            self.open_containers.discard(id(value))
        return hashing.combine(type(value).__name__, *tokens)

    def constant(self, value: Any, name: str, owner: str, where: str, kind: str = "module constant",
                 shown: bool = True) -> str:
        """A value the code reads by name: a module constant, or a class attribute (``kind``); its digest.

        Not ``shown``: it counts in the digest, and no reason names it (``class_tables``).
        """
        known = self.constants.get((owner, name))
        if known is not None:
            return known
        self.constants[(owner, name)] = "<open>"  # while its value is hashed (a table holding code reading it)
        if id(value) in self.open_containers:
            # Read by code that the container itself holds, under another module's name for it
            # (`HANDLERS = {Kind.A: h_a}`, imported by the step, read again in Kind.handler): the
            # digest being made covers it; it does not contain itself.
            return "<open>"
        label = f"module-level value '{name}'"
        if kind == "module constant" and filled_containers.is_fillable(value):
            digest = self.fillable_token(value, owner, name, label, where)
        else:
            digest = self.token(value, label, where)
        # Shown by the module that defines it (`config.MIN_AGE`, where the user edits it), not by the
        # one whose `from .config import MIN_AGE` the code read it through; keyed by `name` as ever.
        if shown:
            self.add_part(name, self.display(*defined_in(owner, name)) if kind == "module constant"
                          else self.display(owner, name), digest)
        else:
            self.pairs.append((name, digest))
        self.note_paths(kind, self.display(owner, name), value)
        self.constants[(owner, name)] = digest
        return digest

    def fillable_token(self, value: Any, owner: str, name: str, label: str, where: str) -> str:
        """``token`` of a dict, list or set the code reads by name, which a run's own steps may fill.

        What it held before the last run while it holds what that run left
        (``filled_containers``): a memo is no edit. ``owner`` and ``name`` say
        where the name is bound (a module, or a function's closure).
        """
        try:
            digest = self.token(value, label, where)
        except UnhashableValueError:
            # A memo of connections or clients the run made (`_CONN["db"] = connect(...)` in a
            # helper, as _FIX advises): it counts as it was before that run while its hashable
            # contents stay what the run left. Unhashable before any run: refused as ever.
            digest = _lenient(value)
            if filled_containers.key_digest(owner, name, value, digest) == digest:
                raise
        digest = filled_containers.key_digest(owner, name, value, digest)
        self.filled.append((owner, name, value, digest))
        return digest

    def token(self, value: Any, label: str, where: str) -> str:
        """Digest of a value that code uses; functions and classes inside it are followed."""
        if _is_structural(value):
            return self.reference(value, label, where)
        if _is_logger(value):
            return "<logger>"  # a logger's name is its module's name; it never changes results
        if _is_lock(value):
            return "<lock>"  # `with LOCK:` around a shared cache: it orders work, it holds no data
        if (type(value) in _CONTAINERS and _holds_code(value, set())) or \
                (type(value) is types.MappingProxyType and _proxy_walked(value)):
            return self.container_token(value, label, where)
        self.reference(type(value), label, where)  # an instance: its class's code counts too
        try:
            digest = hashing.hash_value(value)
        except UnhashableValueError as exc:
            raise UnhashableValueError(
                f"{label} used by '{where}' cannot be hashed ({exc}). {_FIX}"
            ) from exc
        held = hashing.ufunc_function(value)
        if held is not None and object_kind(held)[0] == "user":
            # `np.frompyfunc(square, 1, 1)`: the digest holds square's code (hashing), and the walk
            # follows it as code the step uses, so a reason names `helpers.square`.
            self.reference(held, label, where)
        return digest


def value_digest(value: Any) -> str:
    """The digest ``constant`` gives a value a step reads; for a container holding what cannot be
    hashed (a connection), the digest of the rest (``_lenient``)."""
    try:
        return _Walk().token(value, "value", "")
    except UnhashableValueError:
        return _lenient(value)


def _lenient(value: Any) -> str:
    """A container's digest with each key or item that cannot be hashed counted by its type alone.

    Never a key's digest by itself: it only tells whether a memo of
    connections still holds what a run left in it (``filled_containers``).
    """
    def one(item: Any) -> str:
        try:
            return _Walk().token(item, "value", "")
        except UnhashableValueError:
            return hashing.combine("unhashable", type(item).__module__, type(item).__qualname__)

    if isinstance(value, dict):
        tokens = sorted(hashing.combine(one(k), one(v)) for k, v in value.items())
    else:
        tokens = [one(item) for item in value]
        if isinstance(value, (set, frozenset)):
            tokens.sort()
    return hashing.combine("lenient", type(value).__name__, *tokens)


def paths_in(value: Any, depth: int = 0) -> list[str]:
    """The paths a value is or holds (in a list, tuple, set, dict or dataclass, a few levels deep)."""
    if isinstance(value, PurePath):
        return [str(value)]
    if depth > 3 or isinstance(value, (str, bytes)):
        return []
    if isinstance(value, dict):
        items: Any = value.values()
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
    elif is_dataclass(value) and not isinstance(value, type):
        items = [getattr(value, f.name, None) for f in fields(value)]
    else:
        return []
    return [path for item in items for path in paths_in(item, depth + 1)]


def _import_root(root: tuple[Any, ...], scope: dict[str, Any]) -> Any:
    """The object a local ``import`` statement binds, importing it as the code would."""
    _, name, level, top_only = root
    try:
        if level:
            package = scope.get("__package__") or scope.get("__name__", "").rpartition(".")[0]
            name = importlib.util.resolve_name("." * level + name, package)
        module = sys.modules.get(name) or importlib.import_module(name)
    except (ImportError, ValueError):
        return None  # the step would fail on this import too; nothing to fingerprint
    return sys.modules.get(name.partition(".")[0]) if top_only else module


def _importable_name(obj: Any) -> str:
    """The module an object is defined in, by the name an ``import`` gives it.

    An installed module run with ``python -m pkg.mod`` is ``__main__``; its functions must
    bind as they do when ``pkg.mod`` is imported, or every step using them would re-run.
    """
    name = str(getattr(obj, "__module__", "") or "")
    if name == "__main__":
        spec = getattr(sys.modules.get(name), "__spec__", None)
        name = getattr(spec, "name", None) or name
    return name


# pandas' accessors at the last look, as (name, accessor object) on each of its classes, and what
# ``_project_accessors`` made of them: asked once per fingerprint, they rarely change.
_last_accessors: list[tuple[list[tuple[str, Any]], dict[str, list[type]]]] = [([], {})]


def _project_accessors() -> dict[str, list[type]]:
    """The names pandas has registered accessors under on ``DataFrame``, ``Series`` and ``Index``
    whose class is the project's (``{"feat": [FeatAccessor]}``); empty while pandas is not imported.

    Never imports pandas: no accessor exists before it is. pandas keeps each
    registered name in the class's ``_accessors`` and the accessor object,
    which holds the class as ``_accessor``, as the class's attribute; one
    registered again (a notebook cell run again) is a new object.
    """
    pandas = sys.modules.get("pandas")
    if pandas is None:
        return {}
    try:
        held = [(name, vars(host).get(name)) for host in (pandas.DataFrame, pandas.Series, pandas.Index)
                for name in host._accessors]
    except (AttributeError, TypeError):
        return {}  # pandas still being imported, or not as this reads it
    last, found = _last_accessors[0]
    if held == last:  # the same objects (an accessor compares by identity)
        return found
    found = {}
    for name, accessor in held:
        made = getattr(accessor, "_accessor", None)
        if isinstance(made, type) and object_kind(made)[0] == "user":
            found.setdefault(name, []).append(made)
    _last_accessors[0] = (held, found)
    return found


def _is_sunder(name: str) -> bool:
    """``_value2member_map_``: a name ``enum`` reserves for itself."""
    return len(name) > 2 and name[0] == name[-1] == "_" and name[1] != "_" and name[-2] != "_"


def _superseded(cls: type) -> bool:
    """Whether the name ``cls`` was defined under now finds another class in its module."""
    if "<locals>" in cls.__qualname__:
        return False
    found: Any = sys.modules.get(cls.__module__)
    for part in cls.__qualname__.split("."):
        try:
            found = getattr(found, part, None)
        except Exception:  # noqa: BLE001 - a module's own __getattr__ may raise anything
            return False
    return isinstance(found, type) and found is not cls


def _wraps_user_code(obj: Any) -> bool:
    """Whether ``obj`` is a library's wrapper (a contextmanager...) around the user's own function."""
    try:
        inner = inspect.unwrap(obj)
    except ValueError:  # a __wrapped__ cycle
        return False
    return inner is not obj and object_kind(inner)[0] == "user"


def _imported_code(value: Any, module_name: str) -> bool:
    """Whether a module's attribute is a function or class of yours that another module defines
    (or such a function under a decorator object: ``lru_cache``, a step)."""
    if isinstance(value, (types.FunctionType, type)):
        return getattr(value, "__module__", None) != module_name and object_kind(value)[0] == "user"
    if not (_is_wrapper(value) or _is_step(value)):
        return False
    inner = _unwrap(value)
    inner = getattr(inner, "__wrapped__", inner)
    return isinstance(inner, types.FunctionType) and object_kind(inner)[0] == "user"


def _is_structural(obj: Any) -> bool:
    """Functions, classes, modules, steps and wrappers: followed as code, not hashed as values."""
    return isinstance(obj, _STRUCTURAL) or _is_step(obj) or _is_wrapper(obj)


def _is_step(obj: Any) -> bool:
    try:
        return getattr(obj, "_is_orchestrator_step", False) is True
    except Exception:  # noqa: BLE001 - an object whose __getattr__ raises oddly is not a step
        return False


def _is_wrapper(obj: Any) -> bool:
    """A callable object wrapping a function (``functools.lru_cache``, library decorators)."""
    attributes = getattr(obj, "__dict__", None)
    return isinstance(attributes, dict) and callable(obj) and "__wrapped__" in attributes


def _is_logger(value: Any) -> bool:
    logging = sys.modules.get("logging")
    return logging is not None and isinstance(value, (logging.Logger, logging.LoggerAdapter))


# ``threading`` locks, conditions, semaphores, events and barriers: they cannot be pickled, nor need be.
_LOCKS = (type(threading.Lock()), type(threading.RLock()), threading.Condition, threading.Semaphore,
          threading.Event, threading.Barrier)


def _is_lock(value: Any) -> bool:
    return isinstance(value, _LOCKS)


_PLAIN = (str, int, float, bool, bytes, type(None))


def _proxy_walked(proxy: types.MappingProxyType[Any, Any]) -> bool:
    """Whether a ``mappingproxy`` is walked as a dict is, rather than hashed by its cloudpickle bytes.

    Its pickle names a function of yours without its code, also one held by an object in it
    (``{"ns": SimpleNamespace(f=f)}``, ``{"h": Holder(inc)}``), and cannot hold a ufunc made
    by ``np.frompyfunc`` at all: so any proxy holding more than plain values (at any depth of
    its lists, tuples and dicts) is walked, each value hashed as a dict's is. A proxy of
    plain values keeps the digest it always had.
    """
    return _holds_code(proxy, set()) or not _only_plain(proxy, set())


def _only_plain(value: Any, seen: set[int]) -> bool:
    """Whether ``value`` is plain text, numbers and None, in lists, tuples, sets and dicts (or proxies) of them."""
    if isinstance(value, _PLAIN):
        return True
    if id(value) in seen or not isinstance(value, (*_CONTAINERS, types.MappingProxyType)):
        return False
    seen.add(id(value))
    items = list(value.keys()) + list(value.values()) if isinstance(value, _MAPPINGS) else value
    return all(_only_plain(item, seen) for item in items)


def _holds_code(value: Any, seen: set[int]) -> bool:
    """Whether a built-in container (or a ``mappingproxy``) holds functions, classes or modules (at any depth)."""
    if id(value) in seen:
        return False
    seen.add(id(value))
    items = list(value.keys()) + list(value.values()) if isinstance(value, _MAPPINGS) else value
    for item in items:
        if _is_structural(item):
            return True
        if (type(item) in _CONTAINERS or type(item) is types.MappingProxyType) and _holds_code(item, seen):
            return True
    return False
