"""Figure 6: how fast ``hash_value`` digests a large DataFrame.

The frame from ``frames.py`` is hashed as built (its text in pandas' Arrow-
backed ``str`` dtype) and with the text as an object column. The baseline is
raw XXH3-128 streamed over the same column buffers, which is the most any
content hash of this frame could do. Throughput counts the column buffers'
bytes (see ``frames.py``). This module measures; it asserts nothing about time.
"""

from __future__ import annotations

import gc
from functools import partial

import xxhash
from frames import column_buffers, make_frame, rows_for, with_object_strings
from harness import Figure, at_least, median_time, progress

from orchestrator.hashing import hash_value

NAME = "hashing"
TITLE = "hash_value of a 10M-row DataFrame (figure 6)"


def run(quick: bool) -> list[Figure]:
    rows = rows_for(quick)
    progress(f"building a {rows:,}-row frame")
    frame = make_frame(rows)
    buffers = column_buffers(frame)
    size = sum(b.nbytes for b in buffers)
    hash_value(frame.head(1000))  # first-use costs: pandas/pyarrow handlers, imports

    progress("raw xxh3 over the column buffers, 7×")
    raw = median_time(partial(_raw_xxh3, buffers), 7)
    progress("hash_value, str column, 7×")
    arrow_text = median_time(partial(hash_value, frame), 7)
    if hash_value(frame) != hash_value(frame.copy()):
        raise RuntimeError("hash_value is not stable across a copy of the frame")

    progress("hash_value, object column, 3×")
    objects = with_object_strings(frame)
    del buffers, frame
    gc.collect()
    object_text = median_time(partial(hash_value, objects), 3)
    del objects
    gc.collect()

    gb = size / 1e9
    raw_rate = gb / raw
    arrow_rate, object_rate = gb / arrow_text, gb / object_text
    what = f"{rows / 1e6:g}M rows, {size / 1e6:,.0f} MB of column buffers"
    return [
        Figure("hashing.str_gbps", "6  hash_value, frame with str (Arrow) column", arrow_rate, "GB/s",
               raw_rate, "raw xxh3", "≥ 10 GB/s", at_least(arrow_rate, 10),
               note=f"{what}; {arrow_text * 1e3:.0f} ms per hash, raw xxh3 {raw * 1e3:.0f} ms; median of 7"),
        Figure("hashing.object_gbps", "6b hash_value, same frame with object str column", object_rate, "GB/s",
               raw_rate, "raw xxh3", "≥ 2 GB/s", at_least(object_rate, 2),
               note=f"{what} (same text); {object_text * 1e3:.0f} ms per hash; median of 3"),
    ]


def _raw_xxh3(buffers: list[memoryview]) -> str:
    hasher = xxhash.xxh3_128()
    for buffer in buffers:
        hasher.update(buffer)
    return hasher.hexdigest()
