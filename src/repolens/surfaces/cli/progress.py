"""Progress bars and the end-of-run summary for ``repolens index`` (rich)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from repolens.domain import DIRTY_SUFFIX, short_commit
from repolens.indexing.pipeline import IndexReport

_LABELS = {"walk": "walk", "read": "read", "parse": "parse", "write": "write", "embed": "embed"}


class RichProgress:
    """One bar per phase, with counts and a rate."""

    def __init__(self) -> None:
        self.console = Console(stderr=True)
        self._progress = Progress(
            TextColumn("[bold]{task.description:<6}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}
        self._started = False

    def start(self, phase: str, total: int | None) -> None:
        """Add a bar for ``phase``."""
        if not self._started:
            self._progress.start()  # only once work begins, so early errors print cleanly
            self._started = True
        self._tasks[phase] = self._progress.add_task(_LABELS.get(phase, phase), total=total, rate="")

    def advance(self, phase: str, n: int = 1) -> None:
        """Move the bar and refresh the rate."""
        task_id = self._tasks[phase]
        self._progress.advance(task_id, n)
        task = self._progress.tasks[task_id]
        if task.elapsed:
            self._progress.update(task_id, rate=f"{task.completed / task.elapsed:,.0f}/s")

    def finish(self, phase: str) -> None:
        """Complete the bar."""
        task_id = self._tasks[phase]
        task = self._progress.tasks[task_id]
        self._progress.update(task_id, total=task.completed)

    def vectors(self, done: int, total: int) -> None:
        """Vector backfill progress (done of total units)."""
        if "embed" not in self._tasks:
            self.start("embed", total)
        task_id = self._tasks["embed"]
        self._progress.update(task_id, completed=done, total=total)
        task = self._progress.tasks[task_id]
        if task.elapsed:
            self._progress.update(task_id, rate=f"{(task.speed or 0):,.0f}/s")

    def close(self) -> None:
        """Stop drawing."""
        if self._started:
            self._progress.stop()


def print_summary(report: IndexReport, name: str) -> None:
    """The closing lines of ``repolens index``."""
    console = Console(stderr=True)
    seconds = report.seconds.get("total", 0.0)
    console.print(
        f"[bold]{name}[/] @ {short_commit(report.commit) or '(no git commit)'}: {report.files_seen} files "
        f"({report.files_changed} indexed, {report.files_unchanged} unchanged, {report.files_deleted} removed), "
        f"{report.symbols} symbols, {report.chunks} chunks in {seconds:.2f}s"
    )
    if report.commit.endswith(DIRTY_SUFFIX):
        console.print("[yellow]the work tree has uncommitted changes: they are indexed as they are on disk[/]")
    if report.vectors_total:
        console.print(
            f"vectors: {report.vectors_ready}/{report.vectors_total} ready ({report.vectors_embedded} embedded now)"
        )
    if report.skipped:
        reasons = ", ".join(f"{n} {r.replace('_', ' ')}" for r, n in sorted(report.skipped_by_reason().items()))
        console.print(f"skipped: {reasons}")
        for item in report.skipped[:20]:
            console.print(f"  [dim]{item.path}: {item.reason} ({item.detail})[/]")
        if len(report.skipped) > 20:
            console.print(f"  [dim]... {len(report.skipped) - 20} more (see --json)[/]")
    if report.parse_fallbacks:
        console.print(f"[yellow]{report.parse_fallbacks} files fell back to line windows (grammar failure)[/]")
