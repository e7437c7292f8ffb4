"""Figure 7: writing and loading a large DataFrame through ``ArtifactStore``, against raw pyarrow.

Figure 7d: the memory it takes to load a pickled value holding large arrays (a
dict of X and y, as a step returns it), in a fresh process, beside
``pickle.load`` of the same value from a file.

The store's put (Arrow IPC into a temporary file, header, fsync, atomic
publish) and get (memory map, checksum, decode) are timed beside raw pyarrow
doing the same I/O in the same run: ``pa.Table.from_pandas``, an IPC file
write and an fsync; then ``pa.memory_map``, ``read_all`` and ``to_pandas``.
The digest is computed beforehand (figure 6 times hashing). Files are read
back right after being written, so both loads come from the page cache.
Each repetition uses a fresh store; the first, full-size one is a warm-up and
checks that both round trips give the frame back. This module measures; it
asserts nothing about time.
"""

from __future__ import annotations

import gc
import json
import os
import pickle
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from frames import frame_bytes, make_frame, rows_for
from harness import Figure, at_least, format_number, progress, temp_dir, timed

from orchestrator.hashing import hash_value
from orchestrator.store import ArtifactStore

NAME = "store"
TITLE = "ArtifactStore put/get of a 10M-row DataFrame vs raw pyarrow (figure 7)"

REPEAT = 3
TARGET = 0.7


def run(quick: bool) -> list[Figure]:
    rows = rows_for(quick)
    progress(f"building a {rows:,}-row frame")
    frame = make_frame(rows)
    size = frame_bytes(frame)
    digest = hash_value(frame)
    times: dict[str, list[float]] = {"put": [], "get": [], "raw_put": [], "raw_get": []}
    with temp_dir(NAME) as root:
        _round_trips(frame.head(1000), hash_value(frame.head(1000)), root / "warm-up-small", {})
        progress(f"1 warm-up and {REPEAT} timed round trips each way, alternating")
        for rep in range(REPEAT + 1):
            timings: dict[str, list[float]] = {k: [] for k in times}
            _round_trips(frame, digest, root / f"rep-{rep}", timings, raw_first=rep % 2 == 1,
                         check=rep == 0)
            if rep > 0:
                for key, values in timings.items():
                    times[key] += values
    del frame
    gc.collect()

    gb = size / 1e9
    med = {key: statistics.median(values) for key, values in times.items()}
    trip = statistics.median(p + g for p, g in zip(times["put"], times["get"]))
    raw_trip = statistics.median(p + g for p, g in zip(times["raw_put"], times["raw_get"]))
    what = f"{rows / 1e6:g}M rows, {size / 1e6:,.0f} MB of column buffers; median of {REPEAT}"
    figures = []
    for key, label, own, raw, raw_label in (
        ("store.put_gbps", "7  ArtifactStore.put (fsync)", med["put"], med["raw_put"],
         "from_pandas + IPC write + fsync"),
        ("store.get_gbps", "7b ArtifactStore.get", med["get"], med["raw_get"],
         "memory_map + read_all + to_pandas"),
        ("store.round_trip_gbps", "7c put + get", trip, raw_trip, "raw write + read"),
    ):
        rate, raw_rate = gb / own, gb / raw
        share = rate / raw_rate
        figures.append(Figure(
            key, label, rate, "GB/s", raw_rate, raw_label, f"≥ {TARGET:.0%} of raw", at_least(share, TARGET),
            shown=f"{format_number(rate)} GB/s = {share:.0%} of raw",
            note=f"{what}; {own * 1e3:.0f} ms vs raw {raw * 1e3:.0f} ms"))
    figures.append(_pickled_load_memory(quick))
    return figures


PICKLED_MB, PICKLED_MB_QUICK = 800, 80

# The peak is VmHWM, reset first: ru_maxrss would start from the benchmark's own size, which a
# forked child inherits across exec.
_LOAD_CHILD = """
import json, pickle, sys, time
import numpy, pandas
from orchestrator.store import ArtifactStore

def status(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))

with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
before = status("VmRSS")
start = time.perf_counter()
if sys.argv[1] == "store":
    store = ArtifactStore(sys.argv[2])
    value = store.get(store.read_header(sys.argv[3]))
else:
    with open(sys.argv[2], "rb") as f:
        value = pickle.load(f)
seconds = time.perf_counter() - start
print(json.dumps({"growth_mb": (status("VmHWM") - before) / 1024,
                  "seconds": seconds}))
"""


def _pickled_load_memory(quick: bool) -> Figure:
    """Peak memory growth of loading a pickled dict of arrays: the store against pickle.load of a file."""
    megabytes = PICKLED_MB_QUICK if quick else PICKLED_MB
    rows = megabytes * 1_000_000 // 8 // 11  # X: ten float columns, y: one int column
    progress(f"pickled dict of arrays ({megabytes} MB): peak memory of a load, in fresh processes")
    rng = np.random.default_rng(7)
    value = {"X": rng.random((rows, 10)), "y": rng.integers(0, 2, rows), "columns": [f"f{i}" for i in range(10)]}
    digest = hash_value(value)
    with temp_dir(NAME) as root:
        store = ArtifactStore(root / "store")
        info = store.put(value, digest)
        plain = root / "value.pkl"
        with open(plain, "wb") as f:
            pickle.dump(value, f, protocol=5)
        size = os.path.getsize(plain) / 1e6
        del value
        gc.collect()
        own, raw = [], []
        for _ in range(3):  # alternating, so that both read the files from the page cache alike
            own.append(_child_load("store", str(root / "store"), digest))
            raw.append(_child_load("pickle", str(plain)))
    growth = statistics.median(r["growth_mb"] for r in own)
    base = statistics.median(r["growth_mb"] for r in raw)
    return Figure(
        "store.pickled_load_growth_mb", "7d ArtifactStore.get of a pickled dict of arrays: peak RSS growth",
        growth, "MB", base, "pickle.load of the same value from a file",
        note=f"{size:,.0f} MB pickled ({info.materializer}, {len(info.meta.get('buffers', []))} buffers mapped); "
             f"median of 3 fresh processes; {statistics.median(r['seconds'] for r in own) * 1e3:.0f} ms vs "
             f"{statistics.median(r['seconds'] for r in raw) * 1e3:.0f} ms per load")


def _child_load(*args: str) -> dict[str, float]:
    child = subprocess.run([sys.executable, "-c", _LOAD_CHILD, *args], capture_output=True, text=True, check=False,
                           env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    if child.returncode != 0:
        raise RuntimeError(f"loading in a child process failed: {child.stderr.strip()[-500:]}")
    return json.loads(child.stdout)  # type: ignore[no-any-return]


def _round_trips(frame: pd.DataFrame, digest: str, folder: Path, times: dict[str, list[float]], *,
                 raw_first: bool = False, check: bool = False) -> None:
    """One store round trip and one raw pyarrow round trip of ``frame``, each on fresh files."""
    folder.mkdir(parents=True)
    store = ArtifactStore(folder / "store", fsync=True)
    path = folder / "raw.arrow"
    loaded: dict[str, Any] = {}

    def store_trip() -> None:
        info = None

        def put() -> None:
            nonlocal info
            info = store.put(frame, digest)

        _record(times, "put", timed(put))
        _record(times, "get", timed(lambda: loaded.__setitem__("store", store.get(info))))  # type: ignore[arg-type]

    def raw_trip() -> None:
        _record(times, "raw_put", timed(lambda: _raw_write(frame, path)))
        _record(times, "raw_get", timed(lambda: loaded.__setitem__("raw", _raw_read(path))))

    for trip in (raw_trip, store_trip) if raw_first else (store_trip, raw_trip):
        # Earlier files' writeback (and the last rep's deletion) must not land inside a timed fsync.
        os.sync()
        trip()
    if check:
        for name, value in loaded.items():
            if not frame.equals(value) or list(frame.dtypes) != list(value.dtypes):
                raise RuntimeError(f"the {name} round trip did not give the frame back")
    loaded.clear()
    gc.collect()
    shutil.rmtree(folder)


def _record(times: dict[str, list[float]], key: str, seconds: float) -> None:
    times.setdefault(key, []).append(seconds)


def _raw_write(frame: pd.DataFrame, path: Path) -> None:
    table = pa.Table.from_pandas(frame)
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _raw_read(path: Path) -> pd.DataFrame:
    with pa.memory_map(str(path)) as source:
        table = pa.ipc.open_file(source).read_all()
    return table.to_pandas()
