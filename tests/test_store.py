"""Tests for orchestrator.store: atomic, verified, content-addressed objects."""

from __future__ import annotations

import errno
import gc
import io
import json
import multiprocessing
import os
import pickle
import re
import signal
import struct
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, BinaryIO, cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from orchestrator import serialize
from orchestrator.errors import CorruptArtifactError, MissingArtifactError, StoreError
from orchestrator.store import INLINE_MAX, MAGIC, ArtifactInfo, ArtifactStore

ROOT = Path(__file__).resolve().parent.parent
D1, D2, D3 = "1" * 32, "2" * 32, "3" * 32


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "store")


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []


def big_frame(rows: int = 20_000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": rng.random(rows),
            "y": rng.random(rows),
            "n": rng.integers(0, 1 << 40, rows),
            "s": pd.Series(rng.integers(0, 1000, rows)).astype(str),
        }
    )


def payload_offset(path: Path) -> int:
    magic, _, offset = struct.unpack("<8sII", path.read_bytes()[:16])
    assert magic == MAGIC
    return offset


def flip_byte(path: Path, position: int) -> None:
    data = bytearray(path.read_bytes())
    data[position] ^= 0xFF
    path.write_bytes(bytes(data))


# --- round trips ---------------------------------------------------------------


SMALL = {
    "int": 3,
    "dict": {"a": [1, 2.5, None]},
    "tuple": (1, "x"),
    "array": np.arange(5),
    "frame": pd.DataFrame({"a": [1, 2]}),
    "none": None,
}


@pytest.mark.parametrize("value", SMALL.values(), ids=SMALL.keys())
def test_small_values_are_inline_and_write_no_file(store: ArtifactStore, value: object) -> None:
    info = store.put(value, D1)
    assert info.inline is not None and len(info.inline) == info.size <= INLINE_MAX
    assert files_under(store.root) == []
    assert not store.has(D1)
    out = store.get(info)
    if isinstance(value, pd.DataFrame):
        pd.testing.assert_frame_equal(out, value)
    elif isinstance(value, np.ndarray):
        np.testing.assert_array_equal(out, value)
    else:
        assert out == value


LARGE = {
    "frame": big_frame(),
    "series": pd.Series(np.arange(10_000.0), name="v"),
    "table": pa.table({"a": np.arange(10_000), "b": [str(i) for i in range(10_000)]}),
    "array": np.arange(100_000, dtype="int32").reshape(100, -1),
    "json": list(range(5_000)),
    "pickle": {i: str(i) for i in range(5_000)},
}


@pytest.mark.parametrize("value", LARGE.values(), ids=LARGE.keys())
def test_large_values_round_trip_through_a_file(store: ArtifactStore, value: object) -> None:
    info = store.put(value, D1)
    assert info.inline is None and info.size > INLINE_MAX
    assert store.has(D1)
    assert files_under(store.root) == [store.path_of(D1)]
    assert store.path_of(D1) == store.root / "objects" / D1[:2] / D1
    assert payload_offset(store.path_of(D1)) % 64 == 0
    out = store.get(info)
    if isinstance(value, pd.DataFrame):
        pd.testing.assert_frame_equal(out, value, check_exact=True)
    elif isinstance(value, pd.Series):
        pd.testing.assert_series_equal(out, value, check_exact=True)
    elif isinstance(value, pa.Table):
        assert out.equals(value)
    elif isinstance(value, np.ndarray):
        np.testing.assert_array_equal(out, value)
    else:
        assert out == value


def _computed_nan(rows: int) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.zeros(rows) / np.zeros(rows)  # sign bit set on x86, unlike np.nan


SAME_DIGEST = {
    # Arrow keeps NaN as null and gives back np.nan: the loaded column's NaN has other bits.
    "frame-computed-nan": pd.DataFrame({"ratio": _computed_nan(10_000), "n": np.arange(10_000)}),
    "series-computed-nan": pd.Series(_computed_nan(3), name="r"),
    "aligned-records": np.full(
        5_000 * 16, 0xAB, dtype=np.uint8
    ).view(np.dtype([("a", "i1"), ("b", "f8")], align=True)),
}


@pytest.mark.parametrize("value", SAME_DIGEST.values(), ids=SAME_DIGEST.keys())
def test_loaded_value_has_the_stored_digest(store: ArtifactStore, value: object) -> None:
    from orchestrator.hashing import hash_value

    digest = hash_value(value)
    assert hash_value(store.get(store.put(value, digest))) == digest


def test_info_describes_the_value(store: ArtifactStore) -> None:
    df = big_frame()
    info = store.put(df, D1)
    assert info.digest == D1
    assert info.materializer == "arrow.pandas"
    assert info.type_name == "pandas.DataFrame"
    assert info.meta["rows"] == len(df) and info.meta["columns"] == ["x", "y", "n", "s"]
    assert info.meta["dtypes"]["n"] == "int64"
    assert len(info.checksum) == 32 and int(info.checksum, 16) >= 0
    assert store.put(3, D2).type_name == "int"
    assert store.put(np.zeros(3), D3).type_name == "numpy.ndarray"


def test_inline_limit_is_inclusive(store: ArtifactStore) -> None:
    at_limit = "x" * (INLINE_MAX - 2)  # JSON adds two quotes
    assert store.put(at_limit, D1).inline is not None
    over = store.put(at_limit + "y", D2)
    assert over.inline is None and over.size == INLINE_MAX + 1
    assert store.get(over) == at_limit + "y"


def test_info_is_picklable_and_json_able(store: ArtifactStore) -> None:
    for info in (store.put(big_frame(), D1), store.put({"a": 1}, D2)):
        assert pickle.loads(pickle.dumps(info)) == info
        assert ArtifactInfo.from_dict(json.loads(json.dumps(info.to_dict()))) == info
    assert isinstance(store.put({"a": 1}, D2).to_dict()["inline"], str)


def test_malformed_info_dict_is_rejected(store: ArtifactStore) -> None:
    d = store.put({"a": 1}, D1).to_dict()
    with pytest.raises(StoreError, match="'checksum' is missing"):
        ArtifactInfo.from_dict({k: v for k, v in d.items() if k != "checksum"})
    with pytest.raises(StoreError, match="bad inline bytes"):
        ArtifactInfo.from_dict({**d, "inline": "not base64!"})


def test_inline_info_with_meta_none_still_loads(store: ArtifactStore) -> None:
    info = store.put([1, 2], D1)
    record = ArtifactInfo(**{**info.to_dict(), "meta": None, "inline": info.inline})  # type: ignore[arg-type]
    assert store.get(record) == [1, 2]


def test_unpicklable_value_names_its_type_and_leaves_no_temp(store: ArtifactStore) -> None:
    import threading

    with pytest.raises(
        StoreError,
        match="cannot store a value of type list with materializer 'pickle': .*cannot pickle '_thread.lock'",
    ):
        store.put([threading.Lock()] * 2000, D1)
    assert files_under(store.root) == []


class _FullDisk(io.FileIO):
    """A file on a disk that fills up after ``room`` bytes: every later write, flush included, fails."""

    room = 2 * INLINE_MAX

    def write(self, data: Any) -> int:
        if self.tell() + len(memoryview(data)) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(data)


def test_a_full_disk_leaves_no_partial_temp_file(store: ArtifactStore, monkeypatch) -> None:
    """The buffered bytes fail again when the file is closed: the temp file must go all the same,
    or the partial object keeps the disk full and the run cannot even record its failure."""
    def open_temp() -> tuple[Path, BinaryIO]:
        (store.root / "tmp").mkdir(parents=True, exist_ok=True)
        path = store.root / "tmp" / f"{os.getpid()}-{'0' * 16}.tmp"
        f = io.BufferedWriter(_FullDisk(path, "w"), buffer_size=1 << 20)
        return path, cast(BinaryIO, f)

    monkeypatch.setattr(store, "_open_temp", open_temp)
    wide = pd.DataFrame({f"c{i}": np.arange(20_000) for i in range(60)})  # many buffered writes
    with pytest.raises(StoreError, match="No space left on device"):
        store.put(wide, D1)
    assert files_under(store.root) == []


def test_a_full_disk_says_so_with_the_free_space_and_how_to_resume(store: ArtifactStore, monkeypatch) -> None:
    """'No space left on device' alone left a user to find what fills the disk and whether a re-run starts over."""
    def open_temp() -> tuple[Path, BinaryIO]:
        (store.root / "tmp").mkdir(parents=True, exist_ok=True)
        path = store.root / "tmp" / f"{os.getpid()}-{'0' * 16}.tmp"
        return path, cast(BinaryIO, io.BufferedWriter(_FullDisk(path, "w"), buffer_size=1 << 20))

    monkeypatch.setattr(store, "_open_temp", open_temp)
    with pytest.raises(StoreError) as caught:
        store.put(pd.DataFrame({f"c{i}": np.arange(20_000) for i in range(60)}), D1)
    message = str(caught.value)
    assert "No space left on device" in message and "\n" not in message
    assert re.search(r"the disk holding the store is full \(\d+\.\d MB free\)", message), message
    assert "`orch cache du`" in message and "`orch cache gc --keep-last N`" in message
    assert "the steps that finished are cached" in message


def test_the_free_space_a_full_disk_error_gives_counts_the_space_the_failed_object_took(store: ArtifactStore,
                                                                                        monkeypatch) -> None:
    """A rename that failed for space said '0.0 MB free' while its own temp file still held the space."""
    import shutil

    from orchestrator import store_faults

    seen: list[list[Path]] = []

    def usage(path: str) -> Any:
        seen.append(files_under(store.root / "tmp"))
        return shutil._ntuple_diskusage(100, 100 - 5_000_000, 5_000_000)  # type: ignore[attr-defined]

    monkeypatch.setattr("orchestrator.store.shutil.disk_usage", usage)
    store_faults.inject_fault("rename:1")
    try:
        with pytest.raises(StoreError, match=r"is full \(5\.0 MB free\)"):
            store.put(pd.DataFrame({"a": np.arange(20_000)}), D1)
    finally:
        store_faults.inject_fault(None)
    assert seen == [[]]


def test_arrow_failure_falls_back_to_pickle(store: ArtifactStore) -> None:
    # Lone surrogates pass the object-column check but Arrow cannot encode them.
    df = pd.DataFrame({"o": pd.Series(["\udc80", "a"] * 3000, dtype=object)})
    info = store.put(df, D1)
    assert info.materializer == "pickle"
    pd.testing.assert_frame_equal(store.get(info), df, check_exact=True)
    assert files_under(store.root / "tmp") == []


def test_wide_frame_header_larger_than_its_room(store: ArtifactStore) -> None:
    df = pd.DataFrame({f"feature_{i:04d}_with_a_long_name": [i] * 20 for i in range(300)})
    info = store.put(df, D1)
    assert len(json.dumps(info.meta)) > 4096
    assert payload_offset(store.path_of(D1)) > 4096
    assert payload_offset(store.path_of(D1)) % 64 == 0
    assert store.verify(D1) is None
    pd.testing.assert_frame_equal(store.get(info), df)
    assert files_under(store.root / "tmp") == []


def test_object_file_describes_itself(store: ArtifactStore) -> None:
    info = store.put(big_frame(), D1)
    raw = store.path_of(D1).read_bytes()
    magic, header_len, offset = struct.unpack("<8sII", raw[:16])
    assert magic == b"ORCHOBJ1"
    header = json.loads(raw[16 : 16 + header_len])
    assert header == {k: v for k, v in info.to_dict().items() if k != "inline"}
    assert raw[16 + header_len : offset].strip(b"\0") == b""
    assert len(raw) == offset + info.size


def test_fsync_off_still_round_trips(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "s", fsync=False)
    info = store.put(big_frame(), D1)
    assert store.verify(D1) is None
    pd.testing.assert_frame_equal(store.get(info), big_frame())


# --- zero copy and lifetime ------------------------------------------------------


def test_values_outlive_the_store_and_the_file(store: ArtifactStore) -> None:
    table = pa.table({"a": np.arange(100_000), "s": [str(i) for i in range(100_000)]})
    frame, array = big_frame(), np.arange(100_000.0)
    infos = [store.put(v, d) for v, d in ((table, D1), (frame, D2), (array, D3))]
    loaded = [store.get(info) for info in infos]
    for digest in (D1, D2, D3):
        store.delete(digest)
    del store, infos
    gc.collect()
    assert loaded[0].equals(table)
    pd.testing.assert_frame_equal(loaded[1], frame)
    np.testing.assert_array_equal(loaded[2], array)


def test_loaded_arrays_are_writable_but_the_file_never_changes(store: ArtifactStore) -> None:
    info = store.put(np.zeros(10_000), D1)
    out = store.get(info)
    out[:] = 7
    assert store.verify(D1) is None
    assert (store.get(info) == 0).all()


def test_loaded_frames_are_editable_in_place_and_the_file_never_changes(
    store: ArtifactStore,
) -> None:
    frame = big_frame()
    info = store.put(frame, D1)
    out = store.get(info)
    out.loc[0, "x"] = 5.0
    out["y"] += 1
    out.iloc[1, 2] = 7
    assert out.loc[0, "x"] == 5.0 and out.iloc[1, 2] == 7
    assert store.verify(D1) is None
    pd.testing.assert_frame_equal(store.get(info), frame, check_exact=True)


def test_numeric_columns_are_views_of_the_mapped_file(store: ArtifactStore) -> None:
    import mmap

    frame = pd.DataFrame({"x": np.arange(100_000.0), "n": np.arange(100_000), "s": "a"})
    out = store.get(store.put(frame, D1))
    for name in ("x", "n"):
        owner: Any = out[name].to_numpy()
        while isinstance(owner, np.ndarray) and owner.base is not None:
            owner = owner.base
        assert isinstance(owner, memoryview) and isinstance(owner.obj, mmap.mmap)
    pd.testing.assert_frame_equal(out, frame, check_exact=True)


def test_arrow_table_is_zero_copy_from_the_mapped_file(store: ArtifactStore) -> None:
    info = store.put(pa.table({"a": np.arange(1_000_000)}), D1)
    before = pa.total_allocated_bytes()
    out = store.get(info)
    assert pa.total_allocated_bytes() - before < 100_000  # not 8 MB
    assert out.column("a")[999_999].as_py() == 999_999


def _owner(array: Any) -> Any:
    while isinstance(array, np.ndarray) and array.base is not None:
        array = array.base
    return array


def test_arrays_inside_a_pickled_value_are_mapped_from_the_file_not_copied(store: ArtifactStore) -> None:
    """A dict of arrays (a model's weights, X and y together) loads its large arrays from the mapped file."""
    import mmap

    value = {"X": np.arange(300_000.0).reshape(1000, 300), "y": np.arange(1000) % 2, "t": (np.ones(50_000), "x"),
             "fortran": np.asfortranarray(np.arange(200_000.0).reshape(400, 500)), "small": np.arange(3)}
    info = store.put(value, D1)
    assert info.materializer == "pickle" and len(info.meta["buffers"]) == 3  # X, t[0], fortran: ≥ 64 KB
    out = store.get(info)
    for array in (out["X"], out["t"][0], out["fortran"]):
        owner = _owner(array)
        assert isinstance(owner, memoryview) and isinstance(owner.obj, mmap.mmap)
        assert array.flags.aligned
    assert out["fortran"].flags.f_contiguous
    for key in ("X", "y", "fortran", "small"):
        np.testing.assert_array_equal(out[key], value[key])
    assert out["t"][1] == "x"
    out["X"][0, 0] = -1.0  # writable, and the file never changes
    out["fortran"][:] = 0
    assert store.verify(D1) is None
    np.testing.assert_array_equal(store.get(info)["X"], value["X"])


def test_arrays_of_a_pickled_value_read_from_bytes_are_writable_copies(store: ArtifactStore) -> None:
    """A payload held as read-only bytes (a URL store's download) still gives arrays a step can write to."""
    value = {"X": np.arange(20_000.0)}
    store.put(value, D1)
    path = store.path_of(D1)
    header, payload = store._map_object(D1)
    out = serialize.get_materializer("pickle").read(memoryview(bytes(payload)), header["meta"])
    out["X"][0] = 5.0
    np.testing.assert_array_equal(out["X"][1:], value["X"][1:])
    assert path.exists() and store.verify(D1) is None


def test_a_pickled_value_whose_buffer_table_is_wrong_is_reported_not_misread(store: ArtifactStore) -> None:
    info = store.put({"X": np.arange(20_000.0)}, D1)
    header, payload = store._map_object(D1)
    meta = {**header["meta"], "buffers": [[header["meta"]["stream"], payload.nbytes]]}  # past the end
    with pytest.raises(ValueError, match="outside the payload"):
        serialize.get_materializer("pickle").read(payload, meta)
    assert info.meta["buffers"][0][0] % 64 == 0


def test_a_pickle_stored_without_a_buffer_table_still_loads(store: ArtifactStore) -> None:
    """Objects written before buffers went out of band are the pickle stream alone."""
    value = {"X": np.arange(20_000.0)}
    payload = pickle.dumps(value, protocol=5)
    out = serialize.get_materializer("pickle").read(memoryview(payload), {"protocol": 5})
    np.testing.assert_array_equal(out["X"], value["X"])


# --- dedup ------------------------------------------------------------------------


class Blob:
    def __init__(self, size: int = 100_000, fill: bytes = b"b") -> None:
        self.data = fill * size


class RecordingMaterializer:
    """Counts writes and reads of Blob values."""

    name = "test.blob"
    needs_unpickling = False

    def __init__(self) -> None:
        self.writes = 0
        self.reads = 0

    def can_write(self, value: object) -> bool:
        return isinstance(value, Blob)

    def write(self, value: object, f: BinaryIO) -> dict[str, Any]:
        assert isinstance(value, Blob)
        self.writes += 1
        f.write(value.data)
        return {"length": len(value.data)}

    def read(self, data: memoryview, meta: dict[str, Any]) -> object:
        self.reads += 1
        blob = Blob(0)
        blob.data = bytes(data)
        return blob


@pytest.fixture
def recorder():
    m = RecordingMaterializer()
    serialize.register_materializer(m)
    yield m
    serialize.unregister_materializer(m.name)


class _TupleMeta(RecordingMaterializer):
    name = "test.tuple-meta"

    def write(self, value: object, f: BinaryIO) -> dict[str, Any]:
        super().write(value, f)
        return {"shape": (1, 2)}  # JSON gives a list back


def test_a_user_materializer_that_fails_to_write_is_named_as_the_fix(store: ArtifactStore) -> None:
    serialize.register_materializer(_TupleMeta())
    try:
        with pytest.raises(StoreError) as caught:
            store.put(Blob(), D1)
    finally:
        serialize.unregister_materializer(_TupleMeta.name)
    message = str(caught.value)
    assert "materializer 'test.tuple-meta': TypeError: write() returned {'shape': (1, 2)}" in message
    assert "Fix the write() of materializer 'test.tuple-meta'" in message
    assert "register a materializer" not in message  # it has one: that is not the fix
    assert files_under(store.root) == []


def test_same_digest_twice_writes_one_file_once(
    store: ArtifactStore, recorder: RecordingMaterializer
) -> None:
    first = store.put(Blob(), D1)
    before, content = store.path_of(D1).stat(), store.path_of(D1).read_bytes()
    time.sleep(0.02)
    second = store.put(Blob(), D1)
    after = store.path_of(D1).stat()
    assert recorder.writes == 1
    assert second == first
    assert after.st_ino == before.st_ino and store.path_of(D1).read_bytes() == content
    # Only its time is renewed, so that `orch cache gc` sees it as just produced.
    assert after.st_mtime_ns > before.st_mtime_ns
    assert files_under(store.root) == [store.path_of(D1)]


def test_race_loser_reports_the_winners_bytes(
    store: ArtifactStore, recorder: RecordingMaterializer, monkeypatch: pytest.MonkeyPatch
) -> None:
    winner = store.put(Blob(fill=b"w"), D1)
    real_map_object = store._map_object
    calls = []

    def absent_at_first(digest: str, **options: Any) -> Any:
        calls.append(digest)
        if len(calls) == 1:  # the loser checked before the winner published
            raise MissingArtifactError(digest)
        return real_map_object(digest, **options)

    monkeypatch.setattr(store, "_map_object", absent_at_first)
    loser = store.put(Blob(fill=b"l"), D1)
    assert recorder.writes == 2
    assert loser == winner
    assert store.get(loser).data == b"w" * 100_000
    assert files_under(store.root) == [store.path_of(D1)]


def test_put_replaces_an_object_whose_header_is_damaged(store: ArtifactStore) -> None:
    info = store.put(big_frame(), D1)
    flip_byte(store.path_of(D1), 0)
    assert store.put(big_frame(), D1) == info
    assert store.verify(D1) is None


def _edit_header(path: Path, old: bytes, new: bytes) -> None:
    """Replace ``old`` with ``new`` (of the same length) in the object's header: a flipped bit there."""
    assert len(old) == len(new)
    data = path.read_bytes()
    assert data.count(old) >= 1
    path.write_bytes(data.replace(old, new, 1))


def test_put_replaces_an_object_whose_materializer_name_is_damaged(store: ArtifactStore) -> None:
    """No checksum covers the header: `arrow.pandar` passed, and `--rerun` kept an object nobody could load."""
    info = store.put(big_frame(), D1)
    _edit_header(store.path_of(D1), f'"{info.materializer}"'.encode(), f'"{info.materializer[:-1]}X"'.encode())
    assert store.put(big_frame(), D1) == info
    assert store.read_header(D1) == replace(info, inline=None)
    pd.testing.assert_frame_equal(store.get(info), big_frame())


def test_a_header_whose_meta_differs_from_the_record_is_damage(store: ArtifactStore) -> None:
    """A pickle's arrays are found by the offsets in its header's meta: one flipped digit loaded wrong bytes."""
    value = {"x": np.arange(100_000, dtype="float64"), "y": np.arange(100_000) * 2, "z": np.ones(100_000)}
    info = store.put(value, D1)
    start = info.meta["buffers"][1][0]
    shifted = start - 1 if start % 10 else start + 1  # one digit changed: the header keeps its length
    _edit_header(store.path_of(D1), f",[{start},".encode(), f",[{shifted},".encode())
    assert store.read_header(D1).meta["buffers"][1][0] == shifted
    with pytest.raises(CorruptArtifactError, match="meta differs from the one recorded"):
        store.get(info)


# --- damage --------------------------------------------------------------------


def test_flipped_payload_byte_is_caught_before_reading(
    store: ArtifactStore, recorder: RecordingMaterializer
) -> None:
    info = store.put(Blob(), D1)
    path = store.path_of(D1)
    flip_byte(path, payload_offset(path) + info.size // 2)
    with pytest.raises(
        CorruptArtifactError, match=f"artifact {D1} is damaged: checksum mismatch"
    ) as exc:
        store.get(info)
    assert exc.value.digest == D1
    assert recorder.reads == 0
    assert store.read_header(D1) == info  # the header alone is still fine


UNPICKLED: list[int] = []


def _mark_unpickled(data: bytes) -> Evil:
    UNPICKLED.append(len(data))
    return Evil()


class Evil:
    def __reduce__(self) -> tuple[Any, ...]:
        return (_mark_unpickled, (b"e" * 50_000,))


def test_damaged_pickle_is_never_unpickled(store: ArtifactStore) -> None:
    info = store.put(Evil(), D1)
    assert info.materializer == "pickle"
    path = store.path_of(D1)
    flip_byte(path, path.stat().st_size - 100)
    UNPICKLED.clear()
    with pytest.raises(CorruptArtifactError):
        store.get(info)
    assert UNPICKLED == []
    store.put(Evil(), D2)
    store.get(store.read_header(D2))
    assert UNPICKLED == [50_000]  # the flag works when the bytes are intact


@pytest.mark.parametrize("size", [100, 50_000], ids=["inline", "file"])
def test_a_pickle_whose_checksum_collides_is_never_unpickled(store: ArtifactStore, monkeypatch, size: int) -> None:
    """xxh3 detects damage, not a crafted payload with the same checksum: the SHA-256 does."""
    from orchestrator import store as store_module

    info = store.put(Evil() if size > 4096 else {"e" * size}, D1)
    assert info.materializer == "pickle" and len(info.meta[store_module.PAYLOAD_SHA256]) == 64
    # A writer of the store swaps one byte and finds bytes that keep the xxh3 checksum (simulated).
    monkeypatch.setattr(store_module, "checksum", lambda data: info.checksum)
    UNPICKLED.clear()
    if info.inline is not None:
        forged = ArtifactInfo(**{**info.to_dict(), "inline": info.inline.replace(b"eee", b"eef", 1)})
    else:
        path = store.path_of(D1)
        path.write_bytes(path.read_bytes().replace(b"eee", b"eef", 1))
        forged = info
        assert "SHA-256 differs" in (store.verify(D1) or "")  # `orch cache verify` names it too
    with pytest.raises(CorruptArtifactError, match="SHA-256 differs"):
        store.get(forged)
    assert UNPICKLED == []


def test_inline_payload_is_checked_too(store: ArtifactStore) -> None:
    info = store.put({"a": 1}, D1)
    assert info.inline is not None
    bad = ArtifactInfo(**{**info.to_dict(), "inline": info.inline.replace(b"1", b"2")})
    with pytest.raises(CorruptArtifactError, match="inline payload checksum mismatch"):
        store.get(bad)


def test_checksum_recorded_by_the_caller_must_match(store: ArtifactStore) -> None:
    info = store.put(big_frame(), D1)
    other = ArtifactInfo(**{**info.to_dict(), "checksum": "0" * 32, "inline": None})
    with pytest.raises(CorruptArtifactError, match="object checksum .* != recorded"):
        store.get(other)


def test_truncated_file_is_corrupt(store: ArtifactStore) -> None:
    info = store.put(big_frame(), D1)
    path = store.path_of(D1)
    os.truncate(path, path.stat().st_size - 1000)
    with pytest.raises(CorruptArtifactError, match="truncated"):
        store.get(info)
    with pytest.raises(CorruptArtifactError, match="truncated"):
        store.read_header(D1)
    os.truncate(path, 10)
    with pytest.raises(CorruptArtifactError, match="truncated"):
        store.get(info)


def test_missing_object(store: ArtifactStore) -> None:
    info = store.put(big_frame(), D1)
    store.delete(D1)
    store.delete(D1)  # idempotent
    with pytest.raises(MissingArtifactError, match=f"artifact {D1} is missing"):
        store.get(info)
    with pytest.raises(MissingArtifactError):
        store.read_header(D1)
    assert not store.has(D1)


def test_read_header_matches_put(store: ArtifactStore) -> None:
    info = store.put(big_frame(), D1)
    assert store.read_header(D1) == info


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda p: flip_byte(p, 0), "bad magic"),
        (lambda p: flip_byte(p, 20), "header unreadable"),
        (lambda p: flip_byte(p, p.stat().st_size - 1), "checksum mismatch"),
        (lambda p: os.truncate(p, p.stat().st_size - 1), "truncated"),
        (lambda p: os.truncate(p, 5), "truncated"),
        (lambda p: p.write_bytes(p.read_bytes() + b"x"), "unexpected bytes"),
        (lambda p: p.write_bytes(b""), "truncated"),
        (lambda p: p.unlink(), "missing"),
    ],
    ids=[
        "magic",
        "header",
        "payload",
        "truncated",
        "truncated-prefix",
        "trailing",
        "empty",
        "missing",
    ],
)
def test_verify_names_the_damage(store: ArtifactStore, damage: Any, reason: str) -> None:
    info = store.put(big_frame(), D1)
    store.put(big_frame(seed=1), D2)
    assert store.verify(D1) is None
    damage(store.path_of(D1))
    problem = store.verify(D1)
    assert problem is not None and reason in problem and "\n" not in problem
    assert store.verify(D2) is None
    with pytest.raises(StoreError):  # Corrupt or Missing
        store.get(info)


def test_a_folder_at_an_objects_path_is_damage_that_put_and_delete_clear(store: ArtifactStore) -> None:
    # A folder made by hand (or by a sync tool) where an object belongs: reading it must be
    # a damaged object (verify lists it, a run recomputes it), not a raw IsADirectoryError,
    # and writing or deleting the object must get rid of it.
    info = store.put(big_frame(), D1)
    path = store.path_of(D1)
    path.unlink()
    (path / "junk").mkdir(parents=True)
    assert store.verify(D1) == "not a file: a folder is at its path"
    with pytest.raises(CorruptArtifactError, match="a folder is at its path"):
        store.get(info)
    with pytest.raises(CorruptArtifactError, match="a folder is at its path"):
        store.read_header(D1)
    assert store.put(big_frame(), D1) == info  # recomputed: the folder is replaced by the object
    assert path.is_file() and store.verify(D1) is None
    path.unlink()
    path.mkdir()
    store.delete(D1)  # what `orch cache verify --repair` and `orch cache gc` do
    assert not path.exists()


def test_header_naming_another_digest_is_corrupt(store: ArtifactStore) -> None:
    store.put(big_frame(), D1)
    store.path_of(D2).parent.mkdir(parents=True)
    os.link(store.path_of(D1), store.path_of(D2))
    assert "another digest" in (store.verify(D2) or "")


def test_iter_objects_lists_complete_objects_only(store: ArtifactStore) -> None:
    assert list(store.iter_objects()) == []
    store.put(big_frame(), D2)
    store.put(big_frame(seed=1), D1)
    store.put(1, D3)  # inline: no object
    (store.root / "tmp").mkdir(exist_ok=True)
    (store.root / "tmp" / f"{os.getpid()}-x.tmp").write_bytes(b"partial")
    (store.root / "objects" / "11" / "notes.txt").write_text("stray")
    assert list(store.iter_objects()) == [D1, D2]


# --- digests -------------------------------------------------------------------

BAD_DIGESTS = [
    "../x",
    "ABC",
    "a" * 33,
    "A" * 32,
    "a" * 31,
    "a" * 32 + "\n",
    "",
    "../" + "a" * 29,
    "g" * 32,
    None,
    123,
]


@pytest.mark.parametrize("digest", BAD_DIGESTS, ids=repr)
def test_invalid_digests_are_rejected_before_any_path(store: ArtifactStore, digest: Any) -> None:
    for call in (
        store.path_of,
        store.has,
        store.read_header,
        store.verify,
        store.delete,
        lambda d: store.put(big_frame(), d),
    ):
        with pytest.raises(StoreError, match="invalid artifact digest"):
            call(digest)
    info = ArtifactInfo(
        digest=digest, materializer="json", type_name="int", size=1, checksum="0" * 32, meta={}
    )
    with pytest.raises(StoreError, match="invalid artifact digest"):
        store.get(info)
    assert not store.root.exists()


# --- temporary files and crashes ---------------------------------------------------


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_sweep_removes_dead_and_old_temp_files_only(store: ArtifactStore) -> None:
    temp = store.root / "tmp"
    temp.mkdir(parents=True)
    dead = temp / f"{_dead_pid()}-{'a' * 16}.tmp"
    live = temp / f"{os.getpid()}-{'d' * 16}.tmp"
    old = temp / f"{os.getpid()}-{'0' * 16}.tmp"
    other = temp / "keep.me"
    for path in (dead, live, old, other):
        path.write_bytes(b"partial")
    day_ago = time.time() - 25 * 3600
    os.utime(old, (day_ago, day_ago))
    assert store.sweep_temp() == 2
    assert sorted(temp.iterdir()) == sorted([live, other])
    assert ArtifactStore(store.root / "nowhere").sweep_temp() == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="tells a zombie through /proc")
def test_sweep_counts_a_killed_writer_not_yet_reaped_as_dead(store: ArtifactStore) -> None:
    """A killed driver's pool workers go to PID 1, which in a container without an init never
    reaps them: their temp files must still be swept, and their runs seen as over."""
    from orchestrator.lineage_records import process_alive, process_start_token

    temp = store.root / "tmp"
    temp.mkdir(parents=True)
    writer = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        token = process_start_token(writer.pid)
        while not Path(f"/proc/{writer.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            time.sleep(0.01)  # exited, and nobody waits for it yet
        partial = temp / f"{writer.pid}-{'e' * 16}.tmp"
        partial.write_bytes(b"partial")
        assert store.sweep_temp() == 1 and not partial.exists()
        assert not process_alive(writer.pid, token)
    finally:
        writer.wait()


def test_sweep_through_a_symlinked_tmp_removes_only_the_stores_own_temp_files(store: ArtifactStore,
                                                                               tmp_path: Path) -> None:
    """A copied or crafted store whose tmp/ links elsewhere: gc must not delete that folder's *.tmp files."""
    outside = tmp_path / "outside"
    outside.mkdir()
    notes, dead_looking = outside / "notes.tmp", outside / f"{_dead_pid()}-draft.tmp"
    ours = outside / f"{_dead_pid()}-{'b' * 16}.tmp"
    for path in (notes, dead_looking, ours):
        path.write_bytes(b"mine")
    day_ago = time.time() - 25 * 3600
    os.utime(notes, (day_ago, day_ago))
    store.root.mkdir(parents=True, exist_ok=True)
    (store.root / "tmp").symlink_to(outside)
    assert store.sweep_temp() == 1
    assert sorted(outside.iterdir()) == sorted([notes, dead_looking])


_SLOW_WRITER = textwrap.dedent(
    """
    import sys, time
    from orchestrator.serialize import register_materializer
    from orchestrator.store import ArtifactStore

    class Slow:
        name = "test.slow"
        needs_unpickling = False
        def can_write(self, value):
            return value == "slow"
        def write(self, value, f):
            for _ in range(100_000):
                f.write(b"x" * (1 << 20))
                time.sleep(0.005)
            return {}
        def read(self, data, meta):
            return "slow"

    register_materializer(Slow())
    ArtifactStore(sys.argv[1]).put("slow", sys.argv[2])
    """
)


def test_killed_writer_leaves_no_object(store: ArtifactStore) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_WRITER, str(store.root), D1],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    temp = store.root / "tmp"
    deadline = time.monotonic() + 60
    try:
        while not any(p.stat().st_size > 20 << 20 for p in temp.glob("*.tmp")):
            assert proc.poll() is None, "writer exited early"
            assert time.monotonic() < deadline, "writer never got going"
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not store.has(D1)
    assert list(store.iter_objects()) == []
    with pytest.raises(MissingArtifactError):
        store.read_header(D1)
    assert len(list(temp.glob("*.tmp"))) == 1
    assert store.sweep_temp() == 1
    assert list(temp.iterdir()) == []


RACE_ROWS = 700_000  # about 20 MB encoded


def _race_put(root: str, barrier: Any, results: Any) -> None:
    frame = big_frame(RACE_ROWS)
    store = ArtifactStore(root)
    barrier.wait(timeout=120)
    seen = store.has(D1)
    results.put((seen, store.put(frame, D1).to_dict()))


@pytest.mark.slow
def test_eight_processes_racing_one_digest(store: ArtifactStore) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(8), ctx.Queue()
    procs = [
        ctx.Process(target=_race_put, args=(str(store.root), barrier, results)) for _ in range(8)
    ]
    for proc in procs:
        proc.start()
    reports = [results.get(timeout=300) for _ in procs]
    infos = [ArtifactInfo.from_dict(info) for _, info in reports]
    assert sum(not seen for seen, _ in reports) >= 2  # several really wrote at once
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    assert list(store.iter_objects()) == [D1]
    assert store.verify(D1) is None
    assert files_under(store.root) == [store.path_of(D1)]  # losers left no temp files
    header = store.read_header(D1)
    assert header.size > 15 << 20
    assert all(info == header for info in infos)
    pd.testing.assert_frame_equal(store.get(header), big_frame(RACE_ROWS), check_exact=True)


def test_an_object_read_again_unchanged_is_checked_once_per_process(store: ArtifactStore, monkeypatch) -> None:
    """Each reader of a large input checksummed all of it: a 100 MB model scored over 1,000 items hashed
    100 GB. An object whose file is as it was when last checked (and written a while ago) is checked once;
    one changed since is checked again, and its damage found."""
    import orchestrator.store as store_module

    info = store.put(np.arange(200_000.0), D1)
    path = store.path_of(D1)
    long_ago = time.time() - 3600
    os.utime(path, (long_ago, long_ago))
    calls = []
    real = store_module.checksum
    monkeypatch.setattr(store_module, "checksum", lambda payload: calls.append(1) or real(payload))
    for _ in range(3):
        np.testing.assert_array_equal(store.get(info), np.arange(200_000.0))
    assert len(calls) == 1
    assert store.verify(D1) is None and len(calls) == 2  # `orch cache verify` reads every byte, always
    flip_byte(path, path.stat().st_size - 8)  # changed since: its time moved
    with pytest.raises(CorruptArtifactError, match="checksum mismatch"):
        store.get(info)
    os.utime(path, (long_ago, long_ago))  # damaged and dated back: a new inode would tell, a write in place not
    fresh = ArtifactStore(store.root)
    with pytest.raises(CorruptArtifactError, match="checksum mismatch"):
        fresh.get(info)  # another process checks it anew
