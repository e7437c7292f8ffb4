"""Code held where the walk used to miss it: a ``mappingproxy``, a numpy ufunc made by
``frompyfunc``, a lambda inside a ``partial`` or ``partialmethod`` of a class body.

Each case edits the helper such a value holds and checks that the step's
digest changes (it used to stay cached on the old helper), and that a table
of plain values keeps the digest it had.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator import hashing
from orchestrator.fingerprint import CodeFingerprint, fingerprint
from tests.test_fingerprint import Loader

HELPERS = '''
import functools
import types

import numpy as np


def square(x):
    return x * x


OPS = types.MappingProxyType({"sq": square})
LAMBDAS = types.MappingProxyType({"sq": lambda x: square(x)})
NESTED = [types.MappingProxyType({"sq": square})]
PLAIN = types.MappingProxyType({"a": 1, "b": "two"})
UF = np.frompyfunc(square, 1, 1)
IN_NAMESPACE = types.MappingProxyType({"ns": types.SimpleNamespace(f=square)})
UF_IN_PROXY = types.MappingProxyType({"u": np.frompyfunc(square, 1, 1)})


class Box:
    def __init__(self, fn):
        self.fn = fn


IN_OBJECT = types.MappingProxyType({"h": Box(square)})


class Holder:
    tr = functools.partialmethod(lambda self, x: square(x))
    st = staticmethod(functools.partial(lambda x: square(x)))
    pp = functools.partialmethod(functools.partial(lambda self, x: square(x)))
'''

STEPS = '''
import numpy as np

from fph_helpers import IN_NAMESPACE, IN_OBJECT, LAMBDAS, NESTED, OPS, PLAIN, UF, UF_IN_PROXY, Holder


def proxy():
    return float(OPS["sq"](3.0))


def proxy_lambda():
    return float(LAMBDAS["sq"](3.0))


def nested_proxy():
    return float(NESTED[0]["sq"](3.0))


def plain_proxy():
    return PLAIN["a"]


def proxy_namespace():
    return float(IN_NAMESPACE["ns"].f(3.0))


def proxy_object():
    return float(IN_OBJECT["h"].fn(3.0))


def proxy_ufunc():
    return float(UF_IN_PROXY["u"](3.0))


def ufunc():
    return float(UF(np.array([3.0]))[0])


def partialmethod_lambda():
    return Holder().tr(3.0)


def staticmethod_partial_lambda():
    return Holder.st(3.0)


def partialmethod_partial_lambda():
    return Holder().pp(3.0)
'''

FILES = {"fph_helpers.py": HELPERS, "fph_steps.py": STEPS}
CUBED = {**FILES, "fph_helpers.py": HELPERS.replace("return x * x", "return x * x * x")}


@pytest.fixture
def load(tmp_path: Path) -> Iterator[Loader]:
    loader = Loader(tmp_path)
    yield loader
    loader.close()


def fp(load: Loader, files: dict[str, str], name: str) -> CodeFingerprint:
    return fingerprint(getattr(load(files, "fph_steps"), name))


@pytest.mark.parametrize("name", ["proxy_namespace", "proxy_object", "proxy_ufunc"])
def test_a_helper_an_object_in_a_proxy_holds_counts_and_a_ufunc_there_hashes(load: Loader, name: str) -> None:
    """`MappingProxyType({"ns": SimpleNamespace(f=f)})` stayed cached after `f` was edited (the proxy's pickle
    names `f` without its code), and one holding a frompyfunc ufunc could not be hashed at all."""
    assert fp(load, FILES, name).digest != fp(load, CUBED, name).digest


@pytest.mark.parametrize("name", [
    "proxy", "proxy_lambda", "nested_proxy", "ufunc",
    "partialmethod_lambda", "staticmethod_partial_lambda", "partialmethod_partial_lambda",
])
def test_editing_a_helper_held_out_of_sight_changes_the_digest(load: Loader, name: str) -> None:
    before = fp(load, FILES, name)
    after = fp(load, CUBED, name)
    assert before.digest != after.digest
    assert "fph_helpers.square" in before.parts
    assert before.parts["fph_helpers.square"] != after.parts["fph_helpers.square"]


PINNED = '''
import functools
import types

import numpy as np


def square(x):
    return x * x


PLAIN = types.MappingProxyType({"a": 1, "b": "two"})
ADD = np.add
VEC = np.vectorize(square)


class Holder:
    named = functools.partialmethod(square)
    bare = lambda self, x: square(x)  # noqa: E731


def plain_proxy():
    return PLAIN["a"]


def library_ufunc():
    return float(ADD(1.0, 2.0))


def vectorized():
    return float(VEC(3.0))


def partialmethod_named():
    return Holder().named()


def bare_lambda():
    return Holder().bare(3.0)
'''

# Digests these steps had before the fixes above: code they covered correctly keeps its keys.
PINNED_DIGESTS = {
    "plain_proxy": "ad9c11a0296b6b294f60c3c4bed58b5a",
    "library_ufunc": "a66131846180e66c328bc3f2148203ee",
    "vectorized": "3c0397d9ef90068802ec45d7dbb55e9c",
    "partialmethod_named": "5ee02f8fe6aa206c4adfa89095ad834b",
    "bare_lambda": "549e692c556f713f8a5912688354a75e",
}


@pytest.mark.parametrize("name", sorted(PINNED_DIGESTS))
def test_what_was_covered_already_keeps_its_digest(load: Loader, name: str) -> None:
    assert fingerprint(getattr(load({"fph_pinned.py": PINNED}, "fph_pinned"), name)).digest == PINNED_DIGESTS[name]


def test_a_ufunc_of_a_helper_passed_as_a_value_counts_the_helper(load: Loader) -> None:
    """``hashing`` follows the function a ``frompyfunc`` ufunc holds, as it does ``np.vectorize``'s."""
    before = hashing.hash_value(load(FILES, "fph_helpers").UF)
    after = hashing.hash_value(load(CUBED, "fph_helpers").UF)
    assert before != after
