"""One run while it executes: the loop that walks the DAG, and the records it writes.

A node whose inputs are done gets its key; a hit is recorded without loading
anything; a miss takes the key's lock (so concurrent runs compute it once) and
is submitted to the executor; each attempt's result is recorded (outputs,
attempts, edges, cache entry) through the group commit (``commits``). Failures
are retried by the step's policy; a final failure skips only what depends on
it. A map over a step's output becomes one node per item when that output is
ready; a map over a map's result, when that map does (each item waiting for its
own). ``runner.run_pipeline`` builds the DAG and starts a ``RunLoop``.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import logging
import os
import platform
import secrets
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import TYPE_CHECKING, Any

from orchestrator import cache, store_identity
from orchestrator.capture import new_spill_folder
from orchestrator.class_refs import GONE_CODE
from orchestrator.commits import GroupCommit
from orchestrator.context import Context
from orchestrator.dag import (
    DAG,
    Node,
    changed_files,
    expand_map,
    filled_item,
    map_digests,
    rebuilt,
    rekey,
    substitute,
)
from orchestrator.effects import EffectContext, handler_for, records_first
from orchestrator.environment import git_commit, jsonable, package_versions, user_name
from orchestrator.errors import (
    CorruptArtifactError,
    DamagedRecordError,
    MissingArtifactError,
    OrchestratorError,
    StoreDeletedError,
    UntrustedArtifactError,
)
from orchestrator.executors.deaths import MEMORY_ADVICE
from orchestrator.executors.sequential import SequentialExecutor
from orchestrator.filled_containers import settle
from orchestrator.fingerprint import value_digest
from orchestrator.handover import LOAD, handover, kept_output, own_copy
from orchestrator.hashing import hash_value, skipping_folders
from orchestrator.lineage_db import AttemptRecord, CachedOutput, StepRecord, process_start_token
from orchestrator.locks import StoreLocks
from orchestrator.node_order import NodeOrder
from orchestrator.planner import (
    forced_items,
    input_hashes,
    unforced_items,
    unforced_message,
)
from orchestrator.remote_store import is_url
from orchestrator.report import RunObserver
from orchestrator.results import Run, StepResult, encode_result, expand_maps
from orchestrator.run_liveness import Heartbeat
from orchestrator.self_state import self_state_hint
from orchestrator.serialize import registered_materializers
from orchestrator.signing import NO_KEY_TO_CHECK, SIGNED_WITH_ANOTHER_KEY
from orchestrator.spelling import CLI, Spelling
from orchestrator.step import Step
from orchestrator.stop_signals import StopSignal, further_stops_held, stops_held
from orchestrator.store import ArtifactInfo
from orchestrator.task import ArtifactRef, TaskResult, TaskSpec, stored_item
from orchestrator.tracing import SINGLE_OUTPUT, Output, iter_outputs
from orchestrator.warning_files import driver_filters

if TYPE_CHECKING:
    from orchestrator.executors.base import Executor
    from orchestrator.retry import Failure


def _memory_hint(failure: Failure) -> str:
    """What to do about a step that raised ``MemoryError`` (a bare one says nothing: ``ulimit -v``, a cgroup)."""
    return f" ({MEMORY_ADVICE})" if failure.is_instance_of((MemoryError,)) else ""


def _configured_log_level() -> int | None:
    """The root logger's level if the user configured logging in this process (it has handlers), else None."""
    root = logging.root  # what getLogger() returns, without its call on the per-step path
    return root.level if root.handlers else None


def _failure_line(step: StepResult) -> str:
    """``step 'fit' failed after 3 attempts: ValueError: ...``; a map that could not expand made none."""
    if step.attempts == 0:
        return f"step '{step.name}' failed: {step.error}"
    return f"step '{step.name}' failed after {step.attempts} attempt{'s' if step.attempts != 1 else ''}: {step.error}"


def _others_failed(failed: list[StepResult]) -> str:
    """``; 3 more steps failed: fit_2, fit_5, fit_9``: the error line names one failure, and says it is not alone.

    Several items of a map often fail at once; naming only the first would read
    as if one item needed fixing.
    """
    others = [f.name for f in failed[1:]]
    if not others:
        return ""
    names = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
    return f"; {len(others)} more step{'s' if len(others) != 1 else ''} failed: {names}"


def _input_edges(node: Node, digests: dict[tuple[str, str], str],
                 map_children: dict[str, list[str]], nodes: dict[str, Node]) -> list[tuple[str, str, str]]:
    """(input name, digest, producing node) of every artifact ``node`` reads.

    A map's result is one edge per item (per item and output, for a step with
    several); an item of a map over a step's output reads that output too (the
    list its item came from). An input holding several artifacts names each
    ``arg[0]``, ``arg[1]``, ...
    """
    edges: list[tuple[str, str, str]] = []
    for arg, template in node.inputs.items():
        if type(template) is Output and template._node not in map_children:
            # The common case, once per node per run: one step's output, one edge, no list in between.
            edges.append((arg, digests[(template._node, template._name)], template._node))
            continue
        refs = _read_outputs(template, map_children, nodes)
        if len(refs) == 1:
            edges.append((arg, digests[(refs[0]._node, refs[0]._name)], refs[0]._node))
        else:
            edges.extend((f"{arg}[{i}]", digests[(out._node, out._name)], out._node) for i, out in enumerate(refs))
    if node.item_of is not None and not (
            node.map_param in node.inputs and _read_outputs(node.inputs[node.map_param], map_children, nodes)):
        edges.extend(_item_edges(node, digests, map_children, nodes))
    return edges


def _item_edges(node: Node, digests: dict[tuple[str, str], str],
                map_children: dict[str, list[str]], nodes: dict[str, Node]) -> list[tuple[str, str, str]]:
    """The edges of a map item to what it took its item from: the list, or, over a map's results, the item.

    A map's results are never stored as one list: an edge to them named the
    list, and a walk could only guess the item from its content, which equal
    items of several maps share (square_4 was said to feed double_2).
    """
    source = node.item_of
    assert source is not None
    children = map_children.get(source._node)
    if children is None or not 0 <= node.item_index < len(children):
        return [(node.map_param, digests[(source._node, source._name)], source._node)]
    item = children[node.item_index]
    names = nodes[source._node].outputs if source._name == SINGLE_OUTPUT else (source._name,)
    if len(names) == 1:
        return [(node.map_param, digests[(item, names[0])], item)]
    return [(f"{node.map_param}[{i}]", digests[(item, name)], item) for i, name in enumerate(names)]


def _read_outputs(template: Any, map_children: dict[str, list[str]], nodes: dict[str, Node]) -> list[Output]:
    """The outputs an input ``template`` reads, a map's result as its items' outputs, in order."""
    refs: list[Output] = []
    for out in iter_outputs(template):
        children = map_children.get(out._node)
        if children is None:
            refs.append(out)
            continue
        names = nodes[out._node].outputs if out._name == SINGLE_OUTPUT else (out._name,)
        refs.extend(Output(c, name) for c in children for name in names)
    return refs


_NONE_DIGEST = hash_value(None)  # what an output that is None is stored under
LOCK_POLL = 0.05  # seconds between tries of a key another run is computing


class RunLoop:
    """State of one run while it executes."""

    def __init__(self, dag: DAG, ctx: Context, executor: Executor, observer: RunObserver, *,
                 forced: set[str], no_cache: bool, verbose: bool, spelling: Spelling = CLI,
                 end_recorded: Callable[[str, str], None] | None = None) -> None:
        self.dag, self.ctx, self.executor, self.observer = dag, ctx, executor, observer
        # Told (run id, status) once the run's end is recorded, while stop signals are still held.
        self.end_recorded = end_recorded
        self.forced, self.no_cache, self.verbose, self.spelling = forced, no_cache, verbose, spelling
        self.run_id = secrets.token_hex(6)
        # What the executor and the store are cannot change during a run: read once, not per attempt.
        # The executor that runs each attempt in this process, one at a time (None: a pool or Dask).
        self.inline = executor if isinstance(executor, SequentialExecutor) else None
        self.in_process = executor.name == "sequential"  # values reach the step as objects, not pickled
        self.location = ctx.location  # the store as workers open it
        self.key_locks = StoreLocks(ctx.root)  # so that concurrent runs compute a key once
        # The store's id, given to it now if it has none: each task carries it, so a worker on a machine
        # whose folder at the store's path is another store fails instead of writing there.
        self.store_id = store_identity.ensure_id(ctx.store)
        # The pipeline file's warning filters, for steps on workers (the sequential executor has them).
        self.warning_filters = driver_filters() if executor.name != "sequential" else None
        self.history = cache.History(ctx.lineage, dag.pipeline)
        self.commits = GroupCommit(ctx.lineage)
        # Each node's steps.position: its index as traced in a run without maps; in a run with maps,
        # sort keys that leave room for the items (NodeOrder), the same dict kept up to date.
        self.position: dict[str, int] = {name: i for i, name in enumerate(dag.nodes)}
        self.order: NodeOrder | None = None
        self.digests: dict[tuple[str, str], str] = {}
        self.values: dict[str, Any] = {}          # digest -> value produced in this process
        self.infos: dict[str, ArtifactInfo] = {}  # digest -> info of outputs produced in this run
        self.consumers_left: dict[str, int] = {}  # node -> children not finished yet
        self.results: dict[str, StepResult] = {}
        self.waiting: dict[str, int] = {n: len(node.upstream) for n, node in dag.nodes.items()}
        self.children: dict[str, list[str]] = {n: [] for n in dag.nodes}
        # map node -> the maps over its result, which expand as it does (``_expand_readers``)
        self.map_readers: dict[str, list[str]] = {}
        mapped = False
        for node in dag.nodes.values():
            for up in node.upstream:
                self.children[up].append(node.name)
            if node.map_over is not None:
                mapped = True
                if dag.nodes[node.map_over._node].is_map:
                    self.map_readers.setdefault(node.map_over._node, []).append(node.name)
        if mapped:  # from the start: a record made before a map expands must sort as the finished run
            self._order_with_room()
        self.ready: list[str] = [n for n, c in self.waiting.items() if c == 0]
        self.ready.reverse()  # pop() from the end keeps call order
        self.running: dict[Future[TaskResult], tuple[Node, cache.Decision, int]] = {}
        self.retry_at: list[tuple[float, int, str]] = []
        self.attempts: dict[str, list[AttemptRecord]] = {}
        self._steps: list[Step] | None = None  # the distinct steps, once a failure asks for them
        self._stopped_by: str | None = None  # what interrupted the run: its recorded error, as a failure's
        self.decisions: dict[str, cache.Decision] = {}
        self.blocked: dict[str, list[str]] = {}   # producer re-running -> nodes waiting for it
        self.released: set[str] = set()  # nodes whose children were counted down (``_release``)
        self.redo: dict[str, str] = {}            # node -> reason it must run again
        self.started: dict[str, float] = {}
        self.attempting: dict[str, int] = {}      # node -> number of its latest submitted attempt
        self.map_children: dict[str, list[str]] = {}  # map node -> the nodes it expanded into
        self.pending: dict[str, str] = {}  # item whose item is not known yet -> its map (``filled_item``)
        self.lock_wait: set[str] = set()          # nodes whose key another run holds
        self.warned: set[str] = set()             # rerun names of map items no map made, said once
        self.computing: dict[str, str] = {}       # cache key -> the node of this run computing it
        self.lock_announced: set[str] = set()     # nodes whose wait the observer was told of
        self.lock_retry = 0.0
        self.effect_state: dict[str, Any] = {}    # shared by this run's effects (see EffectContext)
        self.returned = {out.node for out in dag.result_outputs()}  # nodes whose outputs the run returns
        self.some_ran = False                     # a step ran here: it may have written files others read
        self.file_memo: dict[str, str] | None = None  # file digests by stat, loaded when first needed
        self.dependents: dict[str, list[str]] | None = None  # node -> nodes naming it upstream, at a failure
        self.skipped_below: set[str] = set()  # skipped for a failure, with everything that depends on them

    # -- the loop -------------------------------------------------------------

    def run(self, file: str | None) -> Run:
        self.ctx.lineage.preload_cache(self.dag.pipeline)  # before this run's own record is the latest
        self._start_record(file)
        database = _file_identity(self.ctx.lineage.path)  # its end is checked against it, once per run
        # Commands of other hosts (a pod of tomorrow's job) tell a run that was killed by this sign of life.
        heartbeat = Heartbeat(self.ctx.lineage.path, self.run_id)
        status = "failed"
        stopping = contextlib.ExitStack()
        try:
            # Inside: Ctrl-C as the run's header is printed ends the run recorded (and `--json` printed)
            # as any other interrupt does, not left `running` until a later command calls it dead.
            heartbeat.start()
            self.observer.run_started(self.run_id, self.dag)
            self.commits.start()
            self._loop()
            status = "failed" if any(r.status == "failed" for r in self.results.values()) else "succeeded"
        except KeyboardInterrupt as stop:
            # Ctrl-C pressed twice (a terminal sends one per press) or a SIGTERM after it must not cut short
            # what this one does: until the run's end is recorded, further stop signals are only noted.
            stopping.enter_context(further_stops_held())
            status = "interrupted"
            # SIGTERM (`timeout`, a cancelled CI job, `docker stop`) arrives as a KeyboardInterrupt that says
            # so: "interrupted by the user" would blame someone who pressed nothing.
            self._stopped_by = getattr(stop, "orch_reason", None) or "interrupted by the user"
            self._interrupt(getattr(stop, "interrupted_attempt", None), self._stopped_by)
            # From Python (a notebook) the Run is never returned: say which run it was and how to go on.
            stop.orch_run_id = self.run_id  # type: ignore[attr-defined]  # for `orch run --json`'s document
            stop.orch_recorded = None  # type: ignore[attr-defined]  # a nested run's end is not this one's
            stop.add_note(f"orchestrator: run {self.run_id} of pipeline '{self.dag.pipeline}' is recorded as "
                          f"interrupted; the steps that finished are kept, and running again resumes from the "
                          f"cache. orchestrator.get_run('{self.run_id}') shows it.")
            raise
        finally:
            with stopping, stops_held() as held:
                try:
                    self._finish(status, database)
                    if self.end_recorded is not None:
                        self.end_recorded(self.run_id, status)
                finally:
                    heartbeat.stop()
                    self.observer.run_closed(self.run_id)  # also when _finish raised before run_finished
        if held:
            raise self._stopped_after_end(held[0], status)
        return self._run_object(status)

    def _stopped_after_end(self, signum: int, status: str) -> StopSignal:
        """The stop signal that arrived while the run's end was recorded, raised now that it is.

        The run is recorded ``status`` (not interrupted): ``orch_recorded`` tells
        ``orch run`` to exit as that status, and the note says so from Python.
        """
        stop = StopSignal(signum)
        stop.orch_run_id = self.run_id  # type: ignore[attr-defined]
        stop.orch_recorded = status  # type: ignore[attr-defined]
        stop.add_note(f"orchestrator: {stop.signal_name} arrived as run {self.run_id} of pipeline "
                      f"'{self.dag.pipeline}' ended; it is recorded {status}. "
                      f"orchestrator.get_run('{self.run_id}') shows it.")
        return stop

    def _loop(self) -> None:
        capacity = max(1, self.executor.capacity)
        while self.ready or self.running or self.retry_at or self.lock_wait:
            if self.lock_wait and time.monotonic() >= self.lock_retry:
                # Keys another run is computing: try again; its result is usually a hit by now.
                self.lock_retry = time.monotonic() + LOCK_POLL
                self.ctx.lineage.refresh()
                for name in list(self.lock_wait):
                    if len(self.running) < capacity:
                        self.lock_wait.discard(name)
                        self._start(name)
            while len(self.running) < capacity:
                # A retry that is due goes before steps not started yet: else it waits behind every
                # item of a long map (the sequential executor never leaves this loop while work is
                # ready), its failure is known only at the end, and its time counts that wait.
                if self.retry_at and self.retry_at[0][0] <= time.time():
                    _, attempt, name = heapq.heappop(self.retry_at)
                    self._retry(name, attempt)
                elif self.ready:
                    self._start(self.ready.pop())
                else:
                    break
            if not self.running:
                if not self.ready and (self.retry_at or self.lock_wait):
                    # Before waiting on another run's key, commit ours: that run may be waiting on a
                    # key whose lock we hold until our record of it is committed.
                    self.commits.flush()
                    until = min([self.retry_at[0][0] - time.time()] if self.retry_at else [LOCK_POLL])
                    time.sleep(max(0.0, min(until, LOCK_POLL if self.lock_wait else until)))
                continue
            timeout = max(0.0, self.retry_at[0][0] - time.time()) if self.retry_at else None
            poll = getattr(self.executor, "poll_seconds", None)  # an executor that has news while steps run
            if poll is not None:
                timeout = poll if timeout is None else min(timeout, poll)
            done: Iterable[Future[TaskResult]] = [f for f in self.running if f.done()]
            if not done:
                done, _ = wait(list(self.running), timeout=timeout, return_when=FIRST_COMPLETED)
                if not done and poll is not None:
                    for notice in self.executor.notices():  # type: ignore[attr-defined]
                        self.observer.warning(notice)
            for future in done:
                node, decision, attempt = self.running.pop(future)
                result = future.result()
                sent = self.started.get(node.name)
                if attempt == 1 and sent is not None and sent < result.started <= time.time():
                    # A task queued on a Dask worker (or waiting for a pool worker to start) begins later
                    # than it was sent: the step's time is its own, not the wait for another step to
                    # finish. (A worker whose clock runs ahead of this one is not believed.) The
                    # sequential executor, which runs it at once, does not come here.
                    self.started[node.name] = result.started
                    began = getattr(self.observer, "step_began", None)  # an observer older than it has none
                    if began is not None:
                        began(node.name, result.started)
                self._finished_attempt(node, decision, attempt, result)

    def _start(self, name: str) -> None:
        node = self.dag.nodes[name]
        if node.is_map:
            self._map_done(node) if name in self.map_children else self._expand(node)
            return
        if name in self.pending:
            filled = self._filled(node)
            if filled is None:
                return
            node = filled
        if self.some_ran and (node.file_params or node.missing_paths):
            node = self._keyed_by_files_as_now(node)
        inputs = input_hashes(node, self.digests)
        key = cache.node_key(node, inputs)
        force = self.redo.pop(name, None) or (
            cache.forced_reason(name in self.forced, self.no_cache, self.spelling)
            if self.no_cache or name in self.forced else None)  # a plain node pays no call
        decision = cache.decide(node, key, inputs, self.ctx.lineage, self.ctx.store, self.history, force=force)
        self.decisions[name] = decision
        if decision.hit:
            self._cached(node, decision)
            return
        if node.step.cache:
            if force is None and self.computing.get(key, name) != name:
                # An equal node of this run (a repeated map item) is computing this key: wait for its
                # result, as for another run's. The key lock cannot tell: it belongs to the process.
                self.lock_wait.add(name)
                return
            lock = self.key_locks.try_lock(key)
            if lock is None:
                if name not in self.lock_wait and name not in self.lock_announced:
                    self.lock_announced.add(name)
                    waiting = getattr(self.observer, "step_waiting", None)  # an observer older than it
                    if waiting is not None:
                        waiting(name)
                self.lock_wait.add(name)  # another run is computing this key right now
                return
            # The other run may have finished between our lookup and the lock: look again.
            self.ctx.lineage.refresh()
            again = cache.hit_since(node, key, self.ctx.lineage, self.ctx.store, force=force)
            if again is not None:
                lock.release()
                self.decisions[name] = again
                self._cached(node, again)
                return
            self.commits.hold(name, lock)
            self.computing[key] = name
        self.started[name] = time.time()
        self.attempts[name] = []
        self.commits.started(name, lambda: self._record(node, "running", decision, attempts=0))
        self.observer.step_started(name, decision.reason)
        self._submit(node, decision, 1)

    def _submit(self, node: Node, decision: cache.Decision, attempt: int) -> None:
        if node.step.cache:
            self.commits.before_work()
        try:
            arguments = self._arguments(node)
        except (CorruptArtifactError, MissingArtifactError) as exc:
            # Checked here, in the driver: an input whose record or signature does not verify
            # (an untrusted pickle is one) is recomputed like a damaged one.
            self.commits.finished(node.name)
            self._done_computing(node, decision.key)
            self._repair(node, exc.digest, _recompute_reason(exc))
            return
        spec = TaskSpec(
            node=node.name, step_name=node.step.name, fn=node.step.fn,
            arguments=arguments, output_names=node.outputs,
            store_root=self.location, attempt=attempt, timeout=node.step.retry.timeout,
            echo=self.verbose, fsync=self.ctx.store.fsync, keep_values=self.in_process,
            # An attempt that may be killed (a timeout) on this machine keeps its output in a folder too.
            spill=new_spill_folder() if node.step.retry.timeout is not None
            and self.executor.name in ("sequential", "process") else None,
            layout=node.step.call_layout, log_level=_configured_log_level(),
            materializers=registered_materializers(), store_id=self.store_id, warning_filters=self.warning_filters,
            run_id=self.run_id,
        )
        self.attempting[node.name] = attempt
        notice = getattr(self.executor, "notice", None)  # once, before the first attempt
        if notice:
            self.executor.notice = None  # type: ignore[attr-defined]
            self.observer.warning(notice)
        if self.inline is not None:
            # Nothing else runs meanwhile: take the result at once, without a future in between.
            self._finished_attempt(node, decision, attempt, self.inline.run(spec))
            return
        self.running[self.executor.submit(spec)] = (node, decision, attempt)

    def _retry(self, name: str, attempt: int) -> None:
        """Submit attempt ``attempt`` (2 or more) of ``name``, whose row then says that attempt is running.

        That row is written as a first attempt's "running" row is (``GroupCommit.started``): once the
        attempt has run longer than the commit budget. Killed in it, the run shows its earlier attempts
        as they ended (``_record_retried``) and this one interrupted, not one attempt in all.
        """
        node, decision = self.dag.nodes[name], self.decisions[name]
        self.commits.started(name, lambda: self._record(node, "running", decision, attempts=attempt))
        self._submit(node, decision, attempt)

    def _keyed_by_files_as_now(self, node: Node) -> Node:
        """``node`` keyed by the files it will read, which a step that ran before it may have written.

        Its key was built with the files as they were before the run. Kept, it
        would record (and later return from the cache) a result under content
        the step never read. Only checked once a step has run: a cached step
        writes nothing, so a cached re-run pays nothing.
        """
        if self.file_memo is None:
            self.file_memo = self.ctx.lineage.load_file_memo()
        with skipping_folders(self.ctx.own_folders()):  # as the build hashed a folder holding the store
            if not changed_files(node, self.file_memo):
                return node
            fresh = rebuilt(node, self.dag.nodes, self.file_memo)
        if fresh is None:
            return node  # unreadable now: the step says so when it reads it
        self.dag.nodes[node.name] = fresh
        return fresh

    def _done_computing(self, node: Node, key: str) -> None:
        """``node`` no longer computes ``key``: an equal node waiting for it looks it up again."""
        if self.computing.get(key) == node.name:
            del self.computing[key]

    def _arguments(self, node: Node) -> dict[str, Any]:
        inputs = node.inputs
        if len(inputs) == len(node.arguments):
            args: dict[str, Any] = {}  # every argument is a step's output (a chain): no value to copy
        else:
            args = {k: v for k, v in node.arguments.items() if k not in inputs}
            if self.in_process:  # other executors send each task its own pickled copy
                args = {k: own_copy(v) for k, v in args.items()}
        # A timed step runs in a child process, to which kept values would travel pickled: a copy
        # in this process, and one more in the child beside the pickle it inherits (a 500 MB frame
        # held 2 GB in the child). From a local store the child maps its inputs instead.
        value_of = self._stored_input if node.step.retry.timeout is not None and self.ctx.store.maps_objects \
            else self._input_value
        for arg, template in inputs.items():
            # One step's output (the common case) without substitute's walk through containers.
            args[arg] = value_of(template) if type(template) is Output else substitute(template, value_of)
        return args

    def _stored_input(self, out: Output) -> Any:
        """``out`` as a reference to its stored object, never a value kept in memory."""
        return self._input_value(out, kept=False)

    def _input_value(self, out: Output, kept: bool = True) -> Any:
        children = self.map_children.get(out._node)
        if children is not None:
            outputs = self.dag.nodes[out._node].outputs
            if len(outputs) == 1:
                return [self._input_value(Output(c, outputs[0]), kept) for c in children]
            return [tuple(self._input_value(Output(c, o), kept) for o in outputs) for c in children]
        digest = self.digests[(out._node, out._name)]
        if kept and digest in self.values:
            value = handover(self.values[digest])
            if value is not LOAD:
                return value
        info = self.infos.get(digest)
        return ArtifactRef(info if info is not None else self.ctx.artifact_info(digest))

    # -- maps over a step's output ---------------------------------------------

    def _expand(self, node: Node) -> None:
        """The list a map runs over is ready: add one node per item, in item order."""
        try:
            items = self._loaded(self._input_value(node.map_over))  # type: ignore[arg-type]
            if not isinstance(items, (list, tuple)):
                raise TypeError(f"{node.step.name}.map() needs a list, but step '{node.map_over.node}' "  # type: ignore[union-attr]
                                f"returned a {type(items).__name__}")
            expanded = expand_map(self.dag, node, items)
        except (TypeError, OrchestratorError) as exc:
            self.decisions[node.name] = cache.Decision(False, "", "map")
            self.attempts.setdefault(node.name, [])
            self._failed(node, self.decisions[node.name], 0, f"{type(exc).__name__}: {exc}")
            return
        self._add_items(node, expanded)
        self.waiting[node.name] = len(expanded)
        for child in expanded:
            self.children[child.name] = [node.name]
            self.waiting[child.name] = 0
        self._expand_readers(node)
        if not expanded:
            self._map_done(node)
        for child in reversed(expanded):
            self.ready.append(child.name)

    def _expand_readers(self, source: Node) -> None:
        """Map ``source`` has its items: the maps over its result get theirs, one per item, each waiting for its own.

        Made now, not once every item of ``source`` is done: an item that fails
        then skips the one item that reads it, and the other items go on, as
        they do in a map over a map over a list the body holds. Each item is
        keyed by its value when it starts (``_filled``).
        """
        outputs = source.outputs
        children = self.map_children[source.name]
        for name in self.map_readers.get(source.name, ()):
            node = self.dag.nodes[name]
            if name in self.results or name in self.map_children:
                continue  # skipped for a failure above it
            expanded = expand_map(self.dag, node, [
                Output(c, outputs[0]) if len(outputs) == 1 else tuple(Output(c, o) for o in outputs)
                for c in children])
            self._add_items(node, expanded)
            # It waits for its items, no longer for the list of source's results, which it does not read.
            node.upstream = tuple(u for u in node.upstream if u != source.name)
            self.children[source.name].remove(name)
            self.waiting[name] += len(expanded) - 1
            for child in expanded:
                self.pending[child.name] = name
                self.children[child.name] = [name]
                self.waiting[child.name] = 0
                for up in child.upstream:
                    if up not in self.released:
                        self.children[up].append(child.name)
                        self.waiting[child.name] += 1
            self._expand_readers(node)
            if self.waiting[name] == 0:
                self.ready.append(name)

    def _add_items(self, node: Node, expanded: list[Node]) -> None:
        """Map ``node``'s items join the run, just before it in pipeline order, and it waits for them."""
        names = [n.name for n in expanded]
        order = self.order or self._order_with_room()  # made as the run started, for the maps its DAG had then
        # The items stand before the map in pipeline order (order); the dict takes that order once,
        # as the run ends (_finish), not by being written out again for every map.
        self.dag.nodes.update((n.name, n) for n in expanded)
        order.insert(node.name, names)  # and so self.position
        node.upstream = (*node.upstream, *names)
        if self.dependents is not None:
            for child in expanded:
                for up in child.upstream:
                    self.dependents.setdefault(up, []).append(child.name)
                self.dependents[child.name] = [node.name]
        self.forced |= forced_items(node, names, self.forced)
        self.map_children[node.name] = names
        unforced = [n for n in unforced_items(self.dag, self.map_children, self.forced) if n not in self.warned]
        if unforced:
            # Known only now, with the run under way: said, rather than stopping the run for it.
            self.warned.update(unforced)
            self.observer.warning(unforced_message(self.dag, self.map_children, unforced, self.spelling)
                                  + "; nothing forced there")

    def _map_done(self, node: Node) -> None:
        """Every item's node is done: the map's output is the list of their outputs."""
        children = self.map_children[node.name]
        map_digests(node, children, self.digests)
        self.results[node.name] = StepResult(node.name, "map")
        self._release(node)

    def _filled(self, pending: Node) -> Node | None:
        """An item of a map over a map's result whose item is done: its node, made with the item's value.

        The item is the output of the other map's item, which, as a map item,
        is keyed by the digest its producer took (as the plan keys it, by
        value), so it is not hashed again; an array or frame stored as a file
        is not even read (``task.stored_item``): a cached map over 400 arrays
        of 2 MB read them all. None if it cannot be made (the item failed).
        """
        node = self.dag.nodes[self.pending.pop(pending.name)]
        source = node.map_over
        assert source is not None
        outputs = self.dag.nodes[source._node].outputs
        read = self.map_children[source._node][pending.item_index]
        try:
            known: dict[int, tuple[Any, str]] = {}
            if len(outputs) > 1:  # a tuple per item, keyed by the tuple's digest: loaded, as ever
                item: Any = tuple(self._loaded(self._input_value(Output(read, o))) for o in outputs)
            else:
                item = self._input_value(Output(read, outputs[0]))
                if isinstance(item, ArtifactRef):  # else a value this run kept in memory
                    item = stored_item(item.info, self.ctx.store.get)
                known[id(item)] = (item, self.digests[(read, outputs[0])])
            filled = filled_item(self.dag, node, pending, item, known)
        except (TypeError, OrchestratorError) as exc:
            self.decisions[pending.name] = cache.Decision(False, "", "map item")
            self.attempts.setdefault(pending.name, [])
            self._failed(pending, self.decisions[pending.name], 0, f"{type(exc).__name__}: {exc}")
            return None
        self.dag.nodes[pending.name] = filled
        return filled

    def _loaded(self, value: Any) -> Any:
        return self.ctx.store.get(value.info) if isinstance(value, ArtifactRef) else value

    # -- outcomes -------------------------------------------------------------

    def _cached(self, node: Node, decision: cache.Decision) -> None:
        assert decision.outputs is not None
        # Renewed first, so that `orch cache gc` (which spares objects newer than a running run)
        # keeps them until this record is committed; one gc deleted just now is recomputed.
        if not all(o.inline or self.ctx.store.renew(o.digest) for o in decision.outputs):
            self.redo[node.name] = cache.MISSING
            self._start(node.name)
            return
        if self._returned(node.name) and (not is_url(self.location) or self.location.startswith("file:")):
            # No step loads what the pipeline returns, so a lost object would pass as cached and
            # only fail later, in ``run.output()``: its header is read (one small read, whatever its
            # size, so a cached run still reads no data) to find it missing or cut short, and then
            # it is recomputed. A flipped bit is found when it is loaded, or by `orch cache verify`.
            # (Not behind a remote URL, where each check is a request at every cached run.)
            damaged = next((o.digest for o in decision.outputs if not o.inline and not self._whole(o.digest)),
                           None)
            if damaged is not None:
                self._discard(damaged)
                self.redo[node.name] = cache.DAMAGED
                self._start(node.name)
                return
        effects: list[tuple[str, str, Any]] = []
        for out in decision.outputs:
            if out.type_name and handler_for(out.type_name):
                # The driver acts on this value itself: a damaged one is recomputed, like a damaged input.
                try:
                    effects.append((out.type_name, out.digest, self.ctx.load(out.digest)))
                except (CorruptArtifactError, MissingArtifactError) as exc:
                    self._discard(exc.digest)
                    self.redo[node.name] = _recompute_reason(exc)
                    self._start(node.name)
                    return
        outputs = {o.name: o.digest for o in decision.outputs}
        for name, digest in outputs.items():
            self.digests[(node.name, name)] = digest
        # Equal keys mean equal inputs and outputs: the record points at the step run that
        # computed this key (through the cache index) instead of repeating its edges. Except where
        # a map item read them from: its key holds the item, not the list, and the step run it
        # reused may have taken an equal item from another list (the map before it in this run).
        # And except the files it was given: a key holds a file's content, not its path, so the
        # step run it reused may have read an equal copy elsewhere (A.csv for this run's B.csv);
        # this run's own paths and parameters are what its lineage names.
        self.ctx.lineage.queue_step(StepRecord(
            self.run_id, node.name, node.step.name, node.site, "cached", "cached",
            position=self.position[node.name],
            key=decision.key,
            key_parts_json=json.dumps(cache.key_parts(node, input_hashes(node, self.digests)))
            if node.file_params else None,
            inputs=() if node.item_of is None else _input_edges(node, self.digests, self.map_children,
                                                                 self.dag.nodes),
            files=list(node.file_params.items()) if node.file_params else (),
            origin=self.ctx.lineage.found_in.pop(decision.key, None)))
        self.results[node.name] = StepResult(node.name, "cached", "cached", 0, 0.0, key=decision.key,
                                             outputs=outputs)
        for type_name, digest, value in effects:
            if not self._apply_effect(node, type_name, digest, value):
                return
        self.observer.step_finished(node.name, "cached", "cached")
        self._release(node)

    def _finished_attempt(self, node: Node, decision: cache.Decision, attempt: int, result: TaskResult) -> None:
        if result.ok or result.damaged_input is not None or not node.step.retry.should_retry(
                result.failure, attempt):  # type: ignore[arg-type]
            self.commits.finished(node.name)
            self._done_computing(node, decision.key)
        if result.damaged_input is not None:
            self._repair(node, result.damaged_input, result.damaged_why or cache.DAMAGED)
            return
        failure = result.failure
        self.attempts[node.name].append(AttemptRecord(
            attempt=attempt, status="failed" if failure else "succeeded",
            started=result.started, ended=result.ended,
            error=failure.summary() if failure else None,
            traceback=failure.traceback if failure else None,
            stdout=result.stdout, stderr=result.stderr, logs=result.logs,
        ))
        if failure is None:
            self._succeeded(node, decision, attempt, result)
            return
        policy = node.step.retry
        if policy.should_retry(failure, attempt):
            self._record_retried(node, decision, attempt)
            delay = policy.delay_before(attempt + 1)
            self.observer.step_retrying(node.name, attempt, failure.summary(), delay)
            heapq.heappush(self.retry_at, (time.time() + delay, attempt + 1, node.name))
            return
        self._failed(node, decision, attempt, failure.summary() + self._none_input_hint(node)
                     + self_state_hint(node.name, failure, self._distinct_steps) + _memory_hint(failure))

    def _record_retried(self, node: Node, decision: cache.Decision, attempt: int) -> None:
        """Commit the failed attempt ``attempt`` of ``node`` with the next group commit, not when the step ends.

        A retried step's failures used to wait in memory for its last attempt: a run killed in the
        retry or in the wait before it (SIGKILL, the OOM killer) lost them, and showed the step
        interrupted in its first attempt with nothing recorded. Its row, still ``running``, counts
        the attempts made so far; the step's final record rewrites the same attempt rows.
        """
        record = self._record(node, "running", decision, attempts=attempt)
        self.commits.retrying(node.name, record, self.attempts[node.name][-1:])

    def _distinct_steps(self) -> list[Step]:
        """The pipeline's steps, each once (a map of 10,000 items is one step), made at the first failure."""
        if self._steps is None:
            self._steps = list({id(n.step): n.step for n in self.dag.nodes.values()}.values())
        return self._steps

    def _none_input_hint(self, node: Node) -> str:
        """Why an input of failed ``node`` is None, when its producer is annotated not to return None.

        A step that forgets ``return`` succeeds; its consumer fails on the
        None (``'NoneType' object is not iterable``). Comparing digests with
        None's loads nothing; this runs only for a failed step.
        """
        for arg, template in node.inputs.items():
            for out in iter_outputs(template):
                producer = self.dag.nodes.get(out.node)
                if producer is None or self.digests.get((out.node, out.name)) != _NONE_DIGEST:
                    continue
                declared = producer.step.declared_type(out.name)
                if declared is not None:
                    source = f"step '{producer.name}'" if out.name == SINGLE_OUTPUT \
                        else f"output '{out.name}' of step '{producer.name}'"
                    return (f" (input '{arg}' {'is' if template is out else 'holds'} None: {source} is "
                            f"annotated -> {declared} but returned None; did it forget `return`?)")
        return ""

    def _succeeded(self, node: Node, decision: cache.Decision, attempt: int, result: TaskResult) -> None:
        self.some_ran = True
        outputs: dict[str, str] = {}
        for name, info in result.outputs:
            digest = outputs[name] = info.digest
            self.infos[digest] = info
            self.digests[(node.name, name)] = digest
            if result.values is not None and self.children[node.name]:
                # A copy, not the step's object: a step may return an array it keeps and changes
                # later (a module-level buffer), and its readers must see the value the digest names.
                kept = kept_output(result.values[name], self.ctx.store.maps_objects)
                if kept is not LOAD:
                    self.values[digest] = kept
        record = self._record(node, "ran", decision, attempts=attempt)
        record.outputs = list(outputs.items())
        entry = [CachedOutput(n, i.digest, i.inline is not None, i.type_name) for n, i in result.outputs] \
            if node.step.cache else None
        if entry is not None and node.missing_paths:
            self._key_made_files(node, record)
        self.ctx.lineage.queue_step(record, self.attempts[node.name], [i for _, i in result.outputs], entry)
        self.commits.recorded(node.name)
        self.results[node.name] = StepResult(node.name, "ran", decision.reason, attempt,
                                             record.duration, key=decision.key, outputs=outputs)
        for name, info in result.outputs:
            if handler_for(info.type_name):
                value = result.values.get(name) if result.values is not None else None
                if not self._apply_effect(node, info.type_name, info.digest, value):
                    return
        self.observer.step_finished(node.name, "ran", decision.reason)
        self._release(node)
        for waiting in self.blocked.pop(node.name, []):
            self.ready.append(waiting)

    def _failed(self, node: Node, decision: cache.Decision, attempt: int, error: str) -> None:
        record = self._record(node, "failed", decision, attempts=attempt)
        record.error = error
        self.ctx.lineage.queue_step(record, self.attempts[node.name])
        self.commits.recorded(node.name)
        self.commits.flush()
        self.results[node.name] = StepResult(node.name, "failed", decision.reason, attempt,
                                             record.duration, error=error, key=decision.key)
        self.observer.step_finished(node.name, "failed", error)
        for name in self._below(node.name):
            if name in self.results:
                continue
            reason = f"upstream step '{node.name}' failed"
            skipped = self.dag.nodes[name]
            self.skipped_below.add(name)
            if skipped.is_map:
                self.results[name] = StepResult(name, "skipped", reason)
                continue
            self.ctx.lineage.queue_step(StepRecord(self.run_id, name, skipped.step.name, skipped.site,
                                                   "skipped", reason, position=self.position[name]))
            self.results[name] = StepResult(name, "skipped", reason)
            self.observer.step_finished(name, "skipped", reason)
        for waiting in self.blocked.pop(node.name, []):
            self.results.setdefault(waiting, StepResult(waiting, "skipped", f"upstream step '{node.name}' failed"))

    def _order_with_room(self) -> NodeOrder:
        """Positions that leave room for the items of maps: ``self.position`` becomes ``NodeOrder``'s places."""
        self.order = NodeOrder(self.dag.nodes)
        self.position = self.order.places
        return self.order

    def _below(self, name: str) -> list[str]:
        """Every node that depends on ``name``, directly or not, in pipeline order: what its failure skips.

        Walked from ``name`` down its dependents, not over the whole DAG: each of
        400 failing map items (10 % of 4,000) scanned every node, then sorted what
        it found by a scan of the node list per node (5.3 s of a 7.6 s run). Below
        a node that an earlier failure skipped, all is skipped already.
        """
        if self.dependents is None:  # made at the first failure: a run without one never pays for it
            self.dependents = {}
            for node in self.dag.nodes.values():
                for up in node.upstream:
                    self.dependents.setdefault(up, []).append(node.name)
        found: set[str] = set()
        stack = [name]
        while stack:
            for child in self.dependents.get(stack.pop(), ()):
                if child not in found:
                    found.add(child)
                    if child not in self.skipped_below:
                        stack.append(child)
        return sorted(found, key=self.position.__getitem__)

    def _key_made_files(self, node: Node, record: StepRecord) -> None:
        """It made the file a path parameter names: store its result under the next build's key too."""
        memo: dict[str, str] = {}
        with skipping_folders(self.ctx.own_folders()):
            written = rekey(node, memo)
        if written is not None:
            inputs = input_hashes(written, self.digests)
            record.also_keys = [*record.also_keys,
                                (cache.node_key(written, inputs), json.dumps(cache.key_parts(written, inputs)))]
            self.ctx.lineage.save_file_memo(memo)

    def _discard(self, digest: str) -> None:
        """Remove a damaged or missing artifact's object and records, so its producer writes it anew."""
        try:
            self.ctx.store.delete(digest)
        except OSError:
            pass  # already gone: the producer rewrites it either way
        self.ctx.lineage.forget_artifact(digest)
        self.values.pop(digest, None)

    def _repair(self, node: Node, digest: str, why: str = cache.DAMAGED) -> None:
        """An input of ``node`` is damaged or gone: recompute its producer (``why``), then retry ``node``."""
        producer = self._producer_of_input(node, digest)
        self._discard(digest)
        if producer is None or producer in self.blocked:
            self._failed(node, self.decisions[node.name], 1, f"input artifact {digest} is damaged")
            return
        said = "was signed with another key" if why == cache.OTHER_KEY \
            else "needs code that is gone" if why.startswith(GONE_CODE) else "was damaged"
        self.observer.step_finished(node.name, "waiting", f"input from '{producer}' {said}")
        if self.decisions[node.name].reason == cache.DAMAGED:
            # Its own output was damaged too (and is forgotten): it still runs for that reason.
            self.redo[node.name] = cache.DAMAGED
        self.blocked.setdefault(producer, []).append(node.name)
        self.redo[producer] = why
        self.results.pop(producer, None)
        self._start(producer)

    def _producer_of_input(self, node: Node, digest: str) -> str | None:
        """The node ``node`` read ``digest`` from: the producer to recompute, and to name.

        Several nodes may output one digest (a validation that returns its input
        unchanged outputs its producer's object): the one ``node`` reads is where its
        input came from, not the first of them in the run. Any of them otherwise
        (a digest none of its inputs holds).
        """
        for _, read, producer in _input_edges(node, self.digests, self.map_children, self.dag.nodes):
            if read == digest:
                return producer
        return next((n for (n, _), d in self.digests.items() if d == digest), None)

    def _whole(self, digest: str) -> bool:
        """Whether the object of ``digest`` exists with its full length, as this database recorded it.

        Its header says both. Another metadata database sharing the store may have replaced
        a pickle with its own encoding of the same value (a set's order, a class pickled by
        value on a worker): this run then said succeeded with an output it could not load.
        """
        try:
            return self.ctx.record_disagreement(digest) is None
        except (CorruptArtifactError, MissingArtifactError, DamagedRecordError):
            return False

    def _returned(self, name: str) -> bool:
        """Whether the pipeline returns ``name``'s outputs, itself or as an item of a returned map."""
        return name in self.returned or (bool(self.map_children) and any(
            c in self.returned and c in self.map_children for c in self.children.get(name, ())))

    def _apply_effect(self, node: Node, type_name: str, digest: str, value: Any) -> bool:
        """Let the driver act on an effect output (metrics, a model registration...); False if it failed."""
        handler = handler_for(type_name)
        assert handler is not None
        if records_first(type_name) or value is None:
            # The step's own records come first; and a value a worker did not send back is loaded
            # through its artifact's record, which may still be queued (all there is of an inline one).
            self.ctx.lineage.flush()
        try:
            if value is None:
                value = self.ctx.load(digest)
            handler(EffectContext(self.ctx, self.run_id, self.dag.pipeline, node.name, digest, self.effect_state),
                    value)
        except Exception as exc:  # noqa: BLE001 - a failing effect fails its step, not the run loop
            self.attempts.setdefault(node.name, [])
            self._failed(node, self.decisions[node.name], self.results[node.name].attempts,
                         f"applying its {type_name} output failed: {type(exc).__name__}: {exc}")
            return False
        return True

    def _release(self, node: Node) -> None:
        """``node`` is done: free upstream values nobody needs any more, ready its children.

        Once per node: a producer re-run to repair a damaged output (``_repair``) finishes a second
        time, and counting its children down again readied one whose other parent had not run.
        """
        if node.name in self.released:
            return
        self.released.add(node.name)
        for up in node.upstream:
            left = self.consumers_left.get(up, len(self.children[up])) - 1
            self.consumers_left[up] = left
            if left <= 0:
                for name in self.dag.nodes[up].outputs:
                    self.values.pop(self.digests.get((up, name), ""), None)
        for child in self.children[node.name]:
            self.waiting[child] -= 1
            if self.waiting[child] == 0 and child not in self.results:
                self.ready.insert(0, child)

    # -- records --------------------------------------------------------------

    def _record(self, node: Node, status: str, decision: cache.Decision, attempts: int) -> StepRecord:
        started = self.started.get(node.name)
        return StepRecord(
            run_id=self.run_id, node=node.name, step=node.step.name,
            position=self.position[node.name],
            site=node.site, status=status,
            reason=decision.reason, key=decision.key, attempts=attempts,
            started=started, ended=time.time() if started is not None and status != "running" else None,
            inputs=_input_edges(node, self.digests, self.map_children, self.dag.nodes), files=list(node.file_params.items()),
            key_parts_json=decision.parts_json,
        )

    def _start_record(self, file: str | None) -> None:
        self.ctx.lineage.start_run({
            "run_id": self.run_id, "pipeline": self.dag.pipeline, "file": file,
            "params": {k: jsonable(v) for k, v in self.dag.params.items()}, "status": "running",
            "started": time.time(), "user": user_name(), "host": os.uname().nodename, "pid": os.getpid(),
            "pid_start": process_start_token(os.getpid()), "git_commit": git_commit(file),
            "python": platform.python_version(), "packages": package_versions(),
            "executor": self.executor.name,
        })

    def _interrupt(self, inline: TaskResult | None, why: str) -> None:
        """Ctrl-C: stop running work; record what was started and not finished as interrupted.

        ``inline`` is the attempt the interrupt stopped in this process (the
        sequential executor), with what it printed and logged until then;
        ``why`` what stopped it (``interrupted by the user``, ``stopped by SIGTERM``).
        """
        for future in self.running:
            future.cancel()
        self.executor.shutdown(cancel=True)
        self._record_interrupted(inline, why)

    def _record_interrupted(self, inline: TaskResult | None, why: str) -> None:
        """Record the nodes submitted and not finished as interrupted, with what their stopped attempts printed.

        Nodes whose first attempt never started are no steps of the run: their rows are removed.
        """
        # Attempts only queued (on a Dask worker, behind another task) never ran: a step whose first
        # attempt it was never started, and is left out as the other executors leave out a step they
        # had not submitted; a retry that never began leaves the step at its earlier attempts.
        unstarted = self.executor.unstarted()
        stopped = self.executor.stopped()  # what stopped attempts of a pool or Dask worker had printed
        never: list[str] = []
        # Nodes submitted and not finished, including one interrupted inside an inline executor.
        for name, attempt in list(self.attempting.items()):
            if name in self.results:
                continue
            node = self.dag.nodes[name]
            self.commits.finished(name)
            if (name, attempt) in unstarted:
                attempt -= 1
                if attempt == 0:
                    never.append(name)
                    del self.attempting[name]  # it was never attempted
                    continue
            tries = self.attempts.get(name, [])  # earlier failed attempts of a retried step too
            if inline is not None and inline.node == name and inline.attempt == attempt:
                cut: TaskResult | None = inline
            else:
                cut = stopped.get((name, attempt))
            if cut is not None:
                sent = self.started.get(name)
                if attempt == 1 and sent is not None and sent < cut.started <= time.time():
                    # As for a finished attempt (``_loop``): its time is from when a worker began it, not
                    # from when it was sent, which on Dask may have waited for the LocalCluster to start.
                    self.started[name] = cut.started
                tries.append(AttemptRecord(attempt=attempt, status="interrupted", started=cut.started,
                                           ended=cut.ended, error=why,
                                           stdout=cut.stdout, stderr=cut.stderr, logs=cut.logs))
            # As for a failed step: the reason stays why it started, the error says what stopped it, so that
            # `orch show` and get_run() say "interrupted by the user" as the run's summary did.
            decision = self.decisions[name]
            record = self._record(node, "interrupted", decision, attempts=attempt)
            record.error = why
            self.ctx.lineage.queue_step(record, tries)
            self.results[name] = StepResult(name, "interrupted", decision.reason, attempt, record.duration,
                                            error=why, key=decision.key)
        # Started and stopped before its first attempt was submitted (Ctrl-C during the commit before it):
        # its "running" row is queued, or written, and it never ran.
        for name in self.started:
            if name not in self.attempting and name not in self.results:
                self.commits.finished(name)
                never.append(name)
        if never:
            self.ctx.lineage.forget_steps(self.run_id, never)  # its "running" row may be written already

    def _unfinished(self) -> list[str]:
        """Nodes submitted and not finished: steps that would stay ``running`` in a run that is over."""
        return [name for name in self.attempting if name not in self.results]

    def _finish(self, status: str, database: tuple[int, int] | None) -> None:
        if self._unfinished():
            # Only when what stopped the run was cut short (by a signal this process could not hold) or the
            # run loop itself failed: a step left "running" in a finished run would say so for good, and
            # `orch logs` that it is still running. Its workers are stopped, and it is interrupted.
            self._interrupt(None, self._stopped_by or "its run stopped before it finished")
        self.commits.stop()
        if self.order is not None:  # the items of each map before it, as `orch show` and Run.steps list them
            self.dag.nodes = self.order.ordered(self.dag.nodes)
        now = _file_identity(self.ctx.lineage.path)
        if now != database and status != "interrupted":  # an interrupted run is already saying it stopped
            # Deleted under the run (rm -rf of the store): SQLite wrote on into the deleted file. Saying
            # "succeeded", then "no store" at the next command, would lose the run without a word.
            self.executor.shutdown()
            raise StoreDeletedError(self.ctx.location, str(self.ctx.lineage.path), self.run_id,
                                    replaced=now is not None)
        outputs = result = None
        if status == "succeeded":
            outputs = substitute(self.dag.result, lambda o: self.digests[(o.node, o.name)])
            result = encode_result(expand_maps(self.dag.result, self._maps()),
                                   lambda o: self.digests[(o.node, o.name)])
        # In pipeline order, as `orch show` and `Run.steps` list them, not in the order steps finished
        # (a retried or slow step would come after the steps behind it, and its dependents before it).
        results = {n: self.results[n] for n in self.dag.nodes if n in self.results} | self.results
        failed = [r for r in results.values() if r.status == "failed"]
        error = _failure_line(failed[0]) + _others_failed(failed) if failed else None
        if status == "interrupted":  # a job's wrapper reads error: null said nothing of the SIGTERM that stopped it
            error = self._stopped_by if error is None else f"{self._stopped_by}; {error}"
        self.ctx.lineage.finish_run(self.run_id, status, outputs=outputs, error=error, result=result)
        self.executor.shutdown()
        self.observer.run_finished(self.run_id, status, results)
        self._settle_filled()  # last: the run is recorded whatever hashing a memo does

    def _settle_filled(self) -> None:
        """Module-level containers this run's steps filled (a memo) keep the digest its keys used.

        Once per run, not per step: the next run in this process (a notebook)
        then finds those steps cached, as a fresh process does (filled_containers).
        """
        if not self.started:
            return  # every step cached: nothing ran that could fill one, and nothing to hash again
        used: dict[tuple[str, str], tuple[str, str, Any, str]] = {}
        codes = {id(node.code): node.code for node in self.dag.nodes.values()}
        for code in codes.values():
            for owner, name, value, digest in code.filled:
                used.setdefault((owner, name), (owner, name, value, digest))
        if used:
            settle(used.values(), value_digest)

    def _maps(self) -> dict[str, tuple[list[str], tuple[str, ...]]]:
        """Each map over a step's output: its item nodes and its step's output names."""
        return {n: (items, self.dag.nodes[n].outputs) for n, items in self.map_children.items()}

    def _run_object(self, status: str) -> Run:
        # A map has no entry of its own, unless it failed to expand.
        steps = {n: r for n in self.dag.nodes if (r := self.results.get(n)) is not None
                 and not (self.dag.nodes[n].is_map and r.status in ("map", "skipped"))}
        run = Run(self.run_id, self.dag.pipeline, status, steps, self.ctx.location, result=self.dag.result,
                  metadata=self.ctx.metadata,
                  maps=self._maps())
        failed = run.failed_steps
        if failed:
            run.error = f"{_failure_line(failed[0])} (details: `orch show {self.run_id}`{_others_failed(failed)})"
        return run


def _file_identity(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """The device and inode of the file at ``path``, or None when there is none."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino


def _recompute_reason(exc: CorruptArtifactError | MissingArtifactError) -> str:
    """Why the producer of an input that did not load runs again: damaged, or signed with another key."""
    if isinstance(exc, UntrustedArtifactError) and exc.detail.startswith((SIGNED_WITH_ANOTHER_KEY, NO_KEY_TO_CHECK)):
        return cache.OTHER_KEY
    return cache.DAMAGED
