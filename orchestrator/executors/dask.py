"""Dask distributed: attempts run as tasks on a Dask cluster (the optional extra ``dask``).

With an address, tasks go to that running scheduler; without, a
``LocalCluster`` of worker processes is started when the run's first attempt
needs it (a fully cached run starts none) and closed after the run. Tasks carry the step and artifact references only: workers load inputs
from the store and write outputs there themselves, so data never passes
through the scheduler. A task whose worker dies is not re-run silently by
Dask (``allowed-failures`` is 0 for a LocalCluster): it comes back as a
``WorkerDiedError`` attempt, retried by the step's own policy like on every
other executor. Timeouts run the step in a child process of the worker.

Dask also fails the tasks that were only waiting on a worker when it died
(the run loop keeps twice the threads submitted): on the LocalCluster each
task marks its start in a folder, and a task lost before it started is sent
again, so a step that kills its worker costs its neighbours nothing; nor
does it cost the steps that finished there, whose results Dask would run
again (see ``_forget`` and ``run_pickled``), or fail with the worker when
it died before telling the scheduler they finished (``_kept_result``). That
folder also holds the spill folders of timed attempts (what they print), so
that workers killed on Ctrl-C leave nothing behind in the temp folder.

Ctrl-C belongs to the driver: the LocalCluster's workers ignore SIGINT (see
``dask_setup`` in ``worker.py``); on Ctrl-C the driver kills them itself.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError, Future, InvalidStateError
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from orchestrator.errors import SchedulerLostError, UnpicklableStepError, UserError, WorkerDiedError
from orchestrator.executors.deaths import MEMORY_ADVICE, died_because
from orchestrator.executors.nanny_exits import WorkerExits
from orchestrator.executors.process_tree import kill_tree
from orchestrator.executors.sending import not_sent
from orchestrator.executors.spawning import main_script_hidden
from orchestrator.executors.worker import (
    decode_result,
    dumps_with_user_code,
    kept_result_path,
    run_pickled,
    running_snapshot,
)
from orchestrator.files import process_temp_folder
from orchestrator.retry import Failure
from orchestrator.spelling import CLI, Spelling

if TYPE_CHECKING:
    from orchestrator.task import TaskResult, TaskSpec


def _import_distributed() -> Any:
    try:
        import dask
        import distributed
    except ImportError as exc:
        raise UserError(
            "the dask executor needs Dask: pip install 'orchestrator[dask]'"
        ) from exc
    return dask, distributed


# [SCHEME://]HOST:PORT, the host a name, an IPv4 address or a bracketed IPv6 address.
_ADDRESS = re.compile(r"(?:(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://)?"
                      r"(?P<host>\[[0-9A-Fa-f:.]+\]|[^\s:/\[\]@]+):(?P<port>[0-9]{1,5})")


def check_address(address: str, spelling: Spelling = CLI) -> None:
    """Refuse a scheduler address Dask could not even try, before it spends 20 s failing on it.

    The message names the option as ``spelling`` writes it (``--address``, ``address=``).

    Raises:
        UserError: ``address`` is not ``[SCHEME://]HOST:PORT`` with a scheme Dask knows.
    """
    from distributed.comm import registry

    fix = "Write it as tcp://HOST:PORT (or HOST:PORT), like tcp://127.0.0.1:8786."
    match = _ADDRESS.fullmatch(address)
    if match is None:
        raise UserError(f"{spelling.address_of(address)} is not a Dask scheduler address. {fix}")
    scheme, port = match["scheme"] or "tcp", int(match["port"])
    try:
        registry.get_backend(scheme)
    except ValueError:
        known = ", ".join(sorted(registry.backends))
        raise UserError(f"{spelling.address_of(address)}: Dask has no scheme '{scheme}' (it knows {known}). {fix}") \
            from None
    if not 0 < port < 65536:
        raise UserError(f"{spelling.address_of(address)}: port {port} is out of range (1-65535). {fix}")


_SCATTER_BYTES = 1 << 20  # a task pickled larger than this sends its payload to a worker by itself
_SNAPSHOT_SECONDS = 2.0  # how long Ctrl-C waits for the LocalCluster's workers to say what their steps printed
_POLL_SECONDS = 5.0  # how often a run on a cluster of the user's looks whether it still has workers
_CONNECT_SECONDS = 10  # how long a scheduler may take to accept the connection (it may be starting)
_HANDSHAKE_SECONDS = 5  # how long a server that accepted it may take to answer as a Dask scheduler
_OWN = "Give the scheduler's own address, the `Scheduler at:` line of its log (port 8786 by default)"


def check_scheduler_answers(address: str, spelling: Spelling = CLI) -> None:
    """Refuse an address where no Dask scheduler answers, within seconds rather than never.

    Dask's client waits without end for the handshake of a server that accepts the
    connection but speaks another protocol: the dashboard's port (8787), a web server, a
    database. A host name that does not resolve is refused at once, where Dask would
    retry it for its whole timeout. The check runs in a thread of its own, so a caller
    inside an event loop (a notebook) can make it too.

    Where nothing accepts the connection, this says nothing: the client, made next, retries
    for 10 s (a scheduler may be starting) and says so when it gives up.

    Raises:
        UserError: the host is unknown, or what accepts the connection does not answer as
            a Dask scheduler within 5 s.
    """
    from distributed.comm import parse_address, registry
    from distributed.security import Security

    match = _ADDRESS.fullmatch(address)
    if match is not None and (match["scheme"] or "tcp") in ("tcp", "tls"):
        import socket

        host = match["host"].strip("[]")
        try:
            socket.getaddrinfo(host, int(match["port"]), type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise UserError(f"{spelling.address_of(address)}: the host '{host}' is not known ({exc.strerror}). "
                            f"Check its spelling, or give the scheduler's IP address.") from None

    async def handshake() -> str | None:
        """What is wrong with the server at ``address``, or None (a scheduler, or nothing there yet)."""
        scheme, location = parse_address(address)
        connector = registry.get_backend(scheme).get_connector()
        try:
            comm = await asyncio.wait_for(connector.connect(location, deserialize=False,
                                                            **Security().get_connection_args("client")),
                                          _CONNECT_SECONDS)
        except OSError:  # TimeoutError (ours) is one too
            return None  # nothing accepts it (yet): the client retries, and says so when it gives up
        except Exception as exc:  # noqa: BLE001 - Dask refused to try (tls:// without its TLS settings)
            return (f"cannot be connected to: {type(exc).__name__}: {exc}. Set up Dask's TLS configuration "
                    f"(distributed.comm.tls), or give a tcp:// address")
        try:
            # Dask's own handshake (distributed.comm.core.connect): each side sends its info first.
            await comm.write(comm.handshake_info())
            await asyncio.wait_for(comm.read(), _HANDSHAKE_SECONDS)
        except TimeoutError:
            return f"accepts connections but does not answer as a Dask scheduler (the dashboard's port?). {_OWN}"
        except Exception:  # noqa: BLE001 - it answered, but not with Dask's handshake
            # What Dask makes of another protocol's reply says nothing useful (it read an HTTP
            # status line as a frame length: "MemoryError: Unable to allocate 3.07 EiB").
            return f"answers, but not as a Dask scheduler. {_OWN}"
        finally:
            comm.abort()
        return None

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="orch-dask-probe") as pool:
        problem = pool.submit(asyncio.run, handshake()).result()
    if problem is not None:
        raise UserError(f"{spelling.address_of(address)} {problem}.")


class DaskExecutor:
    """Runs attempts on a Dask cluster."""

    name = "dask"

    def __init__(self, workers: int | None = None, address: str | None = None, *, most: int | None = None,
                 spelling: Spelling = CLI) -> None:
        self._dask, distributed = _import_distributed()
        self._cluster: Any = None
        self.client: Any = None
        # A LocalCluster starts every worker before the first task: no more than the run can use.
        self._workers = max(1, min(workers or os.cpu_count() or 1, most or sys.maxsize))
        # What the LocalCluster changes in this process, undone at shutdown: ``__main__`` hidden from
        # the workers' spawn for the cluster's whole life (its nannies also spawn replacements for dead
        # workers), and the environment variables the nannies set here put back (``_environ_kept``).
        self._driver_patches = ExitStack()
        self.startup_seconds = 0.0
        # The Dask futures of the attempts without an outcome yet, by key. One that has its outcome is
        # released: a future the client holds is data Dask recomputes when the worker holding it dies,
        # which ran a finished step again, unrecorded, whenever a later step killed its worker.
        # Each with the future of its scattered payload, if it had one (see ``send``).
        self._tasks: dict[str, tuple[Any, Any]] = {}
        self._token = secrets.token_hex(4)
        # The LocalCluster's scratch folder, removed at shutdown: task start marks (see ``submit``) and
        # timed attempts' spill folders. None on a user's cluster, whose workers make their own.
        self._scratch: str | None = None
        # (node, attempt) -> the start mark of each pending task on the LocalCluster, for ``unstarted``.
        self._markers: dict[tuple[str, int], str] = {}
        self._unstarted: set[tuple[str, int]] = set()
        self._unsent: set[tuple[str, int]] = set()  # attempts whose submit Ctrl-C stopped as the cluster started
        # (node, attempt) -> (spill folder, start) of each pending timed task on the LocalCluster, for ``stopped``.
        self._spills: dict[tuple[str, int], tuple[str, float]] = {}
        self._stopped: dict[tuple[str, int], TaskResult] = {}
        self._begun: dict[tuple[str, int], float] = {}  # when each pending attempt was submitted
        # The exit codes of the LocalCluster's dead workers (None on a user's cluster), for ``_lost``.
        self._exits: WorkerExits | None = None
        # Set once the client lost its scheduler: the error of every attempt still to come (see ``submit``).
        self._lost: SchedulerLostError | None = None
        self.notice: str | None = None  # what the run should tell the user before its first attempt
        # On a cluster of the user's, how often the run loop asks ``notices`` while it waits: its
        # workers may all go (killed, scaled down), and the run would wait for a new one unsaid.
        self.poll_seconds: float | None = _POLL_SECONDS if address else None
        self._workerless = False  # said that the cluster has no workers, and none joined since
        self._address = address
        if address:
            check_address(address, spelling)
            started = time.perf_counter()
            check_scheduler_answers(address, spelling)
            try:
                self.client = distributed.Client(address, timeout=f"{_CONNECT_SECONDS}s", set_as_default=False)
            except OSError as exc:
                raise UserError(f"cannot reach the Dask scheduler at {address}: {exc}. "
                                f"Start one with `dask scheduler` or drop {spelling.address}.") from exc
            self.startup_seconds = time.perf_counter() - started
            threads = sum(self.client.nthreads().values())
            if threads == 0:
                # An adaptive cluster may start its workers for the work: wait, but say so, or the
                # run looks hung.
                self._workerless = True
                self.notice = (f"the Dask scheduler at {address} has no workers yet: steps wait until one joins "
                               f"(start one with `dask worker {address}`)")
        else:
            threads = self._workers  # one thread per worker of the LocalCluster, started when needed
            cpus = os.cpu_count() or 1
            if self._workers > cpus:
                # Each worker is a process with a nanny, started before the first task, and its memory
                # limit is its share of the machine's: forty of them on two CPUs took a minute to start
                # and gave each step 1/40 of the memory, where two workers ran the same map in 4 s.
                option = "--workers " if spelling.cli else "workers="
                self.notice = (f"{option}{workers} starts {self._workers} Dask workers on {cpus} CPUs: each takes "
                               f"seconds of CPU to start, and each step may use 1/{self._workers} of this machine's "
                               f"memory before its worker is stopped; for steps that compute, {option}{cpus} is "
                               "as fast")
        # Twice the worker threads: a queued task starts as soon as a thread frees up, instead of
        # waiting a scheduler round trip for the run loop to submit it.
        self.capacity = 2 * max(1, threads)

    def start(self) -> None:
        """Start the LocalCluster and its client, unless running (the first ``submit`` calls this).

        Deferred to the first attempt, so a fully cached run starts no
        cluster. ``startup_seconds`` is how long it took.
        """
        if self.client is not None:
            return
        started = time.perf_counter()
        self._driver_patches.enter_context(main_script_hidden())
        worker_environ = _worker_environ(self._dask)
        restore_environ = self._driver_patches.enter_context(_environ_kept([*worker_environ, *_SET_BY_NANNIES]))
        starting = _ClusterStart(self._dask, self._workers, worker_environ)
        try:
            try:
                starting.wait()
            finally:
                self._cluster, self.client = starting.cluster, starting.client
            restore_environ()  # again at shutdown: a replacement for a dead worker sets them again
            self._exits = WorkerExits()
            self._exits.watch(list(self._cluster.workers.values()))
            self._scratch = process_temp_folder("orch-dask-")  # a killed run's is removed by the next
        except BaseException as stop:
            try:
                self._close_half_started(killing=isinstance(stop, KeyboardInterrupt))
            finally:
                self._driver_patches.close()
            raise
        self.startup_seconds = time.perf_counter() - started

    def _close_half_started(self, killing: bool) -> None:
        """Close the cluster and client a failed or stopped ``start`` made; ``killing``: its workers first, at once."""
        cluster, client, self._cluster, self.client = self._cluster, self.client, None, None
        with ExitStack() as closing:  # each runs even when one before it fails
            if cluster is not None:
                closing.callback(cluster.close)
            if client is not None:
                closing.callback(client.close)
            if cluster is not None and killing:
                # Stopped as it started (Ctrl-C, SIGTERM): closing alone would wait for each worker to
                # finish starting and then stop of its own accord.
                closing.callback(cluster.sync, _kill_workers, list(cluster.workers.values()))

    def submit(self, spec: TaskSpec) -> Future[TaskResult]:
        try:
            self.start()
        except KeyboardInterrupt:
            self._unsent.add((spec.node, spec.attempt))  # it never reached a worker: no attempt of its step
            raise
        result: Future[TaskResult] = Future()
        if self._lost is not None:
            # The scheduler is gone: this attempt fails at once, as the running ones did, rather than
            # wait for Dask's reconnection to give up (and burn the step's retries meanwhile).
            from orchestrator.task import TaskResult

            now = time.time()
            result.set_result(TaskResult(node=spec.node, attempt=spec.attempt, started=now, ended=now,
                                         failure=Failure.from_exception(self._lost)))
            return result
        if self._scratch is not None and spec.timeout is not None and spec.spill is None:
            spec = replace(spec, spill=tempfile.mkdtemp(prefix="attempt-", dir=self._scratch))
        if spec.folder is None:
            # Workers of the user's cluster were started in a folder of their own: relative paths in
            # the step mean this one, as on every executor (``worker.run_spec``).
            spec = replace(spec, folder=_driver_folder())
        try:
            payload = dumps_with_user_code(spec, "a Dask worker")
        except UnpicklableStepError as refused:
            result.set_result(not_sent(spec, refused))
            return result
        started = time.time()
        if self._scratch is not None and spec.spill is not None:
            self._spills[(spec.node, spec.attempt)] = (spec.spill, started)
        self._begun[(spec.node, spec.attempt)] = started

        def send() -> None:
            key = f"orch-{spec.node}-{spec.attempt}-{self._token}-{secrets.token_hex(3)}"
            marker = os.path.join(self._scratch, key) if self._scratch is not None else None
            if marker is not None:
                self._markers[(spec.node, spec.attempt)] = marker
            scattered = None
            if len(payload) > _SCATTER_BYTES:
                # Inside the task, a large argument (a frame passed as a value) went through the
                # scheduler, which keeps copies of it: a 320 MB frame held 3.5 GB in the driver and took
                # seconds per step. Sent to a worker by itself, it is sent once, without a copy.
                scattered = self.client.scatter(payload, direct=True if self._cluster is not None else None,
                                                hash=False)
            task = self.client.submit(run_pickled, payload if scattered is None else scattered, marker, key=key,
                                      pure=False, retries=0)
            self._tasks[key] = (task, scattered)  # before its callback, which may run at once, forgets it
            task.add_done_callback(lambda done: resolve(done, marker))

        def resolve(done: Any, marker: str | None) -> None:
            from orchestrator.task import TaskResult

            if result.cancelled():
                # The run loop gave this attempt up (Ctrl-C), and then the Dask task was cancelled
                # too (a FutureCancelledError): nobody waits for its outcome.
                return
            try:
                try:
                    data: bytes | None = done.result()
                finally:
                    self._forget(done)
            except Exception as exc:  # noqa: BLE001 - anything else Dask reports is a lost attempt
                data = None
                if marker is not None and type(exc).__name__ == "KilledWorker":
                    if not os.path.exists(marker):
                        # It was only queued on a worker that another step killed: it never ran, so it
                        # is no attempt of this step. Send it again.
                        try:
                            send()
                            return
                        except Exception:  # noqa: BLE001 - the cluster is closing: report the loss below
                            pass
                    else:
                        # Dask fails every task it had not heard finish on the dead worker: one that
                        # finished just before the next step killed it (its report not yet sent) kept
                        # its result. Only the task that was running then has none: it is charged.
                        data = _kept_result(marker)
                if data is None:
                    if _scheduler_lost(exc, self.client):
                        where = self._address or getattr(self._cluster, "scheduler_address", None) or "?"
                        self._lost = SchedulerLostError(
                            f"the connection to the Dask scheduler at {where} was lost (it stopped, or the "
                            f"network failed): this run can go no further. Start the scheduler again and re-run; "
                            f"the steps that finished are cached")
                    died = self._lost or _lost(spec.node, exc, self._exits)
                    outcome = TaskResult(node=spec.node, attempt=spec.attempt, started=started,
                                         ended=time.time(), failure=Failure.from_exception(died))
            if data is not None:
                if marker is not None:
                    with suppress(OSError):  # released above: Dask will not run it again
                        os.remove(kept_result_path(marker))
                outcome = decode_result(data, spec)
                if self._address is not None and outcome.failure is not None:
                    outcome.failure = _with_import_hint(outcome.failure)
            self._markers.pop((spec.node, spec.attempt), None)  # it has an outcome: only pending ones count
            self._spills.pop((spec.node, spec.attempt), None)
            self._begun.pop((spec.node, spec.attempt), None)
            try:
                result.set_result(outcome)
            except InvalidStateError:
                pass  # cancelled by the run loop while this callback ran

        send()
        return result

    def _forget(self, task: Any) -> None:
        """Let Dask drop a task whose outcome the run has: its result is in the driver now."""
        _, scattered = self._tasks.pop(task.key, (None, None))
        task.release()
        if scattered is not None:
            scattered.release()

    def notices(self) -> list[str]:
        """What the user should hear while the run waits: the cluster lost its last worker (once per loss)."""
        if self._address is None or self.client is None or self._lost is not None:
            return []
        try:
            workers = len(self.client.nthreads())
        except Exception:  # noqa: BLE001 - the scheduler is going away: the attempts report that
            return []
        if workers:
            self._workerless = False
            return []
        if self._workerless:
            return []
        self._workerless = True
        return [f"the Dask cluster at {self._address} has no workers left: steps wait until one joins "
                f"(start one with `dask worker {self._address}`)"]

    def shutdown(self, cancel: bool = False) -> None:
        with ExitStack() as closing:  # each step runs even when one before it fails
            closing.callback(self._driver_patches.close)
            if self._scratch is not None:
                closing.callback(shutil.rmtree, self._scratch, ignore_errors=True)
            if self._cluster is not None:
                closing.callback(self._cluster.close)
            if self.client is not None:
                if self._lost is not None:
                    # Closing stops the client's attempts to reconnect, which Dask logs as an error
                    # with a traceback of its own: the run already said that the scheduler is gone.
                    # (Entered first, left last: the callbacks run in reverse order.)
                    closing.enter_context(_silenced("distributed.client", "distributed.utils"))
                closing.callback(self.client.close)
            if cancel:
                # On a user's cluster a running task cannot be stopped: cancelling only forgets it.
                for task, _ in list(self._tasks.values()):
                    task.cancel()
                if self._cluster is not None:
                    printed = self._snapshots()  # before the workers, and what their steps printed, go
                    try:
                        self._cluster.sync(_kill_workers, list(self._cluster.workers.values()))
                    finally:
                        # Looked at once the workers are dead (no task can start any more), before the
                        # scratch folder goes. On a user's cluster nothing marks a start: none is known.
                        self._unstarted = {k for k, mark in list(self._markers.items()) if not os.path.exists(mark)}
                        self._stopped = {key: replace(stopped, started=self._worker_started(key, stopped.started))
                                         for key, stopped in (printed | _spilled(self._spills, self._unstarted)).items()}

    def _snapshots(self) -> dict[tuple[str, int], TaskResult]:
        """What the untimed steps running on the LocalCluster's workers have printed and logged so far.

        Asked of every worker at once; one whose step holds the interpreter (a long
        call into C that keeps the GIL) cannot answer within ``_SNAPSHOT_SECONDS``,
        and then none is waited for longer: those attempts are recorded without output.
        """
        from concurrent.futures import ThreadPoolExecutor

        from orchestrator.task import TaskResult

        asking = ThreadPoolExecutor(1, thread_name_prefix="orch-dask-snapshots")
        try:
            answers = asking.submit(self.client.run, running_snapshot, on_error="return").result(_SNAPSHOT_SECONDS)
        except Exception:  # noqa: BLE001 - a worker that does not answer in time, or a closing cluster
            answers = {}
        finally:
            asking.shutdown(wait=False)
        now, printed = time.time(), {}
        for answer in answers.values():
            if isinstance(answer, tuple):
                node, attempt, stdout, stderr, logs = answer
                printed[(node, attempt)] = TaskResult(node=node, attempt=attempt,
                                                      started=self._begun.get((node, attempt), now), ended=now,
                                                      stdout=stdout, stderr=stderr, logs=logs)
        return printed

    def _worker_started(self, key: tuple[str, int], sent: float) -> float:
        """When a LocalCluster worker began the attempt ``key`` (its start mark's time), else ``sent``.

        Sent is when it was submitted: it may have waited on its worker behind another task.
        """
        mark = self._markers.get(key)
        try:
            return os.path.getmtime(mark) if mark is not None else sent
        except OSError:
            return sent

    def unstarted(self) -> set[tuple[str, int]]:
        """Attempts that were only queued on the LocalCluster when ``shutdown(cancel=True)`` killed it.

        Or not even sent: Ctrl-C stopped the LocalCluster's start that their ``submit`` began.
        """
        return self._unstarted | self._unsent

    def stopped(self) -> dict[tuple[str, int], TaskResult]:
        """Timed attempts the LocalCluster ran when ``shutdown(cancel=True)`` killed it, with their spilled output."""
        return dict(self._stopped)


def _kept_result(marker: str) -> bytes | None:
    """The result ``run_pickled`` kept for the task that ``marker`` marks, None if it never finished."""
    try:
        with open(kept_result_path(marker), "rb") as f:
            return f.read()
    except OSError:
        return None


class _ClusterStart:
    """A LocalCluster and its client, started in a thread of its own, which Ctrl-C cannot cut short.

    Interrupted inside ``LocalCluster(...)``, Dask was left with a cluster it never returned,
    half started: nothing could close it, and its atexit hook failed on it with tracebacks
    (``AssertionError: Status.init``, ``Nanny failed to start``) after the run's summary. Here
    the main thread only waits; stopped (Ctrl-C, SIGTERM), it waits on until the start is over,
    and ``start`` has a cluster it can kill. That thread holds SIGINT blocked, and so do the
    threads Dask starts from it and the worker processes they spawn, until each worker ignores
    it (``dask_setup``): Ctrl-C in a terminal, which reaches the whole process group, killed a
    worker in the middle of its imports, with a ``KeyboardInterrupt`` traceback of its own.
    """

    def __init__(self, dask: Any, workers: int, worker_environ: dict[str, Any]) -> None:
        self.cluster: Any = None
        self.client: Any = None
        self._error: BaseException | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._start, args=(dask, workers, worker_environ),
                                        name="orch-dask-start", daemon=True)
        self._thread.start()

    def _start(self, dask: Any, workers: int, worker_environ: dict[str, Any]) -> None:
        import distributed

        try:
            if hasattr(signal, "pthread_sigmask"):
                # multiprocessing unblocks SIGINT in the thread that starts its resource tracker (with the
                # first process it spawns, before spawning that one): started first, it leaves the mask be.
                from multiprocessing import resource_tracker

                resource_tracker.ensure_running()
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # this thread's only: the driver's stays
            with dask.config.set({"distributed.scheduler.allowed-failures": 0,
                                  "distributed.nanny.pre-spawn-environ": worker_environ}):
                self.cluster = distributed.LocalCluster(
                    n_workers=workers, threads_per_worker=1,
                    processes=True, dashboard_address="127.0.0.1:0", silence_logs=50,
                    preload=["orchestrator.executors.worker"])
                if self._stopping.is_set():
                    return
                self.client = distributed.Client(self.cluster, set_as_default=False)
                if not self._stopping.is_set():
                    # Every worker is up before the first task: its capacity is what the run loop counts on.
                    self.client.wait_for_workers(workers, timeout=60)
        except BaseException as exc:  # noqa: BLE001 - raised in the thread that waits for it
            self._error = exc

    def wait(self) -> None:
        """Wait for the start to end; raise what it raised, or the Ctrl-C (or SIGTERM) that came meanwhile."""
        try:
            self._thread.join()
        except KeyboardInterrupt:
            self._stopping.set()
            while self._thread.is_alive():
                with suppress(KeyboardInterrupt):  # pressed again: the start ends within seconds, then all stops
                    self._thread.join()
            raise
        if self._error is not None:
            raise self._error


def _spilled(spills: dict[tuple[str, int], tuple[str, float]],
             unstarted: set[tuple[str, int]]) -> dict[tuple[str, int], TaskResult]:
    """The started attempts of ``spills`` with what each wrote to its spill folder (read before the scratch goes)."""
    from orchestrator.capture import read_spill
    from orchestrator.task import TaskResult

    stopped = {}
    for (node, attempt), (folder, started) in list(spills.items()):
        if (node, attempt) in unstarted:
            continue
        stdout, stderr, logs = read_spill(folder)
        stopped[(node, attempt)] = TaskResult(node=node, attempt=attempt, started=started, ended=time.time(),
                                              stdout=stdout, stderr=stderr, logs=logs)
    return stopped


def _with_import_hint(failure: Failure) -> Failure:
    """A ``ModuleNotFoundError`` on a worker of the user's cluster, for a module this process can import.

    Those workers have neither the user's files nor their folder on ``sys.path``: the
    user's modules reach them with the step's code, by value, only when the step's module
    imported them (at its top), not when the step imports them as it runs. A library
    installed here may be missing in the workers' environment.
    """
    if not failure.is_instance_of((ModuleNotFoundError,)):
        return failure
    match = re.match(r"No module named '([^']+)'", failure.message)
    if match is None:
        return failure
    import importlib.util

    from orchestrator.user_code import is_user_module

    top = match[1].partition(".")[0]
    try:
        found = importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        return failure  # missing here too: nothing to tell
    if is_user_module(top):
        hint = (f"your module '{top}' cannot be imported on the Dask workers, which have neither your files nor "
                f"their folder: import it at the top of the step's file, not inside the step, and it travels "
                f"with the step's code; see docs/execution.md")
    else:
        hint = f"'{top}' is installed here but not where the Dask workers run: install it in their environment"
    return replace(failure, message=f"{failure.message} ({hint})")


def _driver_folder() -> str | None:
    """This process's working folder, None if it was deleted."""
    try:
        return os.getcwd()
    except OSError:
        return None


# Set in the driver's own ``os.environ`` by distributed's nannies when they spawn a worker, besides
# the pre-spawn environment: a seed for ``hash()`` and the pid that names the workers' process titles.
_SET_BY_NANNIES = ("PYTHONHASHSEED", "__DASK_PARENT_PID")


@contextmanager
def _environ_kept(names: list[str]) -> Iterator[Callable[[], None]]:
    """Put the variables ``names`` of ``os.environ`` back as they were, when the block ends and when called.

    A nanny does ``os.environ.update`` in the driver before it spawns its worker, so a notebook that ran
    a pipeline on Dask was left with ``PYTHONHASHSEED=6640`` and ``MALLOC_TRIM_THRESHOLD_`` for every
    process it started afterwards. The workers have theirs by then: they inherit them when spawned.
    """
    kept = {name: os.environ.get(name) for name in names}

    def restore() -> None:
        for name, value in kept.items():
            if value is None:
                os.environ.pop(name, None)
            elif os.environ.get(name) != value:
                os.environ[name] = value

    try:
        yield restore
    finally:
        restore()


@contextmanager
def _silenced(*names: str) -> Iterator[None]:
    """Drop the records of the loggers ``names`` (and below) until the block ends."""
    import logging

    loggers = [logging.getLogger(name) for name in names]
    disabled = [logger.disabled for logger in loggers]
    for logger in loggers:
        logger.disabled = True
    try:
        yield
    finally:
        for logger, was in zip(loggers, disabled, strict=True):
            logger.disabled = was


def _scheduler_lost(exc: Exception, client: Any) -> bool:
    """Whether Dask gave an attempt up because its client lost the scheduler (not one worker).

    Dask cancels the client's futures when it loses the scheduler: since distributed 2024.8 with a
    ``FutureCancelledError`` that gives the reason, before that with a bare ``CancelledError`` (its base
    class), when only the client's status tells why.
    """
    if not isinstance(exc, CancelledError):
        return False
    return getattr(exc, "reason", None) == "scheduler-connection-lost" or \
        getattr(client, "status", "running") in ("connecting", "closing", "closed")


_EXIT_CODE_SECONDS = 2.0  # how long a lost task waits for the nanny to reap its dead worker


def _lost(node: str, exc: Exception, exits: WorkerExits | None = None) -> WorkerDiedError:
    """The error of an attempt Dask lost: a dead worker in one line, without Dask's advice and task key.

    On the LocalCluster (``exits`` given) it says how the worker ended, as the process pool
    does: its log, silenced, cannot say. On a user's cluster it names the worker, whose log can.
    """
    if type(exc).__name__ == "KilledWorker":
        last = getattr(exc, "last_worker", None)
        worker = getattr(last, "address", None)
        if exits is not None:
            pid = getattr(last, "pid", None)
            code = exits.code_of(pid, wait=_EXIT_CODE_SECONDS)
            over = exits.over_memory(pid)
            if code is not None and over is not None:
                fraction, limit = over
                return WorkerDiedError(
                    f"the Dask worker running step '{node}' was stopped by its nanny (exit code {code}) for using "
                    f"more than {fraction:.0%} of its memory limit of {limit / 2**30:.1f} GiB: give the step less "
                    "data at a time, run it on fewer workers (the LocalCluster gives each an equal share of this "
                    "machine's memory), or use the process executor, whose workers have no memory limit of their own")
            if code is not None:
                return WorkerDiedError(f"the Dask worker running step '{node}' died {died_because(code)} "
                                       f"before reporting a result")
            return WorkerDiedError(f"the Dask worker running step '{node}' died before reporting a result "
                                   f"({MEMORY_ADVICE})")
        where = f" ({worker}; its log may say why; {MEMORY_ADVICE})" if worker else f" ({MEMORY_ADVICE})"
        return WorkerDiedError(f"the Dask worker running step '{node}' died before reporting a result{where}")
    return WorkerDiedError(f"the Dask task of step '{node}' was lost: {type(exc).__name__}: {exc}")


# Dask starts its workers with these at 1. A BLAS routine on one thread adds up in another order
# than on several, so a model fitted there differs in its last bits, and so does its digest,
# from the same step run sequentially or in the process pool. Our workers run BLAS as the driver does.
_BLAS_THREADS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def _worker_environ(dask: Any) -> dict[str, Any]:
    """Dask's environment for new workers, with the BLAS thread settings left to the driver's own."""
    environ = {name: value for name, value in dask.config.get("distributed.nanny.pre-spawn-environ").items()
               if name not in _BLAS_THREADS}
    environ.update({name: os.environ[name] for name in _BLAS_THREADS if name in os.environ})
    return environ


async def _kill_workers(nannies: list[Any]) -> None:
    """Stop our LocalCluster's workers now, running tasks and all (Ctrl-C).

    Closing the cluster would give each busy worker 4 s to finish its task
    before killing it. Each worker process is killed here instead, once its
    nanny was told not to start a replacement; the nanny is then closed, and
    finds its worker gone. Each worker goes with the processes below it, as a
    process pool's worker does. (A nanny closed with a short timeout to the same
    end raised TimeoutError under distributed before 2024.8 and was left
    closing for good: closing the cluster then waited on it forever.)
    """
    for nanny in nannies:
        nanny.close_gracefully(reason="orch-cancel")  # a worker that dies now is not replaced
        if nanny.pid is not None:
            # With the processes its step started (a ``subprocess.run``, a timed step's child and
            # what that started): killed alone, the worker left them running, orphaned.
            kill_tree(nanny.pid)
    await asyncio.gather(*(nanny.close(reason="orch-cancel") for nanny in nannies), return_exceptions=True)
