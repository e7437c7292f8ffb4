"""A local process pool: up to N spawned workers, one attempt each at a time.

Not ``concurrent.futures.ProcessPoolExecutor``: when one of its workers dies,
the whole pool breaks and every running task fails with it. Here each worker
has its own pipe, so a worker that dies (``os._exit``, SIGKILL, the OOM
killer) fails exactly the attempt it was running, as a ``WorkerDiedError``,
and is replaced; an attempt that outlives its ``timeout`` has its worker
killed and counts as a ``StepTimeoutError``. Workers are spawned, not forked:
they inherit no threads, locks or SQLite connections from the driver. They
are started when an attempt finds none idle, so a cached run starts none and
``--workers 32`` for three steps starts three at most; an idle worker is reused.

A worker takes about a CPU-second to start (Python, then the imports of the
user's code), so no more start at once than there are CPUs, nor than attempts
wait: ``--workers 64`` on two CPUs and a map of forty short steps started forty
workers, ten times as long as two did. An attempt waits for whichever comes
first, a worker that finishes its step or one that has started; long steps
(downloads, waits on a service) still get every worker they are allowed,
started a CPU's worth at a time. A task of more than 1 MB (a large value
written in the pipeline body) is not kept waiting, which would hold a copy of
it per waiting attempt: it gets a worker of its own at once.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import shutil
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from multiprocessing.connection import wait as wait_any
from typing import TYPE_CHECKING, Any

from orchestrator.errors import StepTimeoutError, UnpicklableStepError, WorkerDiedError
from orchestrator.executors.deaths import died_because
from orchestrator.executors.process_tree import kill_all, kill_tree, stop_tree
from orchestrator.executors.sending import not_sent
from orchestrator.executors.spawning import main_script_hidden
from orchestrator.executors.worker import READY, STARTED, decode_result, dumps_with_user_code, serve_pipe
from orchestrator.retry import Failure

if TYPE_CHECKING:
    from orchestrator.task import TaskResult, TaskSpec


_SNAPSHOT_SECONDS = 1.0  # how long Ctrl-C waits for busy workers to say what their steps printed
_HELD_BYTES = 1 << 20  # a task larger than this is not kept waiting for a worker (see ``submit``)
_STARTUP_ALLOWANCE = 60.0  # seconds a worker may take to start an attempt before its timeout counts anyway


@dataclass
class _Worker:
    process: Any
    conn: Any
    snapshots: Any  # the pipe the worker answers with what its step printed so far (``answer_snapshots``)
    spec: TaskSpec | None = None
    future: Future[TaskResult] | None = None
    started: float = 0.0
    deadline: float | None = None
    tasks: int = field(default=0)
    ready: bool = False  # it has started Python and said so (``READY``): it takes attempts from now on


@contextlib.contextmanager
def _ctrl_c_held_for_the_child() -> Iterator[None]:
    """Start a worker with SIGINT blocked, which it keeps until it ignores SIGINT (``serve_pipe``).

    Ctrl-C reaches the whole process group: a worker still starting Python died of it with a
    ``KeyboardInterrupt`` traceback on the terminal. Held, it is dropped once ignored. Only this
    thread's mask, for the length of the start: a Ctrl-C meant for the driver waits that long.
    """
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    # multiprocessing unblocks SIGINT in the thread that starts its resource tracker (with the first
    # process it spawns): started first, it leaves the mask be.
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


class ProcessExecutor:
    """Runs attempts in a pool of worker processes on this machine."""

    name = "process"

    def __init__(self, workers: int | None = None) -> None:
        self.capacity = max(1, workers or os.cpu_count() or 1)
        self._start_at_once = max(1, os.cpu_count() or 1)  # workers starting at the same time, at most
        self._waiting: deque[tuple[TaskSpec, bytes, Future[TaskResult]]] = deque()  # no ready worker yet
        self._ctx = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._workers: list[_Worker] = []
        self._wake_r, self._wake_w = os.pipe()
        self._closed = False
        self._monitor: threading.Thread | None = None
        self._stopped: dict[tuple[str, int], TaskResult] = {}  # see ``stopped``

    def _spawn(self) -> _Worker:
        parent, child = self._ctx.Pipe(duplex=True)
        asking, answering = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(target=serve_pipe, args=(child, list(sys.path), os.getpid(), answering),
                                    daemon=True, name="orch-worker")
        with main_script_hidden(), _ctrl_c_held_for_the_child():
            process.start()
        child.close()
        answering.close()
        return _Worker(process=process, conn=parent, snapshots=asking)

    def submit(self, spec: TaskSpec) -> Future[TaskResult]:
        future: Future[TaskResult] = Future()
        try:
            payload = dumps_with_user_code(spec, "a process-pool worker")
        except UnpicklableStepError as refused:
            future.set_result(not_sent(spec, refused))
            return future
        with self._lock:
            if len(self._waiting) + sum(w.spec is not None for w in self._workers) >= self.capacity:
                raise RuntimeError("process pool is full: the runner submitted more than its capacity")
            if len(payload) > _HELD_BYTES and len(self._workers) < self.capacity and \
                    not any(w.ready and w.spec is None for w in self._workers):
                # A large value written in the pipeline body travels in the task: waiting, the driver would
                # hold a copy per waiting attempt. It goes to a worker of its own at once (the pipe takes it
                # as the worker starts), as before workers said they were ready.
                worker = self._spawn()
                self._workers.append(worker)
                self._assign(worker, spec, payload, future)
            else:
                self._waiting.append((spec, payload, future))
                self._dispatch()
        if self._monitor is None:
            self._monitor = threading.Thread(target=self._watch, name="orch-pool", daemon=True)
            self._monitor.start()
        os.write(self._wake_w, b"x")
        return future

    def _dispatch(self) -> None:
        """Give waiting attempts to idle ready workers, and start workers for the rest (with ``_lock`` held).

        A new worker is started only while fewer are starting than there are CPUs and
        than attempts wait, and the pool is below its size.
        """
        while self._waiting:
            worker = next((w for w in self._workers if w.ready and w.spec is None), None)
            if worker is None:
                starting = sum(not w.ready for w in self._workers)
                if len(self._workers) < self.capacity and starting < min(self._start_at_once, len(self._waiting)):
                    try:
                        self._workers.append(self._spawn())
                    except OSError as exc:  # no process can be made now (the process limit, no memory)
                        if self._workers:
                            return  # the waiting attempts go to the workers there are
                        from orchestrator.task import TaskResult

                        spec, _, future = self._waiting.popleft()
                        now = time.time()
                        future.set_result(TaskResult(
                            node=spec.node, attempt=spec.attempt, started=now, ended=now,
                            failure=Failure.from_exception(WorkerDiedError(
                                f"no worker could be started for step '{spec.node}': {exc}"))))
                    continue
                return
            self._assign(worker, *self._waiting.popleft())

    def _assign(self, worker: _Worker, spec: TaskSpec, payload: bytes, future: Future[TaskResult]) -> None:
        """Send an attempt to ``worker`` (with ``_lock`` held)."""
        worker.spec, worker.future, worker.started = spec, future, time.time()
        # The timeout counts from the moment the worker starts the attempt (it says so, ``STARTED``), not
        # from here: a new worker first starts Python, and unpickling the step's code takes time on a busy
        # machine, which a `timeout=5` step would lose. Until then this bounds a worker that never starts it.
        worker.deadline = time.monotonic() + spec.timeout + _STARTUP_ALLOWANCE if spec.timeout else None
        try:
            worker.conn.send_bytes(payload)
        except (BrokenPipeError, OSError):
            pass  # the worker is already dead: the monitor reports it

    # -- the monitor thread -------------------------------------------------------

    def _watch(self) -> None:
        while not self._closed:
            with self._lock:
                busy = [w for w in self._workers if w.spec is not None or not w.ready]
                deadlines = [w.deadline for w in busy if w.deadline is not None]
            waitables: list[Any] = [self._wake_r]
            for w in busy:
                waitables += [w.conn, w.process.sentinel]
            timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
            ready = wait_any(waitables, timeout=timeout)
            if self._wake_r in ready:
                os.read(self._wake_r, 4096)
            for w in busy:
                if w.conn in ready:
                    self._receive(w)
                elif w.process.sentinel in ready:
                    self._lost(w, None)
                elif w.deadline is not None and time.monotonic() >= w.deadline:
                    self._lost(w, w.spec.timeout if w.spec else None)

    def _receive(self, worker: _Worker) -> None:
        try:
            data = worker.conn.recv_bytes()
        except (EOFError, OSError):
            self._lost(worker, None)
            return
        if data == READY:
            with self._lock:
                worker.ready = True
                self._dispatch()
            return
        if data == STARTED:
            with self._lock:
                if worker.spec is not None and worker.spec.timeout:
                    worker.started = time.time()
                    worker.deadline = time.monotonic() + worker.spec.timeout
            return
        future, spec = worker.future, worker.spec
        result = decode_result(data, spec) if spec is not None else None
        with self._lock:
            worker.spec = worker.future = None
            worker.tasks += 1
            self._dispatch()
        if future is not None and result is not None:
            future.set_result(result)

    def _lost(self, worker: _Worker, timeout: float | None) -> None:
        """The worker died, or ran out of time and is killed: fail its attempt; the next one gets a new worker."""
        from orchestrator.capture import read_spill
        from orchestrator.task import TaskResult

        spec, future, started = worker.spec, worker.future, worker.started
        if worker.process.is_alive():
            kill_tree(worker.process.pid)  # with what the step started: a timeout stops all its work
        worker.process.join(timeout=5)
        code = worker.process.exitcode
        worker.conn.close()
        worker.snapshots.close()
        with self._lock:
            if not self._closed:
                self._workers.remove(worker)
            if spec is None and not worker.ready and self._waiting and not self._closed:
                # It died starting (a broken environment, no memory left): the attempt that waited longest
                # fails with it, as it would have in that worker, so that a pool whose workers cannot start
                # ends the run by the steps' retries instead of starting workers for ever.
                spec, _, future = self._waiting.popleft()
                started = time.time()
            if not self._closed:
                self._dispatch()
        if spec is None or future is None:
            return
        if timeout is not None:
            exc: BaseException = StepTimeoutError(
                f"step '{spec.node}' did not finish within its timeout of {timeout:g} s")
        else:
            exc = WorkerDiedError(
                f"the worker running step '{spec.node}' died {died_because(code)} before reporting a result")
        stdout, stderr, logs = read_spill(spec.spill)  # what it printed and logged before it was killed
        future.set_result(TaskResult(node=spec.node, attempt=spec.attempt, started=started,
                                     ended=time.time(), failure=Failure.from_exception(exc),
                                     stdout=stdout, stderr=stderr, logs=logs))

    def unstarted(self) -> set[tuple[str, int]]:
        """Attempts still waiting for a worker (an idle one, or one starting) when the pool was shut down."""
        return {(spec.node, spec.attempt) for spec, _, _ in self._waiting}

    def stopped(self) -> dict[tuple[str, int], TaskResult]:
        return dict(self._stopped)

    def shutdown(self, cancel: bool = False) -> None:
        """Stop the workers: politely when idle, by SIGKILL when cancelling running attempts.

        Every wait here has a timeout: on Ctrl-C the run loop holds further stop signals for as long as
        this takes (``further_stops_held``), usually well under a second.
        """
        if self._closed:
            return
        self._closed = True
        frozen: dict[int, list[int]] = {}
        if cancel:
            self._stopped.update(_snapshots([w for w in self._workers if w.spec is not None and not w.spec.spill]))
            # Stopped before the monitor thread ends: a worker it started dies with it (its parent-death
            # signal follows the thread), which orphaned what the worker's step had started (a
            # `subprocess.Popen`), so that no walk of the worker's tree found it any more.
            frozen = {w.process.pid: stop_tree(w.process.pid)
                      for w in self._workers if w.spec is not None or not w.ready}  # a starting one too
        os.write(self._wake_w, b"x")
        if self._monitor is not None:
            self._monitor.join(timeout=5)
        for w in self._workers:
            if w.process.pid in frozen:
                kill_all(frozen[w.process.pid])
            else:
                try:
                    w.conn.send_bytes(pickle.dumps(None))
                except (BrokenPipeError, OSError):
                    w.process.kill()
        deadline = time.monotonic() + 5
        for w in self._workers:
            w.process.join(timeout=max(0.0, deadline - time.monotonic()))
            if w.process.is_alive():
                w.process.kill()
                # Bounded, as all of a cancel is (a Ctrl-C pressed again meanwhile waits for it): only a process
                # stuck in the kernel (a hung network mount) outlives a SIGKILL for long.
                w.process.join(timeout=5)
            w.conn.close()
            w.snapshots.close()
            if w.spec is not None and w.spec.spill:
                if cancel:
                    # A timed attempt killed with its worker (Ctrl-C): it keeps what it printed, as the
                    # sequential executor's does.
                    self._stopped[(w.spec.node, w.spec.attempt)] = _spilled(w.spec, w.started)
                else:
                    shutil.rmtree(w.spec.spill, ignore_errors=True)
        os.close(self._wake_r)
        os.close(self._wake_w)


def _spilled(spec: TaskSpec, started: float) -> TaskResult:
    """A stopped attempt with what it had written to its spill folder (which this removes)."""
    from orchestrator.capture import read_spill
    from orchestrator.task import TaskResult

    stdout, stderr, logs = read_spill(spec.spill)
    return TaskResult(node=spec.node, attempt=spec.attempt, started=started, ended=time.time(),
                      stdout=stdout, stderr=stderr, logs=logs)


def _snapshots(busy: list[_Worker]) -> dict[tuple[str, int], TaskResult]:
    """What the steps of ``busy`` workers had printed and logged, asked before they are killed (Ctrl-C).

    A worker whose step holds the interpreter (a long call into C that keeps the GIL)
    cannot answer within ``_SNAPSHOT_SECONDS``: its attempt is recorded without output.
    """
    from orchestrator.task import TaskResult

    asked = []
    for worker in busy:
        try:
            worker.snapshots.send_bytes(b"?")
        except OSError:
            continue  # it died meanwhile
        asked.append(worker)
    deadline = time.monotonic() + _SNAPSHOT_SECONDS
    kept = {}
    for worker in asked:
        spec = worker.spec
        try:
            if spec is None or not worker.snapshots.poll(max(0.0, deadline - time.monotonic())):
                continue
            texts = pickle.loads(worker.snapshots.recv_bytes())
        except (EOFError, OSError, pickle.UnpicklingError):
            continue
        if texts is not None:
            stdout, stderr, logs = texts
            kept[(spec.node, spec.attempt)] = TaskResult(node=spec.node, attempt=spec.attempt, started=worker.started,
                                                         ended=time.time(), stdout=stdout, stderr=stderr, logs=logs)
    return kept
