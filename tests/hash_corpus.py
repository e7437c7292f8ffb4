"""A fixed corpus of values whose digests tests/test_hashing_golden.py pins.

Each value is built the same way under every supported library version
(pandas 2.2 and 3, numpy 1.26 and 2, pyarrow 15 and later): dtypes are named
wherever a library's default inference changed between versions, so the
corpus holds equal data everywhere and its digests must be equal everywhere.
Values whose data does differ between versions (a string column pandas infers
as ``object`` under pandas 2 and ``str`` under pandas 3) are not here: their
digests differ on purpose (docs/concepts.md, "a pandas object").

Kept apart from the test module so that a script run under another
environment (an old-versions virtualenv) can compute the same corpus.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa


@dataclasses.dataclass(frozen=True)
class Settings:
    """A dataclass value: hashed by its name, its code and its fields."""

    alpha: float
    layers: tuple[int, ...]
    name: str = "base"


class Mode(enum.Enum):
    FAST = "fast"
    SLOW = "slow"


def _strings(count: int) -> list[str]:
    # 64 rows or more take the joined-text path of an object column; fewer go element by element.
    return [f"item-{i}-é" for i in range(count)]


def _frame_numeric() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "i": np.array([1, 2, 3], dtype="int64"),
            "f": np.array([0.5, np.nan, -0.0], dtype="float64"),
            "b": np.array([True, False, True]),
        }
    )


def _str_dtype() -> pd.api.extensions.ExtensionDtype:
    """pandas 3's default ``str`` dtype: the one pandas 2.2 makes under ``future.infer_string``."""
    try:
        return pd.StringDtype("pyarrow", na_value=np.nan)  # pandas 2.3 and later
    except TypeError:
        return pd.StringDtype("pyarrow_numpy")  # pandas 2.2: the same dtype, named otherwise


def _frame_tz() -> pd.DataFrame:
    # The unit is named: pandas 3 infers microseconds from text where pandas 2 used nanoseconds.
    stamps = pd.DatetimeIndex(["2024-01-01 00:00", "2024-03-31 12:30", None], tz="Europe/Paris")
    return pd.DataFrame({"t": stamps.as_unit("ns")})


def _multiindex_frame() -> pd.DataFrame:
    index = pd.MultiIndex.from_arrays(
        [pd.Index(["a", "a", "b"], dtype=object), np.array([1, 2, 1], dtype="int64")],
        names=["group", "n"],
    )
    return pd.DataFrame({"v": np.array([1.0, 2.0, 3.0])}, index=index)


def _chunked_table() -> pa.Table:
    return pa.Table.from_batches(
        [
            pa.RecordBatch.from_arrays([pa.array([1, 2], pa.int64()), pa.array(["x", None])], ["k", "s"]),
            pa.RecordBatch.from_arrays([pa.array([3], pa.int64()), pa.array(["zz"])], ["k", "s"]),
        ]
    )


def corpus(folder: Path) -> dict[str, Callable[[], Any]]:
    """Name -> a function that makes the value (a file's digest is taken of a file in ``folder``)."""
    numbers = np.arange(12, dtype="<i8").reshape(3, 4)
    return {
        # scalars
        "int 0": lambda: 0,
        "int -1": lambda: -1,
        "int 2**70": lambda: 2**70,
        "bool True": lambda: True,
        "None": lambda: None,
        "float 1.5": lambda: 1.5,
        "float 0.0": lambda: 0.0,
        "float -0.0": lambda: -0.0,
        "float nan": lambda: math.nan,
        "float inf": lambda: math.inf,
        "float -inf": lambda: -math.inf,
        "complex": lambda: complex(1.0, -2.5),
        "str empty": lambda: "",
        "str unicode": lambda: "héllo wörld ✓",
        "bytes": lambda: b"\x00\xffdata",
        # containers
        "list": lambda: [1, "a", None, 2.5],
        "tuple": lambda: (1, "a", None, 2.5),
        "nested": lambda: {"a": [1, (2, 3)], "b": {"c": {4, 5}}},
        "dict": lambda: {"x": 1, "y": [2, 3], "z": None},
        "set": lambda: {3, 1, 2},
        "frozenset": lambda: frozenset({"b", "a"}),
        "path": lambda: PurePosixPath("data/train.csv"),
        "enum": lambda: Mode.FAST,
        "dataclass": lambda: Settings(alpha=0.1, layers=(64, 32)),
        # numpy
        "np int64 2d": lambda: numbers,
        "np int64 view ::2": lambda: numbers[:, ::2],
        "np int64 fortran": lambda: np.asfortranarray(numbers),
        "np float32 nan": lambda: np.array([1.0, np.nan, -0.0, np.inf], dtype="<f4"),
        "np float64 >f8": lambda: np.array([1.0, 2.0], dtype=">f8"),
        "np bool": lambda: np.array([True, False, True]),
        "np uint8": lambda: np.arange(256, dtype=np.uint8),
        "np datetime64[ns]": lambda: np.array(["2024-01-01", "NaT"], dtype="datetime64[ns]"),
        "np structured": lambda: np.array([(1, 2.0)], dtype=[("a", "<i4"), ("b", "<f8")]),
        "np object str": lambda: np.array(_strings(70), dtype=object),
        "np float64 scalar": lambda: np.float64(2.5),
        "np int32 scalar": lambda: np.int32(-7),
        "np Generator": lambda: np.random.default_rng(7),
        "np RandomState": lambda: np.random.RandomState(7),
        # pandas
        "pd frame numeric": _frame_numeric,
        "pd frame object str": lambda: pd.DataFrame({"s": pd.Series(_strings(70), dtype=object)}),
        "pd frame object str short": lambda: pd.DataFrame({"s": pd.Series(["a", None, "c"], dtype=object)}),
        "pd frame string[python]": lambda: pd.DataFrame({"s": pd.array(["a", None, "c"], dtype="string[python]")}),
        "pd frame string[pyarrow]": lambda: pd.DataFrame({"s": pd.array(["a", None, "c"], dtype="string[pyarrow]")}),
        "pd frame arrow string": lambda: pd.DataFrame(
            {"s": pd.array(["a", None, "c"], dtype=pd.ArrowDtype(pa.string()))}
        ),
        "pd frame str": lambda: pd.DataFrame({"s": pd.array(["a", None, "c"], dtype=_str_dtype())}),
        "pd frame categorical": lambda: pd.DataFrame(
            {"c": pd.Categorical(["lo", "hi", "lo"], categories=pd.Index(["lo", "hi"], dtype=object))}
        ),
        "pd frame datetime tz": _frame_tz,
        "pd frame Int64": lambda: pd.DataFrame({"n": pd.array([1, None, 3], dtype="Int64")}),
        "pd frame multiindex": _multiindex_frame,
        "pd frame RangeIndex": lambda: pd.DataFrame({"v": [1.0, 2.0, 3.0]}),
        "pd frame int64 index": lambda: pd.DataFrame(
            {"v": [1.0, 2.0, 3.0]}, index=pd.Index([0, 1, 2], dtype="int64")
        ),
        "pd series": lambda: pd.Series(np.array([1.5, 2.5]), index=pd.Index(["a", "b"], dtype=object), name="s"),
        "pd date_range freq": lambda: pd.Series(
            np.arange(3, dtype="int64"), index=pd.date_range("2024-01-01", periods=3, freq="D", unit="ns")
        ),
        # pandas 2 makes this zone with pytz, pandas 3 with zoneinfo; the unit is named (see _frame_tz)
        "pd Timestamp tz": lambda: pd.Timestamp("2024-01-01 12:00", tz="Europe/Paris").as_unit("ns"),
        "pd NaT": lambda: pd.NaT,
        # pyarrow
        "pa table": lambda: pa.table({"k": pa.array([1, 2, 3], pa.int64()), "s": pa.array(["x", None, "zz"])}),
        "pa table chunked": _chunked_table,
        "pa table sliced": lambda: pa.table(
            {"k": pa.array([0, 1, 2, 3], pa.int64()), "s": pa.array(["w", "x", None, "zz"])}
        ).slice(1, 3),
        "pa chunked array": lambda: pa.chunked_array([pa.array([1.0, None]), pa.array([float("nan")])]),
        "pa dictionary": lambda: pa.array(["a", "b", "a"]).dictionary_encode(),
        # a file's content
        "file content": lambda: _file(folder / "data.bin", b"id,value\n1,0.5\n2,0.25\n"),
    }


@dataclasses.dataclass(frozen=True)
class FileDigest:
    """Marks a corpus entry whose digest is ``hash_file`` of the path, not ``hash_value``."""

    path: Path


def _file(path: Path, content: bytes) -> FileDigest:
    path.write_bytes(content)
    return FileDigest(path)


def digests(folder: Path) -> dict[str, str]:
    """The digest of every corpus value."""
    from orchestrator.hashing import hash_file, hash_value

    out = {}
    for name, make in corpus(folder).items():
        value = make()
        out[name] = hash_file(value.path) if isinstance(value, FileDigest) else hash_value(value)
    return out


if __name__ == "__main__":  # python -m tests.hash_corpus: the digests of this environment, as JSON
    import json
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        json.dump(digests(Path(scratch)), sys.stdout, indent=1)
