"""Steps that write past ``sys.stdout``: C-level writes, a subprocess, and one that closes descriptor 1.

For tests/test_fd_capture.py: each writer's text belongs to its step's recorded output.
"""

import os
import subprocess
import sys

from orchestrator import pipeline, step


@step(cache=False)
def writes(x: int) -> int:
    print(f"printed by step {x}")
    os.write(1, f"written to fd 1 by step {x}\n".encode())
    os.write(2, f"written to fd 2 by step {x}\n".encode())
    subprocess.run([sys.executable, "-c", f"print('from a subprocess of step {x}')"], check=True)
    return x + 1


@step(cache=False)
def closes_stdout(x: int) -> int:
    os.close(1)
    return x + 1


@pipeline
def descriptors(x: int = 1):
    return writes(writes(x))


@pipeline
def closing(x: int = 1):
    return writes(closes_stdout(writes(x)))
