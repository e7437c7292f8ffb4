"""Figures 10-12: the same pipelines on the sequential, process-pool and Dask executors.

10: sixteen independent CPU-bound steps, each a pure-Python loop that burns
0.5 s of its thread's CPU time, fanned into one final step; wall time of the
run on ``sequential``, ``process`` with 2 workers and ``dask`` with 2 worker
processes, each on a fresh store. Dask's time leaves out the cluster's start-up:
the LocalCluster is started here, with the settings the executor uses for its
own, and the runs are given its ``address``. The executor's own start-up
(``DaskExecutor.startup_seconds`` of ``make_executor("dask", 2)``, started) is measured
on its own line. The process pool starts its workers inside every run, so its
time includes that. Baselines: the same sixteen calls as a plain loop and on a
plain ``multiprocessing`` pool of 2 spawned processes.

11: 500 trivial steps fanned into one, on each executor: the marginal cost per
step, (500-step run - 1-step run) / 499, so that start-up and the run's fixed
cost are left out. Beside it, for Dask, raw ``Client.submit`` round trips with
2 tasks in flight, which is how the run loop feeds a 2-worker cluster.

12: a 3-step chain that passes a 1 GB DataFrame (200 MB with ``--quick``), then
the same with 10 MB, on a Dask scheduler and two Dask workers started here as
separate processes on 127.0.0.1. Reported: the peak resident memory of the
scheduler and of this process (the driver, which holds the Dask client), as
growth over their resident size just before the run. Data should go from
worker to store to worker only, so neither should grow with the artifact.

Everything listens on 127.0.0.1 only, and every process started here is stopped
before returning, also when something fails. This module measures; it asserts
nothing about time.
"""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
import queue
import signal
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import Figure, Stores, at_least, at_most, progress, temp_dir, timed

from orchestrator import pipeline, step
from orchestrator.pipeline import Pipeline

if TYPE_CHECKING:
    import pandas as pd

NAME = "executors"
TITLE = "sequential vs process pool vs Dask: CPU-bound fan, cost per step, memory (figures 10-12)"

WORKERS = 2
CPU_STEPS, CPU_SECONDS = 16, 0.5
NOOP_STEPS = 500
COLUMNS = 8
LARGE_BYTES, LARGE_BYTES_QUICK, SMALL_BYTES = 1_000_000_000, 200_000_000, 10_000_000
#: The 1 GB run "grows about as much as the 10 MB one": within this share of the large artifact.
MEMORY_TOLERANCE = 0.05
HOST = "127.0.0.1"
#: What the Dask executor sets for the LocalCluster it starts itself (see executors/dask.py).
DASK_SETTINGS = {"distributed.scheduler.allowed-failures": 0, "distributed.worker.daemon": False}


def spin(seconds: float) -> int:
    """Burn ``seconds`` of this thread's CPU time in pure Python (never sleeps).

    The plain pool baseline imports this module in its workers, so pandas and
    numpy are imported inside the steps that use them, not at the top.
    """
    end = time.thread_time() + seconds
    x = 0
    while time.thread_time() < end:
        for k in range(1000):
            x += k
    return x


@step
def burn(i: int, seconds: float) -> int:
    spin(seconds)
    return i


@step
def noop(i: int) -> int:
    return i


@step
def gather(values: list[int]) -> int:
    return sum(values)


@step
def make_block(rows: int) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    base = np.arange(rows, dtype=np.float64)
    return pd.DataFrame({f"c{i}": base + i for i in range(COLUMNS)})


@step
def scale_block(block: pd.DataFrame) -> pd.DataFrame:
    return block * 2.0


@step
def block_sum(block: pd.DataFrame) -> float:
    return float(block["c0"].sum())


@pipeline
def cpu_fan(n: int = CPU_STEPS, seconds: float = CPU_SECONDS):
    return gather([burn(i, seconds) for i in range(n)])


@pipeline
def noop_fan(n: int = NOOP_STEPS):
    return gather([noop(i) for i in range(n)])


@pipeline
def block_chain(rows: int = 16):
    return block_sum(scale_block(make_block(rows)))


def run(quick: bool) -> list[Figure]:
    import dask
    import distributed

    reps = 1 if quick else 3
    loadavg = Path("/proc/loadavg").read_text().split()[0]
    with temp_dir(NAME) as root:
        stores = Stores(root)
        _run(cpu_fan, stores.fresh("warm-up"), n=2, seconds=0.01)
        _run(noop_fan, stores.fresh("warm-up"), n=2)

        progress(f"Dask executor start-up: make_executor('dask', {WORKERS}), {1 if quick else 2}×")
        startups, shutdowns = zip(*(_dask_executor_startup() for _ in range(1 if quick else 2)))

        progress(f"starting a {WORKERS}-worker LocalCluster on {HOST} for the Dask runs")
        started = time.perf_counter()
        with dask.config.set(DASK_SETTINGS):
            cluster = distributed.LocalCluster(
                n_workers=WORKERS, threads_per_worker=1, processes=True, host=HOST,
                dashboard_address=f"{HOST}:0", local_directory=str(root / "dask"), silence_logs=40)
        try:
            client = distributed.Client(cluster, set_as_default=False)
            cluster_start = time.perf_counter() - started
            address = cluster.scheduler_address
            # Workers import the orchestrator on their first task; that is start-up too.
            tiny = tuple(timed(lambda: _run(cpu_fan, stores.fresh("warm-up"), n=2, seconds=0.01,
                                            executor="dask", address=address)) for _ in range(2))
            cpu = _cpu_runs(stores, address, reps)
            noop_reps = {"sequential": 3 if quick else 5, "process": reps, "dask": 1 if quick else 2}
            noop = _noop_runs(stores, address, noop_reps)
            progress(f"raw Dask: {NOOP_STEPS} Client.submit round trips, {WORKERS} in flight and all at once")
            _raw_dask(client, 20, WORKERS)
            raw = _raw_dask(client, NOOP_STEPS, WORKERS), _raw_dask(client, NOOP_STEPS, NOOP_STEPS)
            client.close()
        finally:
            cluster.close()

        large_bytes = LARGE_BYTES_QUICK if quick else LARGE_BYTES
        progress(f"dask scheduler + {WORKERS} dask workers as processes; 3-step chain of "
                 f"{_size_text(SMALL_BYTES)} and {_size_text(large_bytes)}")
        memory = _memory(root / "memory", stores, large_bytes)

    figures = _cpu_figures(cpu, list(startups), list(shutdowns), cluster_start, tiny, reps, loadavg)
    figures += _noop_figures(*noop, noop_reps, *raw)
    figures += _memory_figures(memory, large_bytes)
    return figures


# -- figure 10 -----------------------------------------------------------------------------


class Contention:
    """How much CPU processes outside this benchmark used while timed runs ran.

    This VM is shared: a CPU-bound fan on 2 cores is only as fast as the cores
    other work leaves it, so each figure 10 note says how busy the machine was.
    """

    def __init__(self) -> None:
        self.other = self.available = self.ours = 0.0
        self.runs = 0

    def timed(self, fn: Any) -> float:
        machine, ours = _machine_cpu(), _own_cpu()
        seconds = timed(fn)
        used = _own_cpu() - ours
        self.other += max(0.0, (_machine_cpu() - machine) - used)
        self.ours += used
        self.available += seconds * (os.cpu_count() or 1)
        self.runs += 1
        return seconds

    def text(self) -> str:
        share = self.other / self.available if self.available else 0.0
        return (f"other processes used {share:.0%} of the machine's CPU meanwhile; this benchmark's "
                f"processes used {self.ours / max(1, self.runs):.1f} CPU-s per run")


def _machine_cpu() -> float:
    """CPU-seconds the whole machine has been busy (user, nice, system, irq, softirq, steal)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    busy = sum(int(fields[i]) for i in (0, 1, 2, 5, 6, 7))
    return busy / os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    """CPU-seconds of this process, its reaped children and its live descendants (Dask workers)."""
    own = os.times()
    total = own.user + own.system + own.children_user + own.children_system
    for pid in _descendants(os.getpid()):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total



def _cpu_runs(stores: Stores, address: str, reps: int) -> dict[str, Any]:
    """Wall times of the CPU-bound fan: plain loop and sequential once, then pool, process and Dask
    interleaved ``reps`` times, each with the CPU other processes used meanwhile."""
    progress(f"{CPU_STEPS} steps of {CPU_SECONDS} s CPU: plain loop, sequential run")
    busy = {name: Contention() for name in ("sequential", "pool", "process", "dask")}
    plain_loop = busy["sequential"].timed(lambda: [spin(CPU_SECONDS) for _ in range(CPU_STEPS)])
    sequential = busy["sequential"].timed(lambda: _run(cpu_fan, stores.fresh("cpu-sequential")))
    progress(f"the same on a plain pool, process executor and Dask, {reps}× each, interleaved")
    pool, process, on_dask = [], [], []
    for _ in range(reps):
        pool.append(busy["pool"].timed(_plain_pool))
        process.append(busy["process"].timed(lambda: _run(cpu_fan, stores.fresh("cpu-process"),
                                                          executor="process", workers=WORKERS)))
        on_dask.append(busy["dask"].timed(lambda: _run(cpu_fan, stores.fresh("cpu-dask"),
                                                       executor="dask", address=address)))
    return {"plain_loop": plain_loop, "sequential": sequential, "pool": pool, "process": process,
            "dask": on_dask, "busy": busy}


def _cpu_figures(cpu: dict[str, Any], startups: list[float], shutdowns: list[float],
                 cluster_start: float, tiny: tuple[float, ...], reps: int, loadavg: str) -> list[Figure]:
    plain_loop, sequential, busy = cpu["plain_loop"], cpu["sequential"], cpu["busy"]
    pool, process, on_dask = cpu["pool"], cpu["process"], cpu["dask"]
    pool_s, process_s, dask_s = (statistics.median(v) for v in (pool, process, on_dask))
    speedup, pool_speedup = sequential / process_s, plain_loop / pool_s
    relative = dask_s / process_s
    work = f"{CPU_STEPS} × {CPU_SECONDS} s of CPU + 1 gather step"
    spread = f"median of {reps}" if reps > 1 else "1 run"
    return [
        Figure("executors.cpu_sequential_s", f"10  {CPU_STEPS} CPU-bound steps, sequential", sequential, "s",
               plain_loop, "plain loop",
               note=f"{work}; 1 run each; 1-minute load average before the benchmark {loadavg}; "
                    + busy["sequential"].text()),
        Figure("executors.cpu_process_s", f"10a same, process, {WORKERS} workers", process_s, "s",
               pool_s, f"plain spawn Pool({WORKERS})",
               note=f"{spread} ({', '.join(f'{t:.2f}' for t in process)} s); includes starting the pool; "
                    f"{busy['process'].text()}; the plain pool's runs {', '.join(f'{t:.2f}' for t in pool)} s, "
                    f"{busy['pool'].text()}"),
        Figure("executors.cpu_dask_s", f"10b same, dask, {WORKERS}-worker LocalCluster", dask_s, "s",
               process_s, "process",
               note=f"{spread} ({', '.join(f'{t:.2f}' for t in on_dask)} s); start-up excluded: the "
                    f"cluster was started beforehand ({cluster_start:.2f} s) and passed as address=, "
                    f"and had run two tiny pipelines; {busy['dask'].text()}"),
        Figure("executors.cpu_process_speedup", "10c process speed-up over sequential", speedup, "×",
               pool_speedup, "plain pool over plain loop", "≥ 1.8×", at_least(speedup, 1.8)),
        Figure("executors.cpu_dask_vs_process", "10d dask time ÷ process time", relative, "×",
               target="≤ 1.15× (within 15 %)", meets=at_most(relative, 1.15)),
        Figure("executors.dask_startup_s", f"10e dask start-up, make_executor('dask', {WORKERS})",
               statistics.median(startups), "s",
               note=f"DaskExecutor.startup_seconds, {', '.join(f'{t:.2f}' for t in startups)} s: a "
                    f"LocalCluster and its client; closing it took {', '.join(f'{t:.2f}' for t in shutdowns)} s. "
                    f"A run without address= pays both, and its first tasks pay the workers' imports: a "
                    f"3-step run took {tiny[0]:.2f} s on a fresh cluster, {tiny[1]:.2f} s on a warm one"),
    ]


def _dask_executor_startup() -> tuple[float, float]:
    """(startup_seconds, seconds to shut down) of the executor a run with executor='dask' makes."""
    from orchestrator.executors import make_executor

    with warnings.catch_warnings():
        # Its LocalCluster asks for the default dashboard port, taken if another cluster is up.
        warnings.filterwarnings("ignore", "Port .* is already in use")
        executor: Any = make_executor("dask", WORKERS)
    try:
        executor.start()  # what a run's first attempt does
        startup = executor.startup_seconds
    finally:
        shutdown = timed(executor.shutdown)
    return startup, shutdown


def _plain_pool() -> None:
    with multiprocessing.get_context("spawn").Pool(WORKERS) as pool:
        pool.map(spin, [CPU_SECONDS] * CPU_STEPS, chunksize=1)


# -- figure 11 -----------------------------------------------------------------------------


def _noop_runs(stores: Stores, address: str,
               reps: dict[str, int]) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """(marginal seconds per step, 500-step run, 1-step run) on each executor, medians of ``reps``."""
    progress(f"{NOOP_STEPS} trivial steps and a 1-step run on each executor")
    options: dict[str, dict[str, Any]] = {
        "sequential": {}, "process": {"executor": "process", "workers": WORKERS},
        "dask": {"executor": "dask", "address": address}}
    marginal, whole, fixed = {}, {}, {}
    for name, opts in options.items():
        big = [timed(lambda: _run(noop_fan, stores.fresh(f"noop-{name}"), **opts)) for _ in range(reps[name])]
        small = [timed(lambda: _run(noop_fan, stores.fresh(f"noop1-{name}"), n=1, **opts))
                 for _ in range(reps[name])]
        whole[name], fixed[name] = statistics.median(big), statistics.median(small)
        marginal[name] = (whole[name] - fixed[name]) / (NOOP_STEPS - 1)
    return marginal, whole, fixed


def _noop_figures(marginal: dict[str, float], whole: dict[str, float], fixed: dict[str, float],
                  reps: dict[str, int], raw_paced: float, raw_all: float) -> list[Figure]:
    us = 1e6
    figures = []
    for letter, name in (("", "sequential"), ("a", "process"), ("b", "dask")):
        where = {"sequential": "sequential", "process": f"process, {WORKERS} workers",
                 "dask": f"dask, {WORKERS}-worker LocalCluster"}[name]
        figures.append(Figure(
            f"executors.noop_{name}_us", f"11{letter:<2}{NOOP_STEPS} trivial steps, {where}: per step",
            marginal[name] * us, "µs", None if name == "sequential" else marginal["sequential"] * us,
            "" if name == "sequential" else "sequential",
            note=f"(run of {NOOP_STEPS} + gather − run of 1 + gather) ÷ {NOOP_STEPS - 1}; whole runs "
                 f"{whole[name] * 1e3:,.0f} ms and {fixed[name] * 1e3:,.0f} ms; "
                 + (f"median of {reps[name]} each" if reps[name] > 1 else "1 run each")
                 + ("; a fresh pool each run" if name == "process" else "")
                 + ("; cluster already started" if name == "dask" else "")))
    figures.append(Figure(
        "executors.raw_dask_us", f"11c raw Client.submit round trip, {WORKERS} in flight", raw_paced * us, "µs",
        raw_all * us, f"all {NOOP_STEPS} at once",
        note=f"{NOOP_STEPS} trivial tasks on the same cluster, per task, at most one per worker thread "
             f"submitted (the run loop keeps up to twice that, {2 * WORKERS}); 1 run each"))
    return figures


def _raw_dask(client: Any, tasks: int, in_flight: int) -> float:
    """Seconds per task of ``tasks`` trivial Dask tasks, never more than ``in_flight`` submitted.

    Completion comes back through ``add_done_callback``, as in the Dask executor.
    """
    finished: queue.SimpleQueue[Any] = queue.SimpleQueue()
    live = set()  # Dask forgets a task whose future is garbage-collected

    def submit(i: int) -> None:
        future = client.submit(abs, -i, pure=False)
        live.add(future)
        future.add_done_callback(finished.put)

    gc.collect()
    start = time.perf_counter()
    submitted = min(in_flight, tasks)
    for i in range(submitted):
        submit(i)
    for _ in range(tasks):
        future = finished.get()
        future.result()
        live.discard(future)
        if submitted < tasks:
            submit(submitted)
            submitted += 1
    return (time.perf_counter() - start) / tasks


# -- figure 12 -----------------------------------------------------------------------------


def _memory(folder: Path, stores: Stores, large_bytes: int) -> dict[str, dict[str, float]]:
    """Peak memory growth of the scheduler, the workers and this process, per artifact size."""
    folder.mkdir(parents=True)
    results: dict[str, dict[str, float]] = {}
    with _dask_processes(folder) as (address, scheduler, workers):
        _run(block_chain, stores.fresh("warm-up"), rows=16, executor="dask", address=address)
        for label, nbytes in (("small", SMALL_BYTES), ("large", large_bytes)):
            gc.collect()
            worker_pids = [pid for w in workers for pid in _descendants(w.pid)]
            pids = {"scheduler": scheduler.pid, "driver": os.getpid()}
            before = {name: _status(pid)["VmRSS"] for name, pid in pids.items()}
            for pid in [*pids.values(), *worker_pids]:
                _reset_peak(pid)
            seconds = timed(lambda: _run(block_chain, stores.fresh(f"memory-{label}"),
                                         rows=nbytes // (COLUMNS * 8), executor="dask", address=address))
            peak = {name: _status(pid)["VmHWM"] for name, pid in pids.items()}
            results[label] = {
                "seconds": seconds,
                "scheduler_before": before["scheduler"], "scheduler_growth": peak["scheduler"] - before["scheduler"],
                "driver_before": before["driver"], "driver_growth": peak["driver"] - before["driver"],
                "worker_peak": max((_status(pid)["VmHWM"] for pid in worker_pids), default=0.0),
            }
    return results


def _memory_figures(memory: dict[str, dict[str, float]], large_bytes: int) -> list[Figure]:
    small, large = memory["small"], memory["large"]
    size, small_size = _size_text(large_bytes), _size_text(SMALL_BYTES)
    slack = large_bytes * MEMORY_TOLERANCE / 1e6
    figures = []
    for key, label, who in (("scheduler", "12 ", "dask scheduler process"),
                            ("driver", "12a", "driver (this process, Dask client)")):
        growth, baseline = large[f"{key}_growth"] / 1e6, small[f"{key}_growth"] / 1e6
        figures.append(Figure(
            f"executors.memory_{key}_mb", f"{label} {who}: peak RSS growth, {size} chain", growth, "MB",
            baseline, f"same, {small_size}", f"≤ {small_size} figure + {slack:.0f} MB",
            at_most(growth, baseline + slack),
            note=f"peak (VmHWM, reset before each run) − resident before the run "
                 f"({large[f'{key}_before'] / 1e6:.0f} MB and {small[f'{key}_before'] / 1e6:.0f} MB before); "
                 f"make_block -> scale_block -> block_sum"
                 + (f"; runs took {large['seconds']:.1f} s and {small['seconds']:.1f} s; workers peaked "
                    f"at {large['worker_peak'] / 1e9:.2f} GB and {small['worker_peak'] / 1e9:.2f} GB"
                    if key == "scheduler" else "")))
    return figures


@contextmanager
def _dask_processes(folder: Path) -> Iterator[tuple[str, subprocess.Popen[bytes], list[subprocess.Popen[bytes]]]]:
    """A ``dask scheduler`` and 2 ``dask worker`` processes on 127.0.0.1, stopped on the way out."""
    import distributed

    env = {**os.environ, "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"}
    log = (folder / "dask.log").open("wb")
    procs: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> subprocess.Popen[bytes]:
        # A session of its own, so that stopping it also stops the worker process its nanny starts.
        proc = subprocess.Popen([sys.executable, "-m", *args], stdout=log, stderr=subprocess.STDOUT,
                                env=env, cwd=folder, start_new_session=True)
        procs.append(proc)
        return proc

    try:
        scheduler_file = folder / "scheduler.json"
        # --no-dashboard still starts an HTTP server, on all interfaces unless told otherwise.
        scheduler = start("distributed.cli.dask_scheduler", "--host", HOST, "--port", "0", "--no-dashboard",
                          "--dashboard-address", f"{HOST}:0", "--scheduler-file", str(scheduler_file))
        address = _scheduler_address(scheduler_file, scheduler, folder / "dask.log")
        workers = [start("distributed.cli.dask_worker", address, "--host", HOST, "--nworkers", "1",
                         "--nthreads", "1", "--no-dashboard", "--dashboard-address", f"{HOST}:0",
                         "--name", f"bench-{i}",
                         "--local-directory", str(folder / f"worker-{i}"))
                   for i in range(WORKERS)]
        with distributed.Client(address, timeout="30s", set_as_default=False) as client:
            client.wait_for_workers(WORKERS, timeout=60)
        yield address, scheduler, workers
    finally:
        for proc in reversed(procs):
            _stop(proc)
        log.close()


def _scheduler_address(path: Path, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"dask scheduler exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
        try:
            return str(json.loads(path.read_text())["address"])
        except (OSError, ValueError, KeyError):
            time.sleep(0.05)
    raise RuntimeError(f"dask scheduler did not write {path} within {timeout:g} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group this module started, then SIGKILL what is left of it."""
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
            try:
                os.killpg(proc.pid, 0)  # the group leader is gone; is a child of it left?
            except ProcessLookupError:
                break
            time.sleep(0.2)
        except subprocess.TimeoutExpired:
            continue
    proc.wait()


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid``. Each thread lists its own children: a nanny starts its worker
    from a thread other than the main one."""
    found = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            pids = children.read_text().split()
        except OSError:
            continue
        for child in map(int, pids):
            found += [child, *_descendants(child)]
    return found


def _status(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of a process, in bytes."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = float(rest.split()[0]) * 1024
    return values


def _reset_peak(pid: int) -> None:
    """Make VmHWM start again from the current resident size (Linux: clear_refs 5)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError as exc:
        raise RuntimeError(f"cannot reset the peak memory of process {pid}: {exc}") from exc


# -- shared --------------------------------------------------------------------------------


def _run(p: Pipeline, store: str, **options: Any) -> None:
    result = p.run(store=store, **options)
    if result.status != "succeeded":
        raise RuntimeError(f"benchmark pipeline {p.name} {result.status}: {result.error}")
    if any(s.status != "ran" for s in result.steps.values()):
        raise RuntimeError(f"every step of {p.name} was expected to run on a fresh store: {result.steps}")


def _size_text(nbytes: int) -> str:
    return f"{nbytes / 1e9:g} GB" if nbytes >= 1e9 else f"{nbytes / 1e6:g} MB"
