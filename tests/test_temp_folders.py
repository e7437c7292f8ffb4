"""Temp folders named by their process: a killed run's are removed by the next process that makes one.

A step with a timeout spills its output to ``orch-attempt-PID-*`` and a Dask
run keeps its scratch in ``orch-dask-PID-*``. The process removes them when
done, but a SIGKILLed or OOM-killed one cannot; without the sweep each kill
left a folder in the temp folder for ever.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import pytest

from orchestrator import files


@pytest.fixture
def temp(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(files, "_swept", set())
    return tmp_path


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.parametrize("prefix", ["orch-dask-", "orch-attempt-"])
def test_the_folders_of_dead_processes_go_and_those_of_live_ones_stay(temp, prefix):
    dead = temp / f"{prefix}{_dead_pid()}-abcd1234"
    live = temp / f"{prefix}{os.getpid()}-abcd1234"
    other = temp / f"{prefix}notapid-abcd1234"  # not a name this module makes: not ours to remove
    for folder in (dead, live, other):
        folder.mkdir()
        (folder / "stdout").write_text("kept until its process is gone")

    made = files.process_temp_folder(prefix)

    assert not dead.exists() and live.exists() and other.exists()
    assert os.path.basename(made).startswith(f"{prefix}{os.getpid()}-") and os.path.isdir(made)


def test_each_prefix_is_swept_once_per_process(temp):
    files.process_temp_folder("orch-dask-")
    dead = temp / f"orch-dask-{_dead_pid()}-abcd1234"
    dead.mkdir()
    files.process_temp_folder("orch-dask-")
    assert dead.exists()  # one listing of the temp folder per process and prefix, not per run
    files.process_temp_folder("orch-attempt-")
    assert dead.exists()  # another prefix sweeps only its own
