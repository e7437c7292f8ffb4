"""The DataFrame that figures 6 and 7 hash and store, and the raw buffers it is made of.

Ten million rows (one million with ``--quick``): an int64 id, two float64
columns, an int32 count and a text column in pandas 3's default ``str`` dtype
(Arrow-backed ``large_string``: an int64 offsets buffer and a UTF-8 data
buffer). "Bytes" in every throughput figure are the sum of these column
buffers, strings' offsets and data included; the object-dtype variant holds
the same text, so it is credited with the same bytes. This module only builds
data; it times nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

ROWS, ROWS_QUICK = 10_000_000, 1_000_000
VOCABULARY = 100_000


def rows_for(quick: bool) -> int:
    return ROWS_QUICK if quick else ROWS


def make_frame(rows: int) -> pd.DataFrame:
    """Numeric columns plus an Arrow-backed ``str`` column of 10-15 character names."""
    rng = np.random.default_rng(42)
    words = pa.array([f"customer-{k}" for k in range(VOCABULARY)], pa.large_string())
    names = words.take(pa.array(rng.integers(0, VOCABULARY, rows)))
    frame = pd.DataFrame({
        "id": np.arange(rows, dtype=np.int64),
        "amount": rng.random(rows) * 1000,
        "score": rng.standard_normal(rows),
        "count": rng.integers(0, 1 << 20, rows, dtype=np.int32),
        "name": pd.array(names, dtype="str"),
    })
    if str(frame["name"].dtype) != "str":
        raise RuntimeError(f"expected pandas' Arrow-backed str dtype, got {frame['name'].dtype}")
    return frame


def with_object_strings(frame: pd.DataFrame) -> pd.DataFrame:
    """The same frame with its text as an object column of Python ``str``."""
    return frame.astype({"name": object})


def column_buffers(frame: pd.DataFrame) -> list[Any]:
    """The raw bytes of every column: numeric arrays, then each string's offsets and data."""
    buffers: list[Any] = []
    for _, column in frame.items():
        if column.dtype.kind in "iuf":
            buffers.append(memoryview(column.to_numpy()).cast("B"))
            continue
        arrow = column.array.__arrow_array__()  # zero-copy: the column's own Arrow data
        for chunk in getattr(arrow, "chunks", [arrow]):
            width = 8 if pa.types.is_large_string(chunk.type) else 4
            _, offsets, data = chunk.buffers()
            start = chunk.offset * width
            ends = np.frombuffer(offsets, dtype=np.int64 if width == 8 else np.int32,
                                 count=len(chunk) + 1, offset=start)
            buffers.append(memoryview(offsets)[start : start + (len(chunk) + 1) * width])
            buffers.append(memoryview(data)[int(ends[0]) : int(ends[-1])])
    return buffers


def frame_bytes(frame: pd.DataFrame) -> int:
    return sum(buffer.nbytes for buffer in column_buffers(frame))
