"""What a function's, class's or module's code is, and which names that code reads.

Code is digested as a normalized AST (no docstrings, no name, no decorators
on functions, no line numbers) when the file on disk still compiles to the
running bytecode, and as bytecode without line numbers or file names
otherwise. References are found in bytecode: globals and the attribute
chains read from them, local ``import`` statements and what they bind, and
for a class, the names its body reads outside its methods. Results are
cached per code object (and per class), for the life of the process.

This module must not resolve a reference to an object, import a module,
or decide whose code is the user's (``fingerprint`` and ``user_code`` do);
it must not hash values other than code, and must not import numpy, pandas
or pyarrow.
"""

from __future__ import annotations

import ast
import dis
import functools
import inspect
import sys
import textwrap
import types
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from orchestrator import ast_text, hashing

_MAX_COMPILED = 32  # module sources kept compiled for the staleness check
_ATTRIBUTE_OPS = frozenset({"LOAD_ATTR", "LOAD_METHOD"})
_TRANSPARENT_OPS = frozenset({"EXTENDED_ARG", "CACHE", "NOP"})


@dataclass(frozen=True)
class Ref:
    """A reference found in bytecode: a root, then attribute names read from it.

    ``root`` is ``("global", name)``, ``("import", module, level, top_only)``,
    or ``("own module",)`` for the module the code runs in, looked up by its
    name (``sys.modules[__name__]``: all of it, as ``globals()``). ``binding``
    marks the name bound by a local ``from m import x``, which counts only
    when it is not a module (uses of a module are followed through its
    attributes instead).
    """

    root: tuple[Any, ...]
    attrs: tuple[str, ...]
    binding: bool = False


@dataclass(frozen=True)
class CodeInfo:
    """A function's code digest, the references its code makes (sorted), and every attribute name
    it reads from anything (``df.feat``, ``cls.__subclasses__``), in nested code too."""

    digest: str
    refs: tuple[Ref, ...]
    attributes: frozenset[str] = frozenset()


# Keyed by id() with the object kept alive in the value, so an id is never reused while its
# entry exists. Code objects compare equal by content across files; identity keeps the
# source-or-bytecode decision of one function from leaking into another.
_CODE_INFO: dict[int, tuple[types.CodeType, CodeInfo]] = {}
_CLASS_INFO: dict[int, tuple[type, tuple[int, ...], str, tuple[tuple[Any, Ref], ...], frozenset[str]]] = {}
_COMPILED: dict[tuple[str, str, bool], dict[str, list[types.CodeType]]] = {}
_MODULE_DIGESTS: dict[int, tuple[types.ModuleType, tuple[types.CodeType, ...], str, str]] = {}


def function_info(fn: types.FunctionType) -> CodeInfo:
    """Digest and references of a function's code (a lambda's from its bytecode)."""
    code = fn.__code__
    cached = _CODE_INFO.get(id(code))
    if cached is not None and cached[0] is code:
        return cached[1]
    digest = None
    if code.co_name != "<lambda>":  # getsource gives a lambda's whole line: use its bytecode
        digest = _source_digest(fn, (code,), ast.FunctionDef, ast.AsyncFunctionDef)
    attributes: set[str] = set()
    refs = tuple(sorted(_scan(code, {}, attributes), key=repr))
    info = CodeInfo(digest or _code_digest(code), refs, frozenset(attributes))
    _CODE_INFO[id(code)] = (code, info)
    return info


def _scan(code: types.CodeType, local_roots: dict[str, Ref], attributes: set[str]) -> Iterator[Ref]:
    """Yield the globals, module attributes and local imports a code object reads; add every
    attribute name it reads, from whatever object, to ``attributes``."""
    local_roots = dict(local_roots)  # nested code sees the enclosing imports through cells
    chain: list[Any] | None = None  # [root ref, attribute names...] being read
    recent: list[Any] = [None, None]  # the last two constants: an import's level and fromlist
    importing: Ref | None = None  # the module of the import statement being run
    pending: Ref | None = None  # what the next STORE_* binds, during an import
    instructions = [ins for ins in dis.get_instructions(code) if ins.opname not in _TRANSPARENT_OPS]
    for index, ins in enumerate(instructions):
        op = ins.opname
        if op in _ATTRIBUTE_OPS:
            attributes.add(ins.argval)
        if chain is not None and op in _ATTRIBUTE_OPS:
            chain.append(ins.argval)
            continue
        if chain is not None:
            ref = Ref(chain[0].root, chain[0].attrs + tuple(chain[1:]))
            lookup = _own_module_lookup(ref, instructions, index)
            if lookup:
                yield Ref(("own module",), ())
            if lookup != "import":  # importlib.import_module(__name__) imports no module named at run time
                yield ref
            chain = None
        if op in ("LOAD_GLOBAL", "LOAD_NAME"):
            chain = [Ref(("global", ins.argval), ())]
        elif op.startswith("LOAD_FAST") or op in ("LOAD_DEREF", "LOAD_CLASSDEREF"):
            name = ins.argval[-1] if isinstance(ins.argval, tuple) else ins.argval
            if name in local_roots:
                chain = [local_roots[name]]
        elif op in ("LOAD_CONST", "LOAD_SMALL_INT"):
            recent = [recent[1], ins.argval]
        elif op == "IMPORT_NAME":
            level, fromlist = recent
            importing = pending = Ref(("import", ins.argval, level or 0, fromlist is None), ())
        elif op == "IMPORT_FROM" and importing is not None:
            if importing.root[3]:  # "import a.b.c as m" walks down from the top package
                pending = Ref(importing.root, (pending or importing).attrs + (ins.argval,))
            else:  # "from m import x": a binding, followed unless it is a module
                pending = Ref(importing.root, (ins.argval,))
                yield Ref(importing.root, (ins.argval,), binding=True)
        elif op == "IMPORT_STAR" and importing is not None:
            yield Ref(importing.root, ())  # every name of the module may be used
        elif op.startswith("STORE_") and pending is not None:
            local_roots[ins.argval] = pending
            pending = None
    if chain is not None:
        yield Ref(chain[0].root, chain[0].attrs + tuple(chain[1:]))
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _scan(const, local_roots, attributes)


# How code looks up the module it runs in by its name, by the last names it reads: sys.modules[__name__],
# sys.modules.get(__name__), importlib.import_module(__name__) (``from sys import modules`` too).
_OWN_MODULE_LOOKUPS = {("modules",): "lookup", ("modules", "get"): "lookup", ("import_module",): "import"}
# What takes ``__name__`` as the one key or argument: a subscript or a call (PRECALL before CALL in 3.11).
_TAKES_NAME = frozenset({"BINARY_SUBSCR", "PRECALL", "CALL"})


def _own_module_lookup(ref: Ref, instructions: list[dis.Instruction], index: int) -> str:
    """``"lookup"`` (``sys.modules``) or ``"import"`` (``importlib.import_module``) when ``ref``, read up
    to ``instructions[index]``, is given ``__name__`` alone as its key or argument; else ``""``.

    ``importlib.import_module(__name__ + ".plugins")`` is not: the name is
    more than ``__name__``, and the code imports some other module.
    """
    names = (ref.root[1], *ref.attrs) if ref.root[0] in ("global", "import") else ref.attrs
    kind = next((kind for tail, kind in _OWN_MODULE_LOOKUPS.items() if names[-len(tail):] == tail), "")
    if not kind:
        return ""
    if instructions[index].opname == "PUSH_NULL":  # 3.13 pushes it between a callable and its arguments
        index += 1
    taken = instructions[index:index + 2]
    if len(taken) < 2 or taken[0].opname not in ("LOAD_GLOBAL", "LOAD_NAME") or taken[0].argval != "__name__":
        return ""
    ends = taken[1].opname in _TAKES_NAME or (taken[1].opname == "BINARY_OP" and taken[1].argrepr == "[]")
    return kind if ends else ""


# What may follow a load of ``self`` for the load to be an attribute access and nothing else.
_SELF_ATTRIBUTE_OPS = frozenset({"LOAD_ATTR", "LOAD_METHOD", "STORE_ATTR", "DELETE_ATTR"})
_SELF_LOADS = ("LOAD_FAST", "LOAD_DEREF", "LOAD_CLASSDEREF")
_SELF_BINDS = ("STORE_FAST", "DELETE_FAST", "STORE_DEREF", "DELETE_DEREF")


def first_argument_attributes(fn: types.FunctionType) -> frozenset[str] | None:
    """The attribute names a method reads or sets on its first argument (``self.NAME``, ``cls.NAME``).

    None when the code uses that argument in any other way, so that what it
    reaches through it cannot be told from its code: passed to a call
    (``getattr(self, name)``, ``helper(self)``, ``type(self)``), returned,
    stored, operated on (``self + 1``, ``len(self)``, ``with self``), a dunder
    attribute (``self.__dict__``, ``self.__class__``), rebound, or a
    zero-argument ``super()``. Nested functions and comprehensions that
    capture it are read too. Conservative by design: a name missed here would
    be an edit that leaves a step cached on stale code.
    """
    code = fn.__code__
    if code.co_argcount == 0:
        return None  # (*args, **kwargs): the instance arrives in a tuple
    return _attributes_of(code, code.co_varnames[0])


def _attributes_of(code: types.CodeType, name: str) -> frozenset[str] | None:
    if "__class__" in code.co_freevars:
        return None  # zero-argument super(): reads the instance from the frame, by no name
    found: set[str] = set()
    instructions = [ins for ins in dis.get_instructions(code) if ins.opname not in _TRANSPARENT_OPS]
    for index, ins in enumerate(instructions):
        names = ins.argval if isinstance(ins.argval, tuple) else (ins.argval,)
        if name not in names:
            continue
        if ins.opname.startswith(_SELF_BINDS):
            return None  # `self = other`: later uses are of another object
        if ins.opname == "LOAD_CLOSURE" or ins.opname in ("MAKE_CELL", "COPY_FREE_VARS"):
            continue  # handed to a nested function, read below
        if not ins.opname.startswith(_SELF_LOADS):
            continue  # an instruction that names it otherwise (an attribute called `self`)
        following = instructions[index + 1] if index + 1 < len(instructions) else None
        if following is not None and following.opname == "COPY" and following.arg == 1 \
                and index + 2 < len(instructions):
            following = instructions[index + 2]  # `self.n += 1`: the copy is what STORE_ATTR takes
        if names[-1] != name or following is None or following.opname not in _SELF_ATTRIBUTE_OPS:
            return None
        attribute = following.argval
        if not isinstance(attribute, str) or (attribute.startswith("__") and attribute.endswith("__")):
            return None
        found.add(attribute)
    for const in code.co_consts:
        if isinstance(const, types.CodeType) and name in const.co_freevars:
            nested = _attributes_of(const, name)
            if nested is None:
                return None
            found |= nested
    return frozenset(found)


@dataclass(frozen=True)
class Change:
    """A change the code makes to a global: ``CONFIG["k"] = v`` is ``Change("CONFIG", (), "")``.

    ``attrs`` are the attributes read from the global before the change
    (``config.CONFIG.update(...)`` is ``("CONFIG",)``, the method left out),
    ``"[]"`` for an item (``CONFIG["a"].append(v)`` is ``("[]",)``);
    ``stored`` is the attribute set or deleted on what they reach
    (``SETTINGS.scale = v`` stores ``"scale"``), "" for an item or a method;
    ``rebinds`` marks ``global X; X = ...``; ``method`` names the method called.
    """

    name: str
    attrs: tuple[str, ...] = ()
    stored: str = ""
    rebinds: bool = False
    method: str = ""


# Methods that change the object they are called on, of the builtin containers and deque.
MUTATING_METHODS = frozenset({
    "update", "setdefault", "pop", "popitem", "clear", "append", "extend", "insert", "remove", "add",
    "discard", "sort", "reverse", "appendleft", "extendleft", "popleft", "difference_update",
    "intersection_update", "symmetric_difference_update", "__setitem__", "__delitem__",
})
_FLOW_ENDS = frozenset({"RETURN_VALUE", "RETURN_CONST", "RAISE_VARARGS", "RERAISE", "JUMP_FORWARD",
                        "JUMP_BACKWARD", "JUMP_BACKWARD_NO_INTERRUPT", "JUMP", "JUMP_NO_INTERRUPT"})
_CHANGES: dict[int, tuple[types.CodeType, tuple[Change, ...]]] = {}


def global_changes(code: types.CodeType) -> tuple[Change, ...]:
    """The globals a code object (and the code nested in it) changes: rebinds, or changes in place.

    In place is an item set or deleted (``X[k] = v``, ``X[a][b] += 1``,
    ``del X[k]``), an attribute set or deleted (``X.attr = v``), or a call of
    a mutating method (``X.update(...)``, ``X["a"].append(v)``). Found by
    following which stack slots hold the global through each statement's
    instructions; a value that leaves the stack (``y = X; y[k] = v``, or
    passed to a call, ``random.shuffle(X)``) is no longer followed: such a
    change is missed rather than guessed. Cached per code object.
    """
    cached = _CHANGES.get(id(code))
    if cached is not None and cached[0] is code:
        return cached[1]
    found = tuple(dict.fromkeys(_changes_in(code)))
    _CHANGES[id(code)] = (code, found)
    return found


def _changes_in(code: types.CodeType) -> Iterator[Change]:
    stack: list[Change | None] = []  # what each slot holds: a global (as the Change it would be), or None
    for ins in dis.get_instructions(code):
        op = ins.opname
        if op in _TRANSPARENT_OPS:
            continue
        top = stack[-1] if stack else None
        below = stack[-2] if len(stack) > 1 else None
        effect = dis.stack_effect(ins.opcode, ins.arg if ins.opcode >= dis.HAVE_ARGUMENT else None, jump=False)
        if op in ("STORE_GLOBAL", "DELETE_GLOBAL"):
            yield Change(ins.argval, rebinds=True)
        elif op in ("STORE_SUBSCR", "DELETE_SUBSCR") and below is not None:
            yield below
        elif op in ("STORE_ATTR", "DELETE_ATTR") and top is not None:
            yield Change(top.name, top.attrs, stored=ins.argval)
        elif op in _ATTRIBUTE_OPS and effect == 1 and top is not None and ins.argval in MUTATING_METHODS:
            # Loaded as a method to call (a plain read, `SETTINGS.sort`, may be a field of that name).
            yield Change(top.name, top.attrs, method=ins.argval)
        if op in ("LOAD_GLOBAL", "LOAD_NAME") and effect == 1:  # with a NULL (2), it is called: no value changed
            stack.append(Change(ins.argval))
        elif op in _ATTRIBUTE_OPS and effect == 0:  # a plain attribute: the global's value, further in
            stack[-1:] = [Change(top.name, (*top.attrs, ins.argval)) if top is not None else None]
        elif op == "BINARY_SUBSCR" or (op == "BINARY_OP" and ins.argrepr == "[]"):
            # An item of the global is part of its value: "[]" in its attributes says it is inside it.
            stack[-2:] = [Change(below.name, (*below.attrs, "[]")) if below is not None else None]
        elif op == "COPY":
            depth = ins.arg or 1
            stack.append(stack[-depth] if len(stack) >= depth else None)
        elif op == "SWAP":
            depth = ins.arg or 1
            if len(stack) >= depth:
                stack[-1], stack[-depth] = stack[-depth], stack[-1]
        elif op.startswith(("LOAD_", "PUSH_NULL")) and op not in _ATTRIBUTE_OPS and effect > 0:
            stack.extend([None] * effect)  # pushes only
        elif op.startswith(("STORE_", "POP_", "DELETE_")) and effect <= 0:
            del stack[len(stack) + effect:]  # pops only
        else:  # takes what it needs from the top and leaves results there: none of them is the global
            kept = max(0, len(stack) + min(effect, 0) - 1)
            stack[kept:] = [None] * (len(stack) + effect - kept if len(stack) + effect > kept else 0)
        if op in _FLOW_ENDS:
            stack = []  # what follows is reached from elsewhere, with a stack of its own
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _changes_in(const)


def _code_digest(code: types.CodeType, strict: bool = False) -> str:
    """Digest of a code object's instructions, without line numbers or its file's name.

    Instructions are read with their arguments resolved (the constant, the
    name), so a docstring, which shifts constant indices, does not count.
    Local variable names count only when ``strict``.
    """
    ops: list[tuple[str, Any]] = []
    for ins in dis.get_instructions(code):
        arg = ins.argval
        if isinstance(arg, types.CodeType):
            arg = ("<code>", _code_digest(arg, strict))
        elif not strict and (ins.opcode in dis.haslocal or ins.opcode in dis.hasfree):
            arg = ins.arg
        ops.append((ins.opname, arg))
    material: tuple[Any, ...] = (
        tuple(ops),
        len(code.co_varnames),
        code.co_argcount,
        code.co_posonlyargcount,
        code.co_kwonlyargcount,
        code.co_flags,
        code.co_exceptiontable,
    )
    if strict:
        material += (code.co_varnames, code.co_freevars, code.co_cellvars)
    return hashing.hash_value(material)


# -- source ----------------------------------------------------------------------------------


def _source_digest(obj: Any, codes: tuple[types.CodeType, ...], *node_types: type) -> str | None:
    """Digest of ``obj``'s normalized source, or None when it is missing or stale.

    ``inspect`` reads the file as it is on disk now, which may not be the code
    that runs if the file was edited after import. The source is used only if
    compiling it yields the running bytecode for every code object in
    ``codes``; otherwise the caller falls back to hashing bytecode.
    """
    try:
        lines, start = inspect.findsource(obj)
        filename = inspect.getsourcefile(obj) or inspect.getfile(obj)
    except (OSError, TypeError):
        found = _magic_cell_source(codes[0]) if isinstance(obj, types.FunctionType) and codes else None
        if found is None:
            return None
        lines, start = found
        filename = codes[0].co_filename
    if not all(_is_current(code, filename, lines) for code in codes):
        return None
    snippet = "".join(inspect.getblock(lines[start:]))
    try:
        tree = ast.parse(textwrap.dedent(snippet))
    except SyntaxError:
        return None
    if not tree.body or not isinstance(tree.body[0], node_types):
        return None
    node = tree.body[0]
    _strip_docstrings(node)
    node.name = ""  # type: ignore[attr-defined]  # renaming keeps the fingerprint
    if isinstance(node, ast.ClassDef):
        node.body = _order_free(node.body)  # moving a method up or down the class changes nothing
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        node.decorator_list = []  # decorator arguments are execution settings, not code
        # Default values count as values (the fingerprint hashes them, or a step's own are bound
        # as its parameters), not as the text that computes them.
        node.args.defaults, node.args.kw_defaults = [], []
    return hashing.hash_value(("ast", ast_text.dump(node)))


_CELLS_SEARCHED = 200  # the latest input cells of a kernel looked through for a cell magic's source


def _magic_cell_source(code: types.CodeType) -> tuple[list[str], int] | None:
    """The lines of the IPython cell whose cell magic compiled ``code``, and the line its block starts at; else None.

    ``%%time`` compiles its cell as ``<timed exec>`` (``%%prun`` as ``<string>``), text that
    ``linecache`` never holds: a step in such a cell had no source and counted by its bytecode,
    so adding or taking off ``%%time`` re-ran it ("its code changed"), and its key was not the
    one the same code has in a plain cell or a file. The kernel's input history holds the cell:
    the newest cell with a cell magic whose body compiles to this very code is its source.
    """
    get_ipython = getattr(sys.modules.get("IPython"), "get_ipython", None)
    shell = get_ipython() if callable(get_ipython) else None
    cells = getattr(getattr(shell, "history_manager", None), "input_hist_raw", None)
    if not isinstance(cells, list):
        return None
    wanted = _code_digest(code, strict=True)
    for cell in reversed(cells[-_CELLS_SEARCHED:]):
        if not isinstance(cell, str) or not cell.startswith("%%"):
            continue
        try:
            body = shell.transform_cell(cell.partition("\n")[2])  # type: ignore[union-attr]  # `!ls`, `%env` lines
        except Exception:  # noqa: BLE001 - IPython's transformers may raise anything on a cell they cannot read
            continue
        for whole in (True, False):
            for compiled in _compiled(body, code.co_filename, whole).get(code.co_qualname, ()):
                if _code_digest(compiled, strict=True) == wanted:
                    return body.splitlines(keepends=True), compiled.co_firstlineno - 1
    return None


def _strip_docstrings(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(getattr(first.value, "value", None), str):
                node.body = node.body[1:] or [ast.Pass()]


def _is_current(code: types.CodeType, filename: str, lines: list[str]) -> bool:
    """Whether ``code`` was compiled from ``lines`` as they are now (so its source may stand for it).

    Compiled whole, as a module is; failing that, one top-level statement at a time, as IPython
    runs a notebook cell: Python 3.11 compiles ``np.log1p(x)`` differently when the ``import numpy
    as np`` is in the same compilation, so a step sharing a cell with its import looked stale,
    counted by its bytecode, and had other keys than the same code run with ``orch run``.
    """
    source = "".join(lines)
    wanted = _code_digest(code, strict=True)
    for whole in (True, False):
        compiled = _compiled(source, filename, whole)
        if any(_code_digest(c, strict=True) == wanted for c in compiled.get(code.co_qualname, ())):
            return True
    return False


def _compiled(source: str, filename: str, whole: bool) -> dict[str, list[types.CodeType]]:
    """The code objects of ``source`` by qualified name, compiled whole or statement by statement (cached)."""
    key = (filename, hashing.hash_value(source), whole)
    compiled = _COMPILED.get(key)
    if compiled is None:
        compiled = {}
        try:
            if whole:
                _index_code(compile(source, filename, "exec", dont_inherit=True), compiled)
            else:
                for statement in ast.parse(source, filename).body:
                    _index_code(compile(ast.Module([statement], type_ignores=[]), filename, "exec",
                                        dont_inherit=True), compiled)
        except (SyntaxError, ValueError):
            pass
        if len(_COMPILED) >= _MAX_COMPILED:
            _COMPILED.pop(next(iter(_COMPILED)))
        _COMPILED[key] = compiled
    return compiled


def _index_code(code: types.CodeType, into: dict[str, list[types.CodeType]]) -> None:
    into.setdefault(code.co_qualname, []).append(code)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _index_code(const, into)


def _class_body_names(cls: type) -> list[tuple[str, tuple[str, ...]]]:
    """Names a class body reads outside its methods' bodies (bases, attributes, defaults), with
    the attributes read from each (``("config", ("SCALE",))`` for ``lr = config.SCALE * 0.1``).

    Methods' own reads come from their bytecode; this covers what only the
    class body evaluates, such as ``scale = DEFAULT_SCALE`` or ``def f(x=LIMIT)``.
    The attributes matter for a module: ``config.SCALE`` counts that constant,
    where ``config`` alone would count the whole module, so that editing any
    setting in it re-ran the steps using the class.
    """
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError, SyntaxError):
        return []
    names: set[tuple[str, tuple[str, ...]]] = set()
    pending: list[ast.AST] = [tree.body[0]] if tree.body else []
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            pending.extend(node.args.defaults + [d for d in node.args.kw_defaults if d])
            pending.extend(getattr(node, "decorator_list", []))
            continue
        if isinstance(node, ast.Attribute):
            attrs: list[str] = []
            inner: ast.AST = node
            while isinstance(inner, ast.Attribute):
                attrs.append(inner.attr)
                inner = inner.value
            if isinstance(inner, ast.Name) and isinstance(inner.ctx, ast.Load):
                names.add((inner.id, tuple(reversed(attrs))))
                continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            names.add((node.id, ()))
        pending.extend(ast.iter_child_nodes(node))
    return sorted(names)


_COMPUTED: dict[int, tuple[type, tuple[str, ...], frozenset[str] | None, dict[str, Any]]] = {}


def computed_attributes(cls: type) -> tuple[str, ...]:
    """Names a class body assigns from code rather than from a literal (``MODE = os.environ.get(...)``).

    The class's source says what a literal attribute holds (``LR = 0.1``),
    but not what ``os.environ``, a file or a function call gave when the
    module was imported: those values must count by themselves. Empty when
    the source cannot be read. Cached per class.
    """
    return _class_body(cls)[0]


def body_names(cls: type) -> frozenset[str] | None:
    """Every name a class body binds (attributes, methods, nested classes), or None without its source.

    An attribute of the class that is not among them was set from outside
    (``Scaler.SCALE = 3``, ``Scaler.twice = _twice`` after the class), where
    the class's source does not show it. Cached per class.
    """
    return _class_body(cls)[1]


def literal_attributes(cls: type) -> dict[str, Any]:
    """The class body's attributes assigned an immutable literal (``K = 1``, ``NAME = "base"``), with that value.

    The class counts by its source, where such an attribute counts by its
    text; the class in memory may hold another value (``Cfg.K = 7`` set in a
    cell, a file edited after the class was imported, ``%autoreload``), which
    must then count by itself. Empty without the source. Cached per class.
    """
    return _class_body(cls)[2]


_IMMUTABLE_LITERALS = (int, float, complex, str, bytes, bool, type(None), tuple, frozenset)


def _class_body(cls: type) -> tuple[tuple[str, ...], frozenset[str] | None, dict[str, Any]]:
    cached = _COMPUTED.get(id(cls))
    if cached is not None and cached[0] is cls:
        return cached[1], cached[2], cached[3]
    names: list[str] = []
    literals: dict[str, Any] = {}
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError, SyntaxError):
        tree = None
    body = tree.body[0] if tree is not None and tree.body else None
    bound: set[str] = set()
    for node in body.body if isinstance(body, ast.ClassDef) else []:
        bound.update(_bound_by(node))
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        if _is_literal(value):
            held = ast.literal_eval(value)
            if isinstance(held, _IMMUTABLE_LITERALS):
                literals.update((t.id, held) for t in targets if isinstance(t, ast.Name))
            continue  # its text is its value
        if _is_new_container(value):
            continue  # its text is its value
        for target in targets:
            names.extend(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
    found = tuple(dict.fromkeys(names))
    frozen = frozenset(bound) if isinstance(body, ast.ClassDef) else None
    _COMPUTED[id(cls)] = (cls, found, frozen, literals)
    return found, frozen, literals


def _bound_by(statement: ast.stmt) -> set[str]:
    """Names one statement of a class body binds, not looking into the functions and classes it defines."""
    found: set[str] = set()
    pending: list[ast.AST] = [statement]
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.add(node.name)
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            found.add(node.id)
        elif isinstance(node, ast.alias):
            found.add((node.asname or node.name).partition(".")[0])
        pending.extend(ast.iter_child_nodes(node))
    return found


def _is_literal(node: ast.expr) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


# Containers a class makes empty and fills as it runs (``_cache = defaultdict(list)``).
_CONTAINERS = frozenset({"dict", "list", "set", "defaultdict", "OrderedDict", "deque", "Counter",
                         "WeakValueDictionary", "WeakKeyDictionary", "WeakSet"})


def _is_new_container(node: ast.expr) -> bool:
    """``dict()``, ``defaultdict(list)``, ``collections.deque(maxlen=10)``: an empty container.

    Its text says what it held when the class was made; hashed by value, a
    cache the class fills would give the steps using it a new key at every
    run of a notebook's long-lived process.
    """
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
    arguments = [*node.args, *(keyword.value for keyword in node.keywords)]
    return name in _CONTAINERS and all(isinstance(a, ast.Name) or _is_literal(a) for a in arguments)


# -- classes ---------------------------------------------------------------------------------


def _class_functions(cls: type) -> list[types.FunctionType]:
    """Functions defined in a class body: methods, static/class methods, property accessors."""
    found: list[Any] = []
    for value in vars(cls).values():
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if isinstance(value, property):
            found.extend(
                f for f in (value.fget, value.fset, value.fdel) if isinstance(f, types.FunctionType)
            )
        elif isinstance(value, functools.cached_property):
            found.append(value.func)
        elif isinstance(value, types.FunctionType):
            found.append(value)
        else:
            held = _held_in_body(cls, value)
            if held is not None:
                found.append(held)
    return found


def _held_in_body(cls: type, value: Any) -> types.FunctionType | None:
    """A function written in the class body that a ``functools.partial`` or ``partialmethod`` holds.

    ``tr = partialmethod(lambda self, x: square(x))``, or ``staticmethod(partial(lambda x: ...))``:
    the lambda is the class's code, and what it reads (``square``) must count as a method's reads
    do. A named function such a wrapper holds (``partialmethod(square)``) is read by name in the
    body and followed from there, so only a function whose qualified name is inside the class counts.
    """
    for _ in range(4):  # staticmethod(partial(partial(...))): a few layers at most
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        elif isinstance(value, (functools.partial, functools.partialmethod)):
            value = value.func
        else:
            break
    if isinstance(value, types.FunctionType) and value.__qualname__.startswith(f"{cls.__qualname__}."):
        return value
    return None


def class_info(cls: type) -> tuple[str, tuple[tuple[Any, Ref], ...], frozenset[str]]:
    """(digest of the class's code, references with the globals each resolves in, attribute names
    its functions read from anything: ``cls.__subclasses__``)."""
    functions = _class_functions(cls)
    key = tuple(id(f.__code__) for f in functions)
    cached = _CLASS_INFO.get(id(cls))
    if cached is not None and cached[0] is cls and cached[1] == key:
        return cached[2], cached[3], cached[4]
    module = sys.modules.get(cls.__module__)
    # Methods a decorator generated (dataclass's __init__...) have no source to check.
    own = [f for f in functions if f.__code__.co_filename == getattr(module, "__file__", None)]
    digest = _source_digest(cls, tuple(f.__code__ for f in own), ast.ClassDef)
    if digest is None:
        digest = hashing.hash_value(
            sorted((f.__qualname__, _code_digest(f.__code__)) for f in functions)
        )
    refs: list[tuple[Any, Ref]] = []
    attributes: set[str] = set()
    for f in functions:
        reading = [f]
        inner = _unwrapped(f)
        if inner is not f:
            # A method under a decorator (a library's, such as scikit-learn's around `transform`):
            # what the method itself reads counts, not only what the wrapper reads.
            reading.append(inner)
        # A method under a decorator without functools.wraps (`@timed def run`): the wrapper
        # holds the method in its closure, and what the method reads counts as well.
        reading.extend(closure_functions(f))
        for function in reading:
            info = function_info(function)
            refs.extend((function, ref) for ref in info.refs)
            attributes |= info.attributes
    if module is not None:
        refs.extend((module, Ref(("global", name), attrs)) for name, attrs in _class_body_names(cls))
    _CLASS_INFO[id(cls)] = (cls, key, digest, tuple(refs), frozenset(attributes))
    return digest, tuple(refs), frozenset(attributes)


def method_digests(cls: type) -> dict[str, str]:
    """Each function of a class body by the name the class binds it to (a property's setter as
    ``name.setter``), with the digest of its code: which method an edit of the class changed, for a
    reason to name. The class's own digest (``class_info``) is what a key counts."""
    out: dict[str, str] = {}
    for name, value in vars(cls).items():
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if isinstance(value, property):
            accessors = [(name, value.fget), (f"{name}.setter", value.fset), (f"{name}.deleter", value.fdel)]
        elif isinstance(value, functools.cached_property):
            accessors = [(name, value.func)]
        else:
            accessors = [(name, value)]
        for shown, function in accessors:
            if isinstance(function, types.FunctionType):
                out[shown] = function_info(function).digest
    return out


def closure_functions(function: types.FunctionType) -> list[types.FunctionType]:
    """The functions a function's closure holds (a decorator's wrapper holds the function it wraps)."""
    found = []
    for cell in function.__closure__ or ():
        try:
            value = cell.cell_contents
        except ValueError:  # a cell not yet filled in
            continue
        if isinstance(value, types.FunctionType) and value is not function:
            found.append(value)
    return found


def _unwrapped(function: types.FunctionType) -> types.FunctionType:
    """The function at the end of a chain of ``functools.wraps`` wrappers, or ``function`` itself."""
    try:
        inner = inspect.unwrap(function)
    except ValueError:  # a wrapper that wraps itself
        return function
    return inner if isinstance(inner, types.FunctionType) else function


# -- modules ---------------------------------------------------------------------------------


def module_source_digest(module: types.ModuleType, codes: tuple[types.CodeType, ...]) -> str:
    """Digest of a whole module's source, or of ``codes`` when that source is missing or stale.

    Only the codes compiled from the module's own file tell whether its source
    is current: a function of it under a decorator from another module (a
    ``functools.wraps`` wrapper, which takes the wrapped function's
    ``__module__``) has its code in that module's file. Top-level ``def`` and
    ``class`` statements count in name order, so reordering the functions of a
    file keeps the digest; the other statements (constants, ``partial(...)``,
    ``if``...) count where they are, since their order can change what a
    name is bound to.
    """
    try:
        lines, _ = inspect.findsource(module)
        filename = inspect.getsourcefile(module) or ""
    except (OSError, TypeError):
        return _codes_digest(codes)
    source = hashing.hash_value("".join(lines))
    cached = _MODULE_DIGESTS.get(id(module))
    # Asked at every build for each step that uses the module whole: the same source and the
    # same running code give the same digest, without parsing the file again.
    if cached is not None and cached[0] is module and cached[2] == source \
            and len(cached[1]) == len(codes) and all(a is b for a, b in zip(cached[1], codes)):
        return cached[3]
    digest = None
    own = [code for code in codes if code.co_filename == getattr(module, "__file__", None)]
    if all(_is_current(code, filename, lines) for code in own):
        try:
            tree = ast.parse("".join(lines))
        except SyntaxError:
            tree = None
        if tree is not None:
            _strip_docstrings(tree)
            digest = hashing.hash_value(("ast", *_module_statements(tree)))
    digest = digest or _codes_digest(codes)
    _MODULE_DIGESTS[id(module)] = (module, codes, source, digest)
    return digest


def _codes_digest(codes: tuple[types.CodeType, ...]) -> str:
    return hashing.hash_value(sorted(_code_digest(code) for code in codes))


_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _module_statements(tree: ast.Module) -> list[str]:
    """A module's top-level statements as text, its definitions in name order (``_order_free``)."""
    return [ast_text.dump(node) for node in _order_free(tree.body)]


def _order_free(body: list[ast.stmt]) -> list[ast.stmt]:
    """``body`` with its ``def`` and ``class`` statements first, sorted by name, then the rest in order.

    Moving a function up or down a file or a class body changes nothing it
    binds. It does when a name is bound twice (a second ``def`` of it, a
    ``@x.setter``, ``f = staticmethod(f)``, an import of the same name): the
    later binding wins, so such a body keeps its order.
    """
    definitions = [node for node in body if isinstance(node, _DEFINITIONS)]
    rest = [node for node in body if not isinstance(node, _DEFINITIONS)]
    names = [node.name for node in definitions]
    if len(set(names)) < len(names):
        return body
    bound: set[str] = set()
    for node in (inner for statement in rest for inner in ast.walk(statement)):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            bound.add(node.id)
        elif isinstance(node, _DEFINITIONS):  # a def under an `if` or a `try`
            bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((alias.asname or alias.name).partition(".")[0] for alias in node.names)
    if bound & set(names):
        return body
    return sorted(definitions, key=lambda node: node.name) + rest
