"""An object file's header is checked against its record: no checksum covers it, and decoding follows it.

A flipped digit in a pickle's array offsets loaded wrong bytes that every check passed
(`cache verify` and `doctor` said healthy, the run succeeded with garbage); a flipped bit in
the materializer's name left an object no run could load, which `verify --repair` did not find.
"""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator import pipeline, step
from orchestrator.cli import main


@step
def make(n: int) -> dict:
    return {"x": np.arange(n, dtype="float64"), "y": np.arange(n) * 2, "z": np.ones(n)}


@step
def total(arrays: dict) -> float:
    return float(sum(a.sum() for a in arrays.values()))


@pipeline
def sums(n: int = 100_000):
    return total(make(n))


def _orch(capsys, store, *args) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exited:
        main(["--store", str(store), *args])
    captured = capsys.readouterr()
    return int(exited.value.code or 0), captured.out + captured.err


def test_a_moved_array_offset_is_found_by_verify_and_recomputed_by_the_run(tmp_path, capsys):
    store = tmp_path / "store"
    first = sums.run(store=str(store))
    expected = first.output()
    digest = first.steps["make"].outputs["out"]
    path = store / "objects" / digest[:2] / digest
    data = path.read_bytes()
    start = int(data.split(b'"buffers":[[', 1)[1].split(b"],[", 1)[1].split(b",", 1)[0])
    shifted = start - 1 if start % 10 else start + 1
    path.write_bytes(data.replace(f"],[{start},".encode(), f"],[{shifted},".encode(), 1))

    code, said = _orch(capsys, store, "cache", "verify")
    assert code == 1 and f"damaged {digest}: object header's meta differs" in said
    again = sums.run(store=str(store), rerun=["total"])
    assert again.steps["make"].status == "ran" and again.steps["make"].reason == "stored output was damaged"
    assert again.output() == expected
    assert _orch(capsys, store, "cache", "verify")[0] == 0


def test_a_damaged_materializer_name_is_found_by_verify_and_repaired(tmp_path, capsys):
    store = tmp_path / "store"
    first = sums.run(store=str(store))
    digest = first.steps["make"].outputs["out"]
    path = store / "objects" / digest[:2] / digest
    path.write_bytes(path.read_bytes().replace(b'"materializer":"pickle"', b'"materializer":"pickld"', 1))

    code, said = _orch(capsys, store, "cache", "verify")
    assert code == 1 and "object materializer 'pickld' != recorded 'pickle'" in said
    assert _orch(capsys, store, "cache", "verify", "--repair")[0] == 0
    assert sums.run(store=str(store)).output() == first.output()
    assert _orch(capsys, store, "cache", "verify")[0] == 0
