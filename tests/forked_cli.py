"""``python -m orchestrator`` for the tests, as a fork of a warm interpreter instead of a fresh one.

A fresh interpreter spends most of a short ``orch`` command importing click, numpy, pandas,
pyarrow and scikit-learn. A *fork server* imports them once: a helper process started on the
first command of the session, which forks a child per command. The child sets the command's
argv, environment, working folder and stdout/stderr, then runs ``orchestrator`` as ``-m`` would.

Why a separate server rather than forking the test process itself: a fork of the test process
would inherit whatever earlier tests left behind (monkeypatched functions, user pipeline modules
in ``sys.modules``, open SQLite connections, threads, a started OpenMP pool). The server only
imports; it never loads a pipeline, opens a store or computes, so a child starts in the state of
a fresh interpreter that has done those imports.

What a fork cannot reproduce makes the caller use a fresh interpreter (see ``forkable``):
an environment that differs in anything read when a module is imported (``TZ``, ``HOME``,
``PYTHONPATH``, locale or BLAS/OpenMP thread settings: anything but ``ORCH_*``, ``COLUMNS`` and
``XDG_CONFIG_HOME`` (the signing key's folder), which orchestrator reads when it needs them and
the server's libraries do not read at import, and pytest's ``PYTEST_CURRENT_TEST``), and the process and Dask executors, whose
workers start from ``sys.executable`` and are tested as a real command runs them. The one
``ORCH_*`` variable read at import, ``ORCH_FAULT``, is re-read in the child.

This module must not import orchestrator in the test process: only the server does.
"""

from __future__ import annotations

import locale
import os
import pickle
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Imported by the server before it forks: what orch's commands and the tests' pipelines import.
_WARM_MODULES = ("orchestrator.cli", "orchestrator.runner", "orchestrator.client", "numpy", "pandas",
                 "pyarrow", "pyarrow.parquet", "sklearn.base")
_LENGTH = struct.Struct("!q")


def _read_at_call(name: str) -> bool:
    """Whether a variable is read when used, not at import: a child may have its own value."""
    return name.startswith("ORCH_") or name in ("COLUMNS", "XDG_CONFIG_HOME", "PYTEST_CURRENT_TEST")


def _import_time_env(env: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in env.items() if not _read_at_call(name)}


def as_after_imports(env: dict[str, str], set_by_imports: dict[str, str]) -> dict[str, str]:
    """``env`` as it is once the warm modules are imported: they ``setdefault`` some variables.

    scikit-learn sets ``KMP_DUPLICATE_LIB_OK`` and ``KMP_INIT_AT_FORK`` in ``os.environ`` when it
    is imported, so a test process that has imported it passes them on, and one that has not yet
    does not; a fresh interpreter running the command has them either way.
    """
    return {**set_by_imports, **env}


def forkable(args: list[str], env: dict[str, str], server_env: dict[str, str],
             set_by_imports: dict[str, str] | None = None) -> bool:
    """Whether a fork of the server runs ``orch ARGS`` as a fresh interpreter would.

    ``server_env`` is the environment the server was started with; ``set_by_imports``, what its
    imports then set (``ForkServer.set_by_imports``).
    """
    executor = [value for flag, value in zip(args, args[1:]) if flag == "--executor"]
    executor += [arg.partition("=")[2] for arg in args if arg.startswith("--executor=")]
    if any(value in ("process", "dask") for value in executor):
        return False
    return not env_differences(env, server_env, set_by_imports)


def env_differences(env: dict[str, str], server_env: dict[str, str],
                    set_by_imports: dict[str, str] | None = None) -> list[str]:
    """The variables read at import that ``env`` sets otherwise than the server's: why a command did not fork."""
    imported = set_by_imports or {}
    mine = _import_time_env(as_after_imports(env, imported))
    server = _import_time_env(as_after_imports(server_env, imported))
    return sorted(name for name in mine.keys() | server.keys() if mine.get(name) != server.get(name))


class ForkServer:
    """A server process that forks one child per ``orch`` command; started on first use."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._folder = tempfile.mkdtemp(prefix="orch-fork-")
        self._address = os.path.join(self._folder, "server")
        self.env: dict[str, str] = {}
        self.set_by_imports: dict[str, str] = {}  # the variables the server's imports set, and to what

    def start(self, env: dict[str, str]) -> None:
        """Start the server with ``env`` (ORCH_* left out), and wait until it accepts commands."""
        self.env = _import_time_env(env)
        self._process = subprocess.Popen(
            [sys.executable, __file__, self._address], env=self.env, cwd=self._folder,
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while not os.path.exists(self._address):
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the tests' orch fork server did not start (exit code {self._process.poll()})")
            time.sleep(0.02)
        with open(self._address + ".env", "rb") as written:
            self.set_by_imports = pickle.load(written)

    @property
    def started(self) -> bool:
        return self._process is not None

    def stop(self) -> None:
        if self._process is not None:
            self._process.stdin.close()  # type: ignore[union-attr]
            self._process.kill()
            self._process.wait()
            self._process = None
        Path(self._address).unlink(missing_ok=True)
        Path(self._address + ".env").unlink(missing_ok=True)
        os.rmdir(self._folder)

    def run(self, args: list[str], env: dict[str, str], cwd: str,
            timeout: float) -> subprocess.CompletedProcess[str]:
        """``subprocess.run([python, -m, orchestrator, *args], capture_output=True, text=True)``, forked."""
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(self._address)
            request = pickle.dumps((args, env, os.fspath(cwd)))
            socket.send_fds(conn, [_LENGTH.pack(len(request))], [0, out_write, err_write])
            conn.sendall(request)
        finally:
            os.close(out_write)
            os.close(err_write)
        try:
            stdout, stderr, status = _collect(conn, out_read, err_read, timeout, args)
        finally:
            conn.close()
            os.close(out_read)
            os.close(err_read)
        command = [sys.executable, "-m", "orchestrator", *args]
        return subprocess.CompletedProcess(command, status, _text(stdout), _text(stderr))


def _collect(conn: socket.socket, out_fd: int, err_fd: int, timeout: float,
             args: list[str]) -> tuple[bytes, bytes, int]:
    """Read the child's stdout and stderr to their end, and its pid then wait status from the server.

    ``poll`` rather than ``select``: a test process with many open files has descriptors
    above FD_SETSIZE (1024), which ``select`` cannot wait on.
    """
    chunks: dict[int, list[bytes]] = {out_fd: [], err_fd: []}
    reply = b""
    poller = select.poll()
    for fd in (out_fd, err_fd, conn.fileno()):
        poller.register(fd, select.POLLIN)
    open_fds = {out_fd, err_fd, conn.fileno()}
    deadline = time.monotonic() + timeout
    while open_fds:
        left = deadline - time.monotonic()
        if left <= 0:
            if len(reply) >= _LENGTH.size:
                os.kill(_LENGTH.unpack(reply[:_LENGTH.size])[0], signal.SIGKILL)
            raise subprocess.TimeoutExpired([sys.executable, "-m", "orchestrator", *args], timeout)
        for fd, _ in poller.poll(left * 1000):
            data = os.read(fd, 1 << 16)
            if not data:
                poller.unregister(fd)
                open_fds.discard(fd)
            elif fd == conn.fileno():
                reply += data
            else:
                chunks[fd].append(data)
    if len(reply) != 2 * _LENGTH.size:
        raise RuntimeError("the tests' orch fork server ended before the command's exit status")
    return b"".join(chunks[out_fd]), b"".join(chunks[err_fd]), _LENGTH.unpack(reply[_LENGTH.size:])[0]


def _text(data: bytes) -> str:
    """Bytes as ``subprocess.run(text=True)`` decodes them: locale encoding, universal newlines."""
    return data.decode(locale.getpreferredencoding(False)).replace("\r\n", "\n").replace("\r", "\n")


# ---- the server process ------------------------------------------------------------------------

def _serve(address: str) -> None:
    """Accept commands on ``address``; fork a child for each; report its pid, then its wait status.

    Ends when its stdin, a pipe the test process holds, is closed.
    """
    import importlib

    before = dict(os.environ)
    for name in _WARM_MODULES:
        importlib.import_module(name)
    set_by_imports = {name: value for name, value in os.environ.items() if before.get(name) != value}
    with open(address + ".env", "wb") as told:  # before the socket's name appears: the client reads it then
        pickle.dump(set_by_imports, told)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(address + ".tmp")
    listener.listen(64)
    os.rename(address + ".tmp", address)  # the client waits for the name: it appears ready to accept
    waiting: dict[int, tuple[int, socket.socket]] = {}  # pidfd -> (pid, the client's connection)
    poller = select.poll()
    poller.register(listener, select.POLLIN)
    poller.register(0, select.POLLIN)  # stdin: a pipe from the test process, which ends when it ends
    while True:
        for fd, _ in poller.poll():
            if fd == 0:
                return  # the test process is gone (even killed): no server left behind
            if fd == listener.fileno():
                conn, _ = listener.accept()
                pid = _fork_command(conn, listener, waiting, set_by_imports)
                pidfd = os.pidfd_open(pid)
                waiting[pidfd] = (pid, conn)
                poller.register(pidfd, select.POLLIN)
                conn.sendall(_LENGTH.pack(pid))
            else:
                pid, conn = waiting.pop(fd)
                poller.unregister(fd)
                os.close(fd)
                _, status = os.waitpid(pid, 0)
                try:
                    conn.sendall(_LENGTH.pack(os.waitstatus_to_exitcode(status)))
                except OSError:  # the client gave up (a timeout): nobody to tell
                    pass
                conn.close()


def _fork_command(conn: socket.socket, listener: socket.socket,
                  waiting: dict[int, tuple[int, socket.socket]], set_by_imports: dict[str, str]) -> int:
    header, fds, _, _ = socket.recv_fds(conn, _LENGTH.size, 3)
    size = _LENGTH.unpack(header)[0]
    request = b""
    while len(request) < size:
        request += conn.recv(size - len(request))
    args, env, cwd = pickle.loads(request)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        for fd in fds:
            os.close(fd)
        return pid
    try:  # the child: nothing of the server's sockets, then the command's own process state
        listener.close()
        conn.close()
        for pidfd, (_, other) in waiting.items():
            os.close(pidfd)
            other.close()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        _run_command(args, env, cwd, set_by_imports)
    finally:
        os._exit(70)  # only reached if setting up the child itself failed


def _run_command(args: list[str], env: dict[str, str], cwd: str, set_by_imports: dict[str, str]) -> None:
    """Run ``python -m orchestrator ARGS`` in this process, then end it as the interpreter would."""
    import atexit
    import runpy
    import threading
    import traceback

    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(as_after_imports(env, set_by_imports))  # as the imports of a fresh interpreter leave it
    sys.path[0] = os.getcwd()  # `-m` puts the working folder first; the server had its script's
    from orchestrator import store_faults

    store_faults._fault = store_faults._fault_from_env()  # read at import, in the server: without ORCH_*
    sys.argv = [sys.executable, *args]  # run_module sets argv[0] to the module's file, as -m does
    code = 0
    try:
        runpy.run_module("orchestrator", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = _exit_code(exc.code)
    except BaseException:  # noqa: BLE001 - the interpreter prints an uncaught exception and exits 1
        traceback.print_exc()
        code = 1
    threading._shutdown()  # type: ignore[attr-defined]  # wait for non-daemon threads, as at exit
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 120  # Python exits 120 when it cannot flush stdout at exit
    os._exit(code)


def _exit_code(code: object) -> int:
    """What exit status ``sys.exit(code)`` gives a process."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


if __name__ == "__main__":
    _serve(sys.argv[1])
