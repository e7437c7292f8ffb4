"""Progress and summaries from run events.

The runner calls a ``RunObserver`` as nodes start and finish. The base class
does nothing (the Python API is quiet by default); ``ConsoleReporter`` shows
a live rich progress line on a terminal (done/total, current step, cache
hits) or plain lines otherwise, then a summary table. Nothing here changes
what a run does.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.dag import DAG
    from orchestrator.results import StepResult

STATUS_STYLE = {
    "ran": "green", "cached": "cyan", "failed": "bold red", "skipped": "yellow",
    "interrupted": "magenta", "running": "blue", "succeeded": "bold green",
}


class RunObserver:
    """Receives run events. Subclass and override what you need."""

    def run_started(self, run_id: str, dag: DAG) -> None: ...

    def step_started(self, node: str, reason: str) -> None: ...

    def step_retrying(self, node: str, attempt: int, error: str, delay: float) -> None: ...

    def step_finished(self, node: str, status: str, detail: str) -> None: ...

    def run_finished(self, run_id: str, status: str, results: dict[str, StepResult]) -> None: ...


class ConsoleReporter(RunObserver):
    """Live progress on stderr and a summary at the end."""

    def __init__(self, *, verbose: bool = False, summary: bool = True) -> None:
        from rich.console import Console

        self.console = Console(stderr=True, highlight=False)
        self.verbose = verbose
        self.summary = summary
        self.live = self.console.is_terminal and not verbose
        self.total = self.done = self.hits = 0
        self.current = ""
        self._progress: Any = None
        self._task: Any = None

    def run_started(self, run_id: str, dag: DAG) -> None:
        self.total = len(dag.nodes)
        self.console.print(f"run [bold]{run_id}[/] of pipeline [bold]{dag.pipeline}[/]: {self.total} steps")
        if self.live:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("[cyan]{task.fields[hits]} cached"), TimeElapsedColumn(),
                console=self.console, transient=True,
            )
            self._task = self._progress.add_task("starting", total=self.total, hits=0)
            self._progress.start()

    def step_started(self, node: str, reason: str) -> None:
        self.current = node
        if self._progress is not None:
            self._progress.update(self._task, description=f"running [bold]{node}[/]")
        else:
            self.console.print(f"  [blue]▶[/] {node}: [dim]{reason}[/]")

    def step_retrying(self, node: str, attempt: int, error: str, delay: float) -> None:
        self.console.print(f"  [yellow]↻[/] {node}: attempt {attempt} failed ({error}); "
                           f"retrying in {delay:.1f} s")

    def step_finished(self, node: str, status: str, detail: str) -> None:
        if status == "waiting":
            self.console.print(f"  [yellow]![/] {node}: {detail}; recomputing it")
            return
        self.done += 1
        self.hits += status == "cached"
        if self._progress is not None:
            self._progress.update(self._task, completed=self.done, hits=self.hits)
            if status == "failed":
                self._progress.console.print(f"  [bold red]✗[/] {node}: {detail}")
        elif status != "cached" or self.verbose:
            style = STATUS_STYLE.get(status, "")
            extra = f": {detail}" if status in ("failed", "skipped") else ""
            self.console.print(f"  [{style}]{status}[/] {node}{extra}")

    def run_finished(self, run_id: str, status: str, results: dict[str, StepResult]) -> None:
        if self._progress is not None:
            self._progress.stop()
        if self.summary:
            self.console.print(summary_table(results))
        counts: dict[str, int] = {}
        for r in results.values():
            counts[r.status] = counts.get(r.status, 0) + 1
        parts = ", ".join(f"{n} {s}" for s, n in counts.items())
        style = STATUS_STYLE.get(status, "")
        self.console.print(f"run [bold]{run_id}[/] [{style}]{status}[/] ({parts})")


def summary_table(results: dict[str, StepResult]) -> Any:
    """A rich table: one row per node with status, attempts, duration and reason."""
    from rich.table import Table

    table = Table(box=None, pad_edge=False, show_edge=False)
    for col in ("step", "status", "attempts", "time", "why"):
        table.add_column(col, justify="right" if col in ("attempts", "time") else "left")
    for r in results.values():
        style = STATUS_STYLE.get(r.status, "")
        why = r.error if r.status == "failed" and r.error else r.reason
        table.add_row(r.name, f"[{style}]{r.status}[/]", str(r.attempts or ""),
                      format_duration(r.duration), why or "")
    return table


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
