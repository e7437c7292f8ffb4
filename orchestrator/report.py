"""Progress and summaries from run events.

The runner calls a ``RunObserver`` as nodes start and finish. The base class
does nothing (the Python API is quiet by default); ``ConsoleReporter`` shows
a live rich progress line on a terminal (done/total, current step, cache
hits) or plain lines otherwise, then a summary table. Nothing here changes
what a run does. Names, reasons and errors come from user code, so they are
never parsed as rich markup; only the styles chosen here are.
"""

from __future__ import annotations

import contextlib
import re
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from orchestrator.text_streams import reader_gone, silence

if TYPE_CHECKING:
    from rich.text import Text

    from orchestrator.dag import DAG
    from orchestrator.results import StepResult

STATUS_STYLE = {
    "ran": "green", "cached": "cyan", "failed": "bold red", "skipped": "yellow",
    "interrupted": "magenta", "running": "blue", "succeeded": "bold green",
}
# A step with one of these statuses shows its error (what stopped it) as its why, not why it started.
STOPPED = ("failed", "interrupted")
SHORT_VALUE = 200  # characters of a parameter or metric value shown on one line of a display


def escape(text: str) -> str:
    """``text`` with its square brackets escaped, so that rich prints it as it is."""
    from rich.markup import escape as rich_escape

    return rich_escape(str(text))


def styled(status: str) -> str:
    """``status`` as rich markup in its style; a status without a style stays plain text."""
    style = STATUS_STYLE.get(status)
    return f"[{style}]{escape(status)}[/]" if style else escape(status)


def status_text(status: str) -> Text:
    """``status`` in its style (plain for a status without one), as text that is never markup."""
    from rich.text import Text

    return Text(str(status), style=STATUS_STYLE.get(status, ""))


DETAIL_LIMIT = 500  # characters of a failed step's error on its progress line (the summary has it in full)


def one_line(value: object, limit: int = SHORT_VALUE) -> str:
    """``str(value)`` on one line of at most ``limit`` characters, ending in "…" when cut.

    For displays only: ``--json`` documents keep values in full.
    """
    text = str(value).replace("\r\n", "\n").replace("\n", "\\n")
    return text if len(text) <= limit else text[:limit - 1] + "…"


def shown_results(results: dict[str, StepResult], dag: DAG | None) -> dict[str, StepResult]:
    """The results a summary shows: those of step calls, not the map nodes that expanded into them.

    Mirrors ``Run.steps``: a map has no entry of its own unless it failed to expand.
    """
    def is_map(name: str) -> bool:
        node = dag.nodes.get(name) if dag is not None else None
        return node.is_map if node is not None else False

    return {name: r for name, r in results.items()
            if r.status != "map" and not (r.status == "skipped" and is_map(name))}


class RunObserver:
    """Receives run events. Subclass and override what you need."""

    def run_started(self, run_id: str, dag: DAG) -> None: ...

    def step_started(self, node: str, reason: str) -> None:
        """``node`` is handed to the executor, to run for ``reason``: at once on the sequential one; on a
        pool or Dask worker it may wait first (``step_began`` says when it began, if later)."""

    def step_retrying(self, node: str, attempt: int, error: str, delay: float) -> None: ...

    def step_waiting(self, node: str) -> None:
        """Another run is computing ``node``'s key: this run waits for its result (once per node)."""

    def step_began(self, node: str, at: float) -> None:
        """``node``'s first attempt began at ``at`` (Unix time) on its worker, later than ``step_started``
        said (it waited for a pool worker to start, or for a Dask worker): its time counts from then."""

    def step_finished(self, node: str, status: str, detail: str) -> None: ...

    def warning(self, message: str) -> None:
        """Something the run found that the user should know, that does not stop it."""

    def run_finished(self, run_id: str, status: str, results: dict[str, StepResult]) -> None: ...

    def run_closed(self, run_id: str) -> None:
        """The run is over, however it ended: release what ``run_started`` took (a live display).

        Called once, last, on every way out of a run: after ``run_finished``, or in its stead
        when ending the run raised (a store deleted under it, a database that could not be
        written), when ``run_finished`` is never called.
        """


class ConsoleReporter(RunObserver):
    """Live progress on stderr and a summary at the end.

    Written to a log (CI, cron, ``2> run.log``) rather than a terminal, each event is one line,
    never wrapped, and the summary is laid out 200 columns wide (``COLUMNS`` wins), so that a
    line of the log is a line to ``grep``; no live bar redraws into it.
    """

    def __init__(self, *, verbose: bool = False, summary: bool = True) -> None:
        from rich.console import Console

        from orchestrator.capture import TerminalStream
        from orchestrator.tables import is_live_terminal, log_width

        # Pinned to the stderr of now: rich would look it up at each write, and find a step's capture.
        # log_width: in a CI log, rows stay one line.
        terminal: Any = TerminalStream(sys.stderr)  # a text stream, though no IO[str] subclass
        self.console = log_width(Console(file=terminal, stderr=True, highlight=False))
        # rich's answer to a closed pipe is SystemExit(1), out of the middle of the run: see _reader_gone.
        self.console.on_broken_pipe = self._reader_gone  # type: ignore[method-assign]
        self.verbose = verbose
        self.summary = summary
        self.live = is_live_terminal(self.console) and not verbose
        self.total = self.done = self.hits = 0
        self.current = ""
        self._began: dict[str, float] = {}  # node -> when it started, for the lines written to a log
        self._finished: dict[str, str] = {}  # node -> how it finished (a repaired one finishes twice)
        self._dag: DAG | None = None
        self._maps = 0  # map nodes of the DAG: a run adds item nodes to it, never maps
        self._progress: Any = None
        self._task: Any = None
        self._waiting_maps: set[str] = set()  # steps whose map items were said to wait for another run

    def _print(self, *objects: Any, **options: Any) -> None:
        """``console.print``; a reader that went away ends the printing, never the run."""
        with self._unless_gone():
            self.console.print(*objects, **options)

    @contextlib.contextmanager
    def _unless_gone(self) -> Iterator[None]:
        try:
            yield
        except OSError as exc:  # a terminal that hung up (EIO); a closed pipe comes through on_broken_pipe
            if not reader_gone(exc):
                raise
            self._reader_gone()

    def _reader_gone(self) -> None:
        """The log's reader is gone (``orch run 2>&1 | head``, a hung-up terminal): print nothing more.

        The run goes on and is recorded as it ends; rich's own answer, ``SystemExit(1)`` from the
        middle of the run, recorded it ``failed`` with no step, and its work undone.
        """
        self.console.quiet = True
        silence(self.console.file)

    def run_started(self, run_id: str, dag: DAG) -> None:
        self._dag = dag
        self._maps = sum(n.is_map for n in dag.nodes.values())
        self.total = self._step_count()
        # A map's items are known only once the list it maps over exists, so they cannot be counted yet.
        mapped = " + mapped items" if self._maps else ""
        self._print(f"run [bold]{escape(run_id)}[/] of pipeline [bold]{escape(dag.pipeline)}[/]: "
                           f"{self.total} step{'s' if self.total != 1 else ''}{mapped}")
        if self.live:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("[cyan]{task.fields[hits]} cached"), TimeElapsedColumn(),
                console=self.console, transient=True,
            )
            self._task = self._progress.add_task("starting", total=self.total, hits=0)
            with self._unless_gone():
                self._progress.start()

    def _step_count(self) -> int:
        # Step calls only: a map node is replaced by its items' nodes once it expands. The maps are
        # counted once, as the run starts: this runs at every step's start and end, and counting the
        # nodes each time a map had added some cost the whole DAG per map (4.5 million calls for
        # 1,000 maps of 3 items).
        if self._dag is None:
            return 0
        return len(self._dag.nodes) - self._maps

    def step_started(self, node: str, reason: str) -> None:
        self.current = node
        if self._progress is not None:
            self.total = max(self.total, self._step_count())
            self._progress.update(self._task, total=self.total, description=f"running [bold]{escape(node)}[/]")
        else:
            self._began.setdefault(node, time.monotonic())
            self._print(f"  [blue]▶[/] {escape(node)}: [dim]{escape(reason)}[/]", soft_wrap=True)

    def step_began(self, node: str, at: float) -> None:
        if node in self._began:  # the line written to a log says the step's own time, as the summary does
            self._began[node] = time.monotonic() - max(0.0, time.time() - at)

    def step_retrying(self, node: str, attempt: int, error: str, delay: float) -> None:
        self._print(f"  [yellow]↻[/] {escape(node)}: attempt {attempt} failed ({escape(error)}); "
                           f"retrying in {delay:.1f} s", soft_wrap=True)

    def step_waiting(self, node: str) -> None:
        # Said once: that run's step may take hours, and without this the run looks hung. For the
        # items of a map, once for all of them: two runs of one map share hundreds of items, and a
        # line for each buried the progress of the items this run computes.
        what = "another run is computing it; waiting for its result"
        item = self._dag.nodes.get(node) if self._dag is not None else None
        if item is not None and (item.item_of is not None or item.in_map):
            if item.step.name in self._waiting_maps:
                if self._progress is not None:
                    self._progress.update(self._task, description=f"waiting for [bold]{escape(node)}[/]")
                return
            self._waiting_maps.add(item.step.name)
            what += f" (said once for all items of {item.step.name})"
        if self._progress is not None:
            self._progress.update(self._task, description=f"waiting for [bold]{escape(node)}[/]")
            self._print(f"  [yellow]…[/] {escape(node)}: {escape(what)}")
        else:
            self._print(f"  [yellow]…[/] {escape(node)}: {escape(what)}", soft_wrap=True)

    def step_finished(self, node: str, status: str, detail: str) -> None:
        if status == "waiting":
            self._print(f"  [yellow]![/] {escape(node)}: {escape(detail)}; recomputing it", soft_wrap=True)
            return
        before = self._finished.get(node)
        self._finished[node] = status
        if before is None:
            self.done += 1
        elif before == "cached":
            self.hits -= 1  # a cached step whose stored output was damaged, recomputed: counted once
        self.hits += status == "cached"
        if self._progress is not None:
            self.total = max(self.total, self._step_count(), self.done)
            self._progress.update(self._task, total=self.total, completed=self.done, hits=self.hits)
            if status == "failed":  # one line: the error is in full under the summary
                first = detail.strip().splitlines()[0] if detail.strip() else detail
                self._print(f"  [bold red]✗[/] {escape(node)}: {escape(first)}", no_wrap=True, overflow="ellipsis")
        elif status != "cached" or self.verbose:
            # Written to a log (CI) rather than redrawn: each line says how far the run is, and how
            # long the step took, since no live bar shows either.
            # The first line of the error, clipped: a step raising a 5 MB message wrote a 5 MB line.
            extra = f": {one_line(detail.strip().splitlines()[0] if detail.strip() else detail, DETAIL_LIMIT)}" \
                if status in ("failed", "skipped") else ""
            began = self._began.pop(node, None)
            took = f", {format_duration(time.monotonic() - began)}" if began is not None else ""
            count = f"{self.done}/{max(self.total, self._step_count(), self.done)}"
            self._print(f"  {styled(status)} {escape(node)}{escape(extra)} [dim]({count}{took})[/]",
                               soft_wrap=True)

    def warning(self, message: str) -> None:
        # One line, as every message is: not folded at the console's width, so it can be grepped.
        self._print(f"[yellow]warning:[/] {escape(message)}", soft_wrap=True)

    def run_finished(self, run_id: str, status: str, results: dict[str, StepResult]) -> None:
        self._stop_progress()
        shown = shown_results(results, self._dag)
        if self.summary and shown:  # a run stopped before its first step started has no rows to head
            self._print(summary_table(shown, self._dag, run_id, width=self.console.width))
        counts: dict[str, int] = {}
        for r in shown.values():
            counts[r.status] = counts.get(r.status, 0) + 1
        parts = ", ".join(f"{n} {s}" for s, n in counts.items()) or "no step started"
        self._print(f"run [bold]{escape(run_id)}[/] {styled(status)} ({escape(parts)})")

    def run_closed(self, run_id: str) -> None:
        # Ending the run raised before run_finished: a live bar left running would go on redrawing
        # in a notebook (its thread outlives the run), and on a terminal cover the error's line.
        self._stop_progress()

    def _stop_progress(self) -> None:
        """Stop the live bar, once; its refresh thread ends with it."""
        progress, self._progress = self._progress, None
        if progress is not None:
            with self._unless_gone():
                progress.stop()


FOLD_ABOVE = 40  # rows a summary or plan shows one by one; past that, alike calls of one step share a row
NUMBER_SUFFIX = re.compile(r"_\d+$")  # the number of a repeated call, `fit_2`
_NUMBERED_NAME = re.compile(r"'([A-Za-z_]\w*?)_\d+'")


def fold_rows(rows: list[tuple[str, str, str]]) -> list[list[int]]:
    """Indexes of ``(node, status, reason)`` rows grouped for display, in order of first appearance.

    Up to ``FOLD_ABOVE`` rows, or for a failed row, each row is its own group.
    Past that, calls of one step (``fit``, ``fit_2``… or a map's items) with
    the same status and the same reason (up to the numbers of the nodes it
    names: ``input from step 'load_7'``) share one group, so that a pipeline
    of 5,000 nodes reads in a screen.
    """
    if len(rows) <= FOLD_ABOVE:
        return [[i] for i in range(len(rows))]
    groups: dict[Any, list[int]] = {}
    for i, (node, status, reason) in enumerate(rows):
        key: Any = i if status == "failed" else (NUMBER_SUFFIX.sub("", node), status, _alike(reason))
        groups.setdefault(key, []).append(i)
    return list(groups.values())


# What a reason says in parentheses at the end of one of its parts: the values of a changed
# parameter (``(5 → 6)``), the path of a changed file. Each item of a map has its own.
_DETAIL = re.compile(r" \([^;]*\)(?=; |$)")


def _alike(reason: str) -> str:
    """``reason`` without what differs between alike calls: the numbers of the nodes it names, its details."""
    return _DETAIL.sub("", _NUMBERED_NAME.sub(r"'\1'", reason))


def folded_reason(reasons: list[str]) -> str:
    """The reason a row of alike calls shows: theirs, or what they share when each has its own values.

    A map whose every item changed (``parameter `x` changed (5 → 6)``,
    ``(7 → 8)``…) reads ``parameter `x` changed (differs per call)``.
    """
    first = reasons[0]
    if all(_NUMBERED_NAME.sub(r"'\1'", r) == _NUMBERED_NAME.sub(r"'\1'", first) for r in reasons):
        return _named_nodes(reasons)
    return f"{_alike(first)} (differs per call)"


NAMES_LISTED = 4  # the nodes a folded reason names one by one, when they are not one run of numbers


def _named_nodes(reasons: list[str]) -> str:
    """The first reason, each numbered node it names written as all the rows name there.

    Each link of a chain waits for the one before it: ``inc_3 … inc_2000`` read
    ``input from step 'inc_2'``, true of the first alone; they read ``input from step
    'inc_2 … inc_1999'``. A range only where the numbers run on: items skipped because
    ``train_4``, ``train_21`` and ``train_41`` failed read ``'train_4', 'train_21', 'train_41'``,
    not ``'train_4 … train_41'``, which read as 38 failures.
    """
    first = reasons[0]
    starts = list(_NUMBERED_NAME.finditer(first))
    named = [[m.group(0)[1:-1] for m in _NUMBERED_NAME.finditer(r)] for r in reasons]
    if any(len(names) != len(starts) for names in named):
        return first
    out, at = [], 0
    for k, m in enumerate(starts):
        out += [first[at:m.start()], _names_shown(list(dict.fromkeys(names[k] for names in named)))]
        at = m.end()
    return "".join(out) + first[at:]


def _names_shown(names: list[str]) -> str:
    """``'inc_2 … inc_1999'`` for numbers that run on, else the names listed (a few, then how many)."""
    if len(names) == 1:
        return f"'{names[0]}'"
    numbers = [int(NUMBER_SUFFIX.search(n).group(0)[1:]) for n in names]  # type: ignore[union-attr]
    if numbers == list(range(numbers[0], numbers[0] + len(numbers))):
        return f"'{names[0]} … {names[-1]}'"
    listed = ", ".join(f"'{n}'" for n in names[:NAMES_LISTED])
    return listed if len(names) <= NAMES_LISTED else f"{listed} … ({len(names)} steps)"


def step_cell(name: str, width: int, others: int) -> Text:
    """``name`` for the step column of a table ``width`` characters wide.

    The other columns need ``others`` characters to stay readable (a reason cut to a few
    letters a line is not), so a longer name is cut to what is left, 24 characters or more.
    It is cut in its middle, not at its end: calls of one step differ only at their end
    (``…_for_segment_2``, ``…_for_segment_3``), which a cut at the end would make read alike.
    """
    from rich.text import Text

    room = max(24, width - others)
    if len(name) <= room:
        return Text(name)
    tail = (room - 1) // 2
    return Text(f"{name[:room - 1 - tail]}…{name[-tail:]}")


def folded_name(names: list[str]) -> str:
    """``fit`` for one node; ``fit … fit_2000 (2000)`` for a group of them."""
    return names[0] if len(names) == 1 else f"{names[0]} … {names[-1]} ({len(names)})"


def fold_note(rows: int, groups: int, where: str) -> str:
    """The line under a folded table, or "" when nothing was folded."""
    if rows == groups:
        return ""
    return f"{rows} steps in {groups} row{'s' if groups != 1 else ''} (alike calls of one step share a row; {where})"


def summary_table(results: dict[str, StepResult], dag: DAG | None = None, run_id: str = "",
                  width: int = 80) -> Any:
    """A rich table: one row per step call with status, attempts, duration and reason.

    Map nodes are left out (see ``shown_results``); no cell is parsed as markup.
    Past ``FOLD_ABOVE`` rows, alike calls of one step share a row (``fold_rows``).
    ``width`` is the console's, which a long step name must leave room in (``step_cell``).
    """
    from rich.table import Table

    table = Table(box=None, pad_edge=False, show_edge=False)
    for col in ("step", "status", "attempts", "time", "why"):
        table.add_column(col, justify="right" if col in ("attempts", "time") else "left", no_wrap=col != "why")
    shown = list(shown_results(results, dag).values())
    whys = [(r.error if r.status in STOPPED and r.error else r.reason) or "" for r in shown]
    groups = fold_rows([(r.name, r.status, why) for r, why in zip(shown, whys)])
    for group in groups:
        rs = [shown[i] for i in group]
        durations = [r.duration for r in rs if r.duration is not None]
        table.add_row(step_cell(folded_name([r.name for r in rs]), width, 50), status_text(rs[0].status),
                      str(sum(r.attempts for r in rs) or ""),
                      format_duration(sum(durations) if durations else None),
                      why_cell(rs[0].status, folded_reason([whys[i] for i in group])))
    note = fold_note(len(shown), len(groups), f"orch show {run_id or 'RUN_ID'} lists each")
    if not note:
        return table
    from rich.console import Group
    from rich.text import Text

    # Under the table, at the console's width: a caption was folded to the table's, which split
    # the `orch show RUN_ID` it names over two lines.
    return Group(table, Text(note, style="dim"))


def why_cell(status: str, why: str) -> Text:
    """The why column's cell: a reason wraps; what stopped a step is its first line, clipped to the column.

    An error is shown in full once, on the ``error:`` line under the table (and by ``orch show``):
    wrapped in the table as well, a long one took five lines there, then was printed again.
    """
    from rich.text import Text

    if status not in STOPPED:
        return Text(why)
    lines = why.strip().splitlines() or [""]
    return Text(lines[0] + (" …" if len(lines) > 1 else ""), no_wrap=True, overflow="ellipsis")


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()
