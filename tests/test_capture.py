"""What an attempt keeps of what it prints: all of a short output, the ends of a long one."""

from __future__ import annotations

import sys

import pytest

from orchestrator import capture, pipeline, step
from orchestrator.capture import Capture, read_spill


@pytest.fixture
def small_limit(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(capture, "CAPTURE_LIMIT", 100)
    return 100


def test_short_output_is_kept_whole(small_limit):
    with Capture(echo=False) as captured:
        for k in range(10):
            print(f"line {k}")  # 70 characters in all
    assert captured.stdout == "".join(f"line {k}\n" for k in range(10))


def test_long_output_keeps_its_first_and_last_halves(small_limit):
    lines = [f"{k:09d}\n" for k in range(1000)]  # 10 characters each
    with Capture(echo=False) as captured:
        for line in lines:
            sys.stdout.write(line)
        sys.stderr.write("x" * 10_000)
    text = "".join(lines)
    assert captured.stdout.startswith(text[:50] + "\n[... 9,900 characters left out")
    assert captured.stdout.endswith("...]\n" + text[-50:])
    assert len(captured.stdout) < 300
    assert "9,900 characters left out" in captured.stderr


def test_a_spill_file_is_clipped_the_same_way(small_limit, tmp_path):
    (tmp_path / "stdout").write_text("a" * 60 + "b" * 1000 + "c" * 60)
    (tmp_path / "stderr").write_text("short\n")
    stdout, stderr, logs = read_spill(str(tmp_path))
    assert stdout.startswith("a" * 50 + "\n[... 1,020 characters left out")
    assert stdout.endswith("c" * 50)
    assert (stderr, logs) == ("short\n", "")


@pytest.mark.parametrize("executor", ["sequential", "process"])
def test_a_step_printing_a_lot_records_a_bounded_text(store, executor):
    # The real limit: a process worker does not see a patched one.
    @step
    def loud() -> int:
        for k in range(200_000):  # about 1.5 MB
            print(f"row {k}")
        return 1

    @pipeline
    def talk():
        return loud()

    run = talk.run(store=str(store), executor=executor, workers=1)
    assert run.status == "succeeded"
    from orchestrator.lineage import Lineage

    stdout = Lineage(store / "metadata.db").attempts(run.id, "loud")[0]["stdout"]
    assert stdout.startswith("row 0\nrow 1\n") and stdout.endswith("row 199999\n")
    assert "characters left out" in stdout
    assert len(stdout) < capture.CAPTURE_LIMIT + 200
