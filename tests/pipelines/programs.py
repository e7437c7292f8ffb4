"""Steps that start a program and wait for it: one with a timeout (it runs in a child process), one without."""

import os
import subprocess
from pathlib import Path

from orchestrator import pipeline, step


def _start_and_wait(name: str) -> int:
    program = subprocess.Popen(["sleep", "300"])
    Path(f"{os.environ['ORCH_TEST_LOG']}.{name}.pid").write_text(str(program.pid))
    return program.wait()


@step(timeout=120)
def timed_program() -> int:
    return _start_and_wait("timed")


@step
def untimed_program() -> int:
    return _start_and_wait("untimed")


@pipeline
def programs():
    return [timed_program(), untimed_program()]
