"""The cached process id: it must be the child's own after a fork, or a forked child's
prints would be taken for the step's (see ``capture._Tee.write``)."""

from __future__ import annotations

import os

import pytest

from orchestrator.process_id import current_pid


def test_current_pid_is_this_process():
    assert current_pid() == os.getpid()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_sees_its_own_pid():
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what it sees, and leave without running pytest's exit handlers
        try:
            os.write(write, f"{current_pid()} {os.getpid()}".encode())
        finally:
            os._exit(0)
    os.close(write)
    seen, real = os.read(read, 100).decode().split()
    os.close(read)
    os.waitpid(pid, 0)
    assert seen == real == str(pid)
    assert current_pid() == os.getpid() != pid
