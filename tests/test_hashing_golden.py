"""Golden digests: the hashes of a fixed corpus, and the cache keys of a fixed pipeline, written out.

Every user's cache is keyed by these digests. A refactor of ``hashing``,
``hashing_tables``, ``value_code`` or ``fingerprint`` that changes one of them
makes every cache that holds such a value miss after an upgrade, and a
library upgrade or another machine that changes one breaks the promise that
the same code, parameters and data hash the same anywhere. Both must be
deliberate: these tests fail until the literal here is changed too.

The same literals hold under the oldest supported libraries (pandas 2.2,
numpy 1.26, pyarrow 15) and the newest (pandas 3, numpy 2, pyarrow 26):
``python -m tests.hash_corpus`` prints the corpus' digests for comparing
two environments.
"""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path

import pytest

from orchestrator import dag as dag_module
from orchestrator.hashing import hash_value
from tests.hash_corpus import corpus, digests

CHANGED = (
    "the digest of {what} changed: every cache keyed by such a value misses after this upgrade. "
    "If that is deliberate, update the digest here, add a row to the table of hashing changes in "
    "docs/store.md (what gets new keys, and why), and bump orchestrator.dag.KEY_FORMAT "
    "(now {key_format!r}) if an old digest could now name other data. If it is not, a refactor "
    "changed the encoding: find what changed and restore it."
)

EXPECTED = {
    "int 0": "8e7ba4744620b77b6c623212875f97ee",
    "int -1": "a1e91c5d6860d32b80e47451797bd70d",
    "int 2**70": "b9394b5a865cadbcadb4302bd323c6f1",
    "bool True": "1d33c0bd3511c80d20948828081ddcb4",
    "None": "626d368fe0e74b4f1a038927df1311d6",
    "float 1.5": "770487274eba5d21f254a1028442cd27",
    "float 0.0": "116d0d22cc8173ec5f6531dcc0133311",
    "float -0.0": "f6b43928ce5e5192820ab6b29963bd6b",
    "float nan": "1420def684ff33195e46be79eb2f1aac",
    "float inf": "7a8db524dbae2e094b793d59b1f88687",
    "float -inf": "0e68520cd115b3bf7c117c4c592ff7ab",
    "complex": "21679acf4b7d76d144734d05673db97b",
    "str empty": "85fefc6f12f345b396720846b631026c",
    "str unicode": "5633c2bdb659194ed86f8753ca5a366e",
    "bytes": "c42454ba054861404b7c3d92ed04aa2c",
    "list": "bf81fa4dda2593e63420727230307319",
    "tuple": "416f26104195a13335d9f7aaf84c7694",
    "nested": "2b008dd3ab19d2f6b6175ab09a59545b",
    "dict": "58a2457182d10f10235ba79b0b89befe",
    "set": "9e6a2f9ce7e3de478341946c195486a7",
    "frozenset": "e2177b30f2366440863820031f29db30",
    "path": "fbac3ebda6cba08c3e971e8dc2f6115a",
    "enum": "60d5ee8f343d4cad5672eb2323350d70",
    "np int64 2d": "7bfd9819da992368555efe94205b4fdb",
    "np int64 view ::2": "991c5c709d2be5a069b7257f7d9631dc",
    "np int64 fortran": "7bfd9819da992368555efe94205b4fdb",
    "np float32 nan": "1a8fc8fc5e056402e6c1dc78aebdaeb6",
    "np float64 >f8": "42aae9ae4a5cf92a98c6f7ca469266cc",
    "np bool": "81c8ac3fd68b73d5ada7905a431830d3",
    "np uint8": "c0e6d82cd3580521288a0e0dd1e9d80c",
    "np datetime64[ns]": "61790132c610f4d911b44fbc61375aa8",
    "np structured": "1ee84b30a8aea0a5b5fe3b9fec24f567",
    "np object str": "8bcbdf1ed2cb7fe2a1327fb21ef1e440",
    "np float64 scalar": "13d277ce16e4cb8fefd2e399ebf5c948",
    "np int32 scalar": "5a3678020e27c96aee93ddb32ae82601",
    "np Generator": "e724f0f42653e3a23aa5d22e22da5ac5",
    "np RandomState": "23f83645fbb6b2df65acb7091c2b07f4",
    "pd frame numeric": "85433687339932ccc30dec2544ba3252",
    "pd frame object str": "4b044db009716453e98416938aaf4231",
    "pd frame object str short": "dc708e3b5fa93095e022ec7915a95759",
    "pd frame string[python]": "c31227367f8ca11f94fcf9a53966308b",
    "pd frame string[pyarrow]": "710d8d41b6d5b9e91a1b0e987cda8db0",
    "pd frame arrow string": "f79cc55a06ff091d3032b414a236410e",
    "pd frame str": "fb91fe9a619ac1465d7e6ed6693b3442",
    "pd frame categorical": "dbcd5cbf4e78774255ba981f2b6487cc",
    "pd frame datetime tz": "1309845311b100eab95d5603e51b6d77",
    "pd frame Int64": "c8f3ea009ce7a3ca7e2c406798aa73b9",
    "pd frame multiindex": "2b1f7f148ffab2266e1966f9fd8f5554",
    "pd frame RangeIndex": "40bf49590deec7ebb2835f076455d188",
    "pd frame int64 index": "04f4ebef9a2d5ce9f4931acbe7132ae3",
    "pd series": "4775f7b39c1176da84bd763853238efc",
    "pd date_range freq": "276d2327728bdf731627b6fa9dc84016",
    "pd Timestamp tz": "2d85589cf39bda7f0762cd4f34a7a806",
    "pd NaT": "7c7271af0b2a148a6a7b9a2e6575aa08",
    "pa table": "0ee1b77073097171c2a4d19a2982d92f",
    "pa table chunked": "0ee1b77073097171c2a4d19a2982d92f",
    "pa table sliced": "0ee1b77073097171c2a4d19a2982d92f",
    "pa chunked array": "6953561fd3d873f4ccdbbb0173c1099d",
    "pa dictionary": "6f5aeca00ffd49b40f2bcc323228f765",
    "file content": "7b149fc95ecf989283c7d48b19dc3c67",
}


# A value of the user's own class carries its code's digest, read from bytecode (docs/concepts.md,
# "Values that are your code"), which each Python minor release compiles differently.
EXPECTED_BY_PYTHON = {
    "dataclass": {
        (3, 11): "0703a2622dd48063beda4ee1098069e5",
        (3, 12): "03043296280bb2d360fa34ac8794e76e",
        (3, 13): "c02aaa0da2c719102a6ac9b34d43bfec",
    },
}


@pytest.fixture(scope="module")
def computed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return digests(tmp_path_factory.mktemp("corpus"))


def test_the_corpus_is_pinned_whole(tmp_path: Path) -> None:
    # A value added to the corpus without its digest here would go unchecked.
    assert set(corpus(tmp_path)) == set(EXPECTED) | set(EXPECTED_BY_PYTHON)


@pytest.mark.parametrize("name", list(EXPECTED_BY_PYTHON))
def test_golden_digest_of_code_values(computed: dict[str, str], name: str) -> None:
    expected = EXPECTED_BY_PYTHON[name].get(sys.version_info[:2])
    if expected is None:
        pytest.skip(f"no digest of {name!r} pinned for Python {sys.version_info[0]}.{sys.version_info[1]}")
    assert computed[name] == expected, CHANGED.format(
        what=f"the corpus value {name!r} (tests/hash_corpus.py)", key_format=dag_module.KEY_FORMAT
    )


@pytest.mark.parametrize("name", list(EXPECTED))
def test_golden_digest(computed: dict[str, str], name: str) -> None:
    assert computed[name] == EXPECTED[name], CHANGED.format(
        what=f"the corpus value {name!r} (tests/hash_corpus.py)", key_format=dag_module.KEY_FORMAT
    )


def test_equal_values_share_the_pinned_digests() -> None:
    # The rules the literals above encode, said once more as equalities a refactor must keep.
    assert EXPECTED["np int64 fortran"] == EXPECTED["np int64 2d"]  # memory order is storage
    assert EXPECTED["pa table chunked"] == EXPECTED["pa table"] == EXPECTED["pa table sliced"]
    assert EXPECTED["float -0.0"] != EXPECTED["float 0.0"]
    assert EXPECTED["pd frame RangeIndex"] != EXPECTED["pd frame int64 index"]  # the index type is data
    assert EXPECTED["list"] != EXPECTED["tuple"]
    # Insertion order never counts.
    assert hash_value({"z": None, "y": [2, 3], "x": 1}) == EXPECTED["dict"]
    assert hash_value({2, 3, 1}) == EXPECTED["set"]


# -- cache keys --------------------------------------------------------------------------------

# A pipeline whose step code, parameters and input are fixed: its keys may change only deliberately.
PIPELINE_SOURCE = '''
import dataclasses
import enum

from orchestrator import pipeline, step

SCALE = 3


class Kind(enum.Enum):
    SUM = "sum"
    MAX = "max"


@dataclasses.dataclass(frozen=True)
class Limits:
    top: int = 100


def scaled(x):
    return x * SCALE


@step
def load(n: int) -> list:
    """Docstrings and comments are not in the key."""
    return [scaled(i) for i in range(n)]


@step
def reduce(values: list, kind: Kind = Kind.SUM) -> int:
    return min(sum(values) if kind is Kind.SUM else max(values), Limits().top)


@pipeline
def golden(n: int = 4):
    return reduce(load(n), kind=Kind.MAX)
'''

EXPECTED_KEYS = {
    "load code": "ce2e211548347eedb061623c0b788a52",
    "load key": "def5a39c398a963632ce93188c4b5640",
    "reduce code": "8b35b7b711ac865a1859bc0eba9a9128",
    "reduce key": "cda80068e5ab7170a3670f1bad8520df",
}


@pytest.fixture
def golden_pipeline(tmp_path: Path):
    (tmp_path / "golden_keys.py").write_text(textwrap.dedent(PIPELINE_SOURCE).lstrip())
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module("golden_keys").golden
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("golden_keys", None)


def test_golden_cache_keys(golden_pipeline, tmp_path: Path) -> None:
    run = golden_pipeline.run(tmp_path / "store")
    assert run.steps["reduce"].output() == 9
    built = golden_pipeline.build()
    found = {
        "load code": built.nodes["load"].code.digest,
        "load key": run.steps["load"].key,
        "reduce code": built.nodes["reduce"].code.digest,
        "reduce key": run.steps["reduce"].key,
    }
    # The input of reduce is load's output, by its content digest.
    assert run.steps["load"].outputs == {"out": hash_value([0, 3, 6, 9])}
    for what, digest in found.items():
        assert digest == EXPECTED_KEYS[what], CHANGED.format(
            what=f"the {what} of the golden pipeline", key_format=dag_module.KEY_FORMAT
        )
