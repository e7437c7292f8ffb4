"""Three steps that each start a program and wait for it, for three pool workers.

A worker the pool's monitor thread started died with that thread as the run stopped
(its parent-death signal follows the thread), before its tree was walked: its step's
program was orphaned and went on running.
"""

import os
import subprocess
from pathlib import Path

from orchestrator import pipeline, step


@step
def program(name: str) -> int:
    started = subprocess.Popen(["sleep", "300"])
    Path(f"{os.environ['ORCH_TEST_LOG']}.{name}.pid").write_text(str(started.pid))
    return started.wait()


@pipeline
def many_programs():
    return program.map(["a", "b", "c"])
