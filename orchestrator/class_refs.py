"""Pickle the user's classes that arrived by value so that they load as the live class wherever it exists.

Process and Dask workers receive the user's classes by value (cloudpickle), as
classes of a module they never imported. An output that a worker pickles would
then carry its class by value too, and another process loading it (the next
``orch run``, ``run.output()`` in a notebook, a registry or serving process)
would rebuild a second class of the same name: ``isinstance(cfg, Config)``
would be False there, and a dataclass would compare unequal to one built by
the user's own code, so results would depend on which executor produced the
cache. Such a class is written here as its module, its qualified name and the
class by value: loading takes the live class of that name where its module is
loaded, the class a task brought along in a worker, and builds the class from
its value only where neither exists.

A class of the user's own modules is written by its module, its name and its
module's file: a class pickled by reference names the module it was loaded
as, ``flow.Model`` under ``orch run pipelines/flow.py`` and
``pipelines.flow.Model`` where a notebook imports that file as part of its
package. Loading takes the class from a module this process loaded from that
file under either name (importing it again under the other name would make a
second class, and ``isinstance`` false), then imports it by its name. A
module that no longer exists there raises ``GoneUserCode``: the step that
stored the object is recomputed rather than failing every later run.
"""

from __future__ import annotations

import abc
import enum
import functools
import importlib
import importlib.util
import io
import os
import pickle
import re
import sys
import types
from collections.abc import Callable
from typing import Any, BinaryIO

import cloudpickle

# Classes that tasks brought to this worker by value, by (module, qualified name): an input
# stored by an earlier run's worker loads as the class this task's code uses.
_carried: dict[tuple[str, str], type] = {}


def dump(value: object, f: BinaryIO, buffer_callback: Callable[[pickle.PickleBuffer], Any] | None = None) -> None:
    """``cloudpickle.dump(value, f, protocol=5)``, with by-value user classes loadable as the live class.

    ``buffer_callback`` is pickle's: a buffer it returns a false value for is left out of the
    stream (out of band), for the caller to store beside it.
    """
    _Pickler(f, protocol=5, buffer_callback=buffer_callback).dump(value)


def with_qualname(obj: Any, reduced: Any) -> Any:
    """cloudpickle's ``reduced`` of a class it writes by value, rebuilt as defined: qualified name and slots kept.

    cloudpickle rebuilds such a class with its bare name: ``Outer.Inner`` became
    ``Inner`` on a worker, so its instances hashed otherwise there (another
    digest on the process pool than in ``orch run``), and loaded as a copy.
    It also makes the class before it sets ``__slots__`` on it, so the copy has
    a ``__dict__`` and no slots (``with_slots``). Anything else is returned as it is.
    """
    if (isinstance(obj, type) and isinstance(reduced, tuple) and len(reduced) >= 3
            and isinstance(reduced[2], tuple) and reduced[2] and isinstance(reduced[2][0], dict)
            and "__qualname__" not in reduced[2][0] and isinstance(obj.__qualname__, str)
            and obj.__qualname__ != obj.__name__):
        state = ({**reduced[2][0], "__qualname__": obj.__qualname__}, *reduced[2][1:])
        reduced = (*reduced[:2], state, *reduced[3:])
    return with_slots(obj, reduced)


def with_slots(obj: Any, reduced: Any) -> Any:
    """cloudpickle's ``reduced`` of a class it writes by value, made with its ``__slots__``.

    A class gets its slots only from the namespace it is made with. cloudpickle's
    copy had none: an instance a worker made (``@dataclass(slots=True)``) kept its
    fields in a ``__dict__`` and was stored so, and the class the pipeline file
    defines, which has no ``__dict__``, could not load it anywhere else. Only for a
    class that ``type`` (or ``ABCMeta``) makes: a metaclass such as ``NamedTuple``'s
    makes its own slots, and refuses them in the namespace. Anything else is
    returned as it is.
    """
    slots = vars(obj).get("__slots__") if isinstance(obj, type) else None
    if (not isinstance(slots, (str, tuple, list, dict)) or not isinstance(reduced, tuple) or len(reduced) < 2
            or reduced[0] is not _MAKE_SKELETON_CLASS or not isinstance(reduced[1], tuple) or len(reduced[1]) < 4
            or not isinstance(reduced[1][3], dict) or not _made_by_type(*reduced[1][:3])):
        return reduced
    args = (*reduced[1][:3], {**reduced[1][3], "__slots__": slots}, *reduced[1][4:])
    return (reduced[0], args, *reduced[2:])


def _made_by_type(metaclass: Any, name: str, bases: Any) -> bool:
    """Whether the class cloudpickle makes from these is made by ``type.__new__`` from its namespace."""
    try:
        made_by, _, _ = types.prepare_class(name, types.resolve_bases(bases), {"metaclass": metaclass})
    except Exception:  # noqa: BLE001 - a metaclass's __prepare__ may raise anything
        return False
    return getattr(made_by, "__new__", None) in (type.__new__, abc.ABCMeta.__new__)


# What cloudpickle's reduction of a class (not an enum) written by value calls to make it.
_MAKE_SKELETON_CLASS = getattr(cloudpickle.cloudpickle, "_make_skeleton_class", None)


class QualnamePickler(cloudpickle.Pickler):
    """cloudpickle, with the classes it writes by value rebuilt as defined (``with_qualname``), and the
    library code it writes by value kept in its library's file (``_in_its_file``)."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, types.CodeType):
            return _in_its_file(obj)
        return with_qualname(obj, super().reducer_override(obj))


def _in_its_file(code: types.CodeType) -> Any:
    """The reduction of the standard library's or an installed package's ``code``, with its file's name kept.

    cloudpickle names the file of every code object it writes by value
    ``<dynamic-code>``. The functions that ``namedtuple`` copies into the user's
    class (``_make``, ``_replace``, ``__repr__``) travel so: in a worker they
    were then no library code (``user_code.is_library_function`` judges by the
    file), and counted by their bytecode where the driver counts them by name,
    so an instance of the class had another digest on the process pool. Other
    code (the user's, ``<string>``) is left to cloudpickle: NotImplemented.
    """
    from orchestrator.user_code import file_kind

    filename = code.co_filename
    if not os.path.isabs(filename):
        return NotImplemented
    kind = file_kind(filename)
    if kind not in ("stdlib", "installed"):
        return NotImplemented
    # Not absolute, so pickling it meets this function once more and leaves it to cloudpickle.
    return _library_code, (code.replace(co_filename="<dynamic-code>"), filename, kind)


def _library_code(code: types.CodeType, filename: str, kind: str) -> types.CodeType:
    """Unpickling's side of ``_in_its_file``: ``code`` in its file, which is library code of ``kind`` here too.

    Stored objects (a class kept by value) name this function
    (``orchestrator.class_refs._library_code``) and its three arguments: keep both.
    """
    from orchestrator.user_code import note_file_kind

    note_file_kind(filename, kind)
    return code.replace(co_filename=filename)


def _by_value(cls: type) -> bytes:
    buffer = io.BytesIO()
    QualnamePickler(buffer, protocol=5).dump(cls)
    return buffer.getvalue()


class _Pickler(QualnamePickler):
    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, type):
            if _travelled_by_value(obj):
                if obj.__module__ == "__main__":  # a notebook's class, on a worker of a pool or Dask
                    return _session_class, (obj.__qualname__, _layout(obj), _by_value(obj))
                return _live_class, (obj.__module__, obj.__qualname__, _by_value(obj))
            file = _users_file(obj)
            if file is not None:
                if obj.__module__ == "__main__":  # a script's class (`python train.py`), also kept by value
                    return _script_class, (obj.__qualname__, file, _by_value(obj))
                return _user_class, (obj.__module__, obj.__qualname__, file)
            if _of_a_session(obj):
                return _session_class, (obj.__qualname__, _layout(obj), _by_value(obj))
        return super().reducer_override(obj)


def _of_a_session(cls: type) -> bool:
    """Whether ``cls`` is a class of a notebook's cells (or ``python -c``, a REPL): ``__main__`` with no file.

    cloudpickle writes it by value, and loading rebuilt a copy: after a kernel restart (or
    the class cell run again) an output loaded from the cache was no instance of the class
    the cells define, `Color.RED is Color.RED` was false, and a step that re-ran on it
    computed (and stored) another result than on the value just made. Written as a class
    that came by value, it loads as the class ``__main__`` holds by that name now, if its
    instances are laid out as the stored one's were (``_session_class``).
    """
    qualname = getattr(cls, "__qualname__", None)
    return (cls.__module__ == "__main__" and isinstance(qualname, str) and "<locals>" not in qualname
            and not isinstance(getattr(sys.modules.get("__main__"), "__file__", None), str)
            and _named("__main__", qualname) is cls)


def _users_file(cls: type) -> str | None:
    """The file of the user's module that defines ``cls`` under its name, else None (pickled as pickle does).

    Not for a class its module does not hold by that name (a function's local class).
    """
    from orchestrator.user_code import is_user_module

    module = sys.modules.get(cls.__module__)
    file = getattr(module, "__file__", None)
    if (module is None or not isinstance(file, str)
            or _named(cls.__module__, cls.__qualname__) is not cls or not is_user_module(module)):
        return None
    return _real_path(file)


class GoneUserCode(ModuleNotFoundError):
    """A stored object's class is in a module of the user's that no longer exists under its name or file."""


def _user_class(module: str, qualname: str, file: str) -> Any:
    """Unpickling's side of ``_users_file``: the class from the module loaded from ``file``, else imported.

    Stored objects name this function (``orchestrator.class_refs._user_class``)
    and its three arguments: keep both, or stores written since stop loading.
    """
    found = _named(module, qualname)
    if found is None:
        found = _loaded_from(file, qualname)  # the same file imported under another name: not a second class
    if found is not None:
        return found
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        copy = _in_a_copy(module, qualname, file)
        if copy is not None:
            return copy
        if not os.path.exists(file) and exc.name is not None and (module == exc.name or module.startswith(exc.name + ".")):
            raise GoneUserCode(f"No module named '{module}' (it was {file})", name=module) from None
        raise  # its file is there, outside this process's import path: the caller names the folder
    found = _named(module, qualname)
    if found is None:
        raise AttributeError(f"Can't get attribute '{qualname}' on <module '{module}' from '{file}'>")
    return found


def _script_class(qualname: str, file: str, by_value: bytes) -> Any:
    """Unpickling's side of a class of a script run as ``__main__`` (``python train.py``).

    Where that file is loaded as a module (``orch run train.py``, ``import train``), its
    class: a copy built from the value would make ``isinstance`` false there. Elsewhere
    (a notebook that never imported it), the copy, as cloudpickle always gave.
    Stored objects name this function and its arguments: keep them.
    """
    found = _loaded_from(file, qualname)
    return found if isinstance(found, type) else pickle.loads(by_value)


def _loaded_from(file: str, qualname: str) -> Any:
    """``qualname`` of a loaded module whose file is ``file`` (a real path), whatever the module's name; else None."""
    for name, loaded in list(sys.modules.items()):
        there = getattr(loaded, "__file__", None)
        if isinstance(there, str) and (there == file or _real_path(there) == file):
            found = _named(name, qualname)
            if found is not None:
                return found
    return None


def _in_a_copy(module: str, qualname: str, file: str) -> Any:
    """``qualname`` of the loaded module that is ``module`` under another dotted name in a copy of its project.

    A project copied or checked out elsewhere has the file at another path:
    ``flow`` stored from ``/old/proj/pipelines/flow.py`` is ``pipelines.flow``
    loaded from ``/new/proj/pipelines/flow.py``. The folders the longer dotted
    name spans must match too, so ``b/flow.py`` is not taken for ``a/flow.py``.
    None when no such module is loaded.
    """
    for name, loaded in list(sys.modules.items()):
        there = getattr(loaded, "__file__", None)
        if not isinstance(there, str) or not (name.endswith("." + module) or module.endswith("." + name)):
            continue
        depth = max(name.count("."), module.count(".")) + 1 + (os.path.basename(file) == "__init__.py")
        if _tail(there, depth) == _tail(file, depth):
            found = _named(name, qualname)
            if found is not None:
                return found
    return None


def _tail(path: str, depth: int) -> list[str]:
    return os.path.normpath(path).split(os.sep)[-depth:]


@functools.lru_cache(maxsize=4096)
def _real_path(path: str) -> str:
    """``os.path.realpath``, once per module file: a load that looks for a file walks every loaded module."""
    return os.path.realpath(path)


# Why the producer of such an object runs again, then ": `pk.est` (moved or renamed)".
GONE_CODE = "stored output needs code that is gone"


def gone_user_code(cause: BaseException | None) -> str | None:
    """The module or class of the user's that an unpickling error says is gone, or None for another failure.

    A module of a package of the user's that no longer has it (``pk.est`` moved to
    ``pk.estimators``), or a user module that no longer defines a class. A missing
    top-level module is not named: from here it cannot be told from a library
    that is not installed.
    """
    from orchestrator.user_code import is_user_module

    if isinstance(cause, GoneUserCode):
        return cause.name
    if isinstance(cause, ModuleNotFoundError) and cause.name and _gone_package_module(cause.name):
        return cause.name
    if isinstance(cause, AttributeError):
        found = _GONE_ATTRIBUTE.match(str(cause))
        if found and found["module"] in sys.modules and is_user_module(found["module"]):
            return f"{found['module']}.{found['name']}"
    return None


def _gone_package_module(module: str) -> bool:
    """Whether ``module`` is missing from a package of the user's that is importable (moved or renamed)."""
    from orchestrator.user_code import is_user_module

    if "." not in module:
        return False
    parent = module.rpartition(".")[0]
    try:
        return (importlib.util.find_spec(parent) is not None and importlib.util.find_spec(module) is None
                and is_user_module(parent))
    except (ImportError, ValueError):
        return False


_GONE_ATTRIBUTE = re.compile(r"Can't get attribute '(?P<name>[^']+)' on <module '(?P<module>[^']+)'")


def _named(module: str, qualname: str) -> Any:
    """The object called ``qualname`` in the loaded module ``module``, or None."""
    found: Any = sys.modules.get(module)
    for part in qualname.split("."):
        try:
            found = getattr(found, part, None)
        except Exception:  # noqa: BLE001 - a module's own __getattr__ may raise anything
            return None
    return found


def _travelled_by_value(cls: type) -> bool:
    """True for a class that this process cannot find by its name: one that came by value.

    A class of a function body (``<locals>``) has no name to find it by: it
    stays as cloudpickle writes it.
    """
    module, qualname = getattr(cls, "__module__", None), getattr(cls, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str) or "<locals>" in qualname:
        return False
    # Not only when its module is not loaded here: a worker may have imported the user's file
    # meanwhile (a pickle by reference does), where that name is another object than this copy.
    return _named(module, qualname) is not cls


def _session_class(qualname: str, layout: tuple[Any, ...], by_value: bytes) -> Any:
    """Unpickling's side of a class of a notebook's cells: the kernel's class of that name, if laid out alike.

    The cells run again after a restart make the same class: its outputs load as
    it, and ``isinstance`` and ``is`` hold. Cells edited since to other members or
    fields (``RED, BLUE`` where ``RED, GREEN`` was stored) make a class the stored
    state does not fit (``2 is not a valid Color``, a slot it lacks): the output
    then loads as a copy of the class it was stored with, as cloudpickle gives.
    Stored objects name this function and its arguments: keep them.
    """
    for found in (_named("__main__", qualname), _carried.get(("__main__", qualname))):  # on a worker: a task's
        if isinstance(found, type) and _layout(found) == layout:
            return found
    return pickle.loads(by_value)


def _layout(cls: type) -> tuple[Any, ...]:
    """What the stored state of an instance of ``cls`` depends on: its bases, slots, fields and enum members.

    Not its methods: an edited method is what the user wants of a class made again.
    """
    members: dict[str, Any] = dict(cls.__members__) if isinstance(cls, enum.EnumMeta) else {}
    fields = getattr(cls, "__dataclass_fields__", None) or getattr(cls, "_fields", None) \
        or [a.name for a in getattr(cls, "__attrs_attrs__", ())]
    return (
        # Each class of its bases with its own slots: a base's slot renamed leaves its subclass a slot short.
        tuple((f"{base.__module__}.{base.__qualname__}", repr(vars(base).get("__slots__"))) for base in cls.__mro__),
        tuple(fields) if isinstance(fields, (dict, tuple, list)) else (),
        tuple((name, repr(member.value)) for name, member in members.items()),
    )


def _live_class(module: str, qualname: str, by_value: bytes) -> type:
    """Unpickling's side of ``_Pickler``: the live class, the one a task brought, or the stored one.

    Stored objects name this function (``orchestrator.class_refs._live_class``) and
    its three arguments: keep both, or older stores stop loading.
    """
    found = _named(module, qualname)
    if isinstance(found, type):
        return found
    carried = _carried.get((module, qualname))
    if carried is not None:
        return carried
    if module not in sys.modules and _gone_package_module(module):
        # Its module moved: a copy of the old class would load (and `isinstance` be false) where a run
        # should recompute the step that stored it, as for a class stored by reference.
        raise GoneUserCode(f"No module named '{module}'", name=module)
    return pickle.loads(by_value)  # type: ignore[no-any-return]


def remember_classes(fn: Any) -> None:
    """Note the by-value classes that a task's step function uses by name (its globals and closure)."""
    for _ in range(8):  # a decorated function, a functools.partial or a bound method: what it wraps
        inner = getattr(fn, "__wrapped__", None) or getattr(fn, "func", None) or getattr(fn, "__func__", None)
        if inner is None or inner is fn:
            break
        fn = inner
    values = list(getattr(fn, "__globals__", {}).values())
    values += [cell.cell_contents for cell in getattr(fn, "__closure__", None) or () if _filled(cell)]
    for value in values:
        if isinstance(value, type) and _travelled_by_value(value):
            _carried[(value.__module__, value.__qualname__)] = value


def _filled(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018 - an empty cell raises
    except ValueError:
        return False
    return True
