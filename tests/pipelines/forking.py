"""A step that forks a child which then gets SIGTERM, as `multiprocessing.Pool.terminate()` does to its workers."""

import os
import signal

from orchestrator import pipeline, step


@step
def forks(x: int) -> int:
    pid = os.fork()
    if pid == 0:
        os.kill(os.getpid(), signal.SIGTERM)
        os._exit(0)  # reached only if SIGTERM did not end the child
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) + x


@pipeline
def forking(x: int = 0):
    return forks(x)
