"""``repolens index`` and ``repolens up``: index a folder or a git URL (or queue it, on PostgreSQL)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from repolens.errors import NotFound, RepolensError
from repolens.surfaces.cli.base import (
    cli,
    emit_json,
    handle_errors,
    json_option,
    open_services,
)

if TYPE_CHECKING:
    from repolens.services import Services
from repolens.surfaces.cli.query import ask, search

# -- index ------------------------------------------------------------------------------------


@cli.command()
@click.argument("location")
@click.option("--name", help="Source name (default: owner/repo from the remote, or the directory name).")
@click.option("--branch", help="Branch to clone (git URLs only).")
@click.option("--no-vectors", is_flag=True, help="Return once the lexical index is ready; embed later.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@click.option("--wait", is_flag=True, help="Shared database: follow the queued job to its end; fail if it fails.")
@json_option
@handle_errors
def index(
    location: str, name: str | None, branch: str | None, no_vectors: bool, quiet: bool, wait: bool, as_json: bool
) -> None:
    """Index a local directory or a git URL (https), incrementally.

    With the SQLite file, indexing runs here. With a shared PostgreSQL database
    (REPOLENS_DATABASE_URL), the job is queued for `repolens worker` processes and its id
    printed; --wait follows it.

    Put `--` before a URL that starts with a dash: it will be refused, but as a URL.
    """
    from repolens.indexing.pipeline import index_source
    from repolens.indexing.vectors import embed_and_compact
    from repolens.surfaces.cli.progress import RichProgress, print_summary

    with open_services() as services:
        if services.settings.uses_postgres:
            _queue_index(services, location, name=name, branch=branch, wait=wait, quiet=quiet, as_json=as_json)
            return
        progress = None if (quiet or as_json) else RichProgress()
        try:
            source, report = index_source(
                services.store,
                services.settings,
                location,
                name=name,
                branch=branch,
                progress=progress,
                embedder=None if no_vectors else services.embedder,
            )
            backfilled, report.vectors_ready, report.vectors_total = embed_and_compact(
                services.store,
                source.id,
                services.embedder,
                embed=not no_vectors,
                on_progress=progress.vectors if progress is not None else None,
            )
            report.vectors_embedded += backfilled
        finally:
            if progress is not None:
                progress.close()
        if as_json:
            emit_json(
                {
                    "source": source.name,
                    "id": source.public_id,
                    "commit": report.commit,
                    "filesSeen": report.files_seen,
                    "filesChanged": report.files_changed,
                    "filesDeleted": report.files_deleted,
                    "filesUnchanged": report.files_unchanged,
                    "symbols": report.symbols,
                    "chunks": report.chunks,
                    "skipped": report.skipped_by_reason(),
                    "skippedFiles": [{"path": s.path, "reason": s.reason, "detail": s.detail} for s in report.skipped],
                    "vectorsReady": report.vectors_ready,
                    "vectorsTotal": report.vectors_total,
                    "seconds": {k: round(v, 3) for k, v in report.seconds.items()},
                }
            )
        else:
            print_summary(report, source.name)


JOB_POLL_S = 0.5  # how often --wait reads the job row


def _queue_index(
    services: Services, location: str, *, name: str | None, branch: str | None, wait: bool, quiet: bool, as_json: bool
) -> None:
    from repolens import catalog
    from repolens.indexing.jobs import phase_counts

    source, job = catalog.queue_location(services.store, services.settings, location, name=name, branch=branch)
    if not wait:
        if as_json:
            emit_json({"source": source.name, "id": source.public_id, "job": job.public_id, "state": job.state})
        else:
            click.echo(f"queued job {job.public_id} for {source.name} (add --wait to follow it)")
        return
    last = ""
    while True:
        current = services.store.get_job(job.public_id)
        if current is None:
            raise NotFound(f"job {job.public_id} vanished (its data source was deleted)")
        counts = phase_counts(current)
        counted = f" {counts[1]}/{counts[2]} {counts[0]}" if counts is not None else ""
        line = f"{current.state} {current.phase}{counted} {current.percent:.0f}%"
        if not (quiet or as_json) and line != last:
            click.echo(f"job {job.public_id}: {line}", err=True)
            last = line
        if current.state in ("Ready", "Failed"):
            break
        time.sleep(JOB_POLL_S)
    if as_json:
        emit_json(
            {
                "source": source.name,
                "id": source.public_id,
                "job": current.public_id,
                "state": current.state,
                "reason": current.reason,
            }
        )
    if current.state == "Failed":
        raise RepolensError(f"indexing {source.name} failed: {current.reason}")
    if not as_json:
        refreshed = services.store.get_source(source.public_id)
        files = refreshed.file_count if refreshed else 0
        click.echo(f"{source.name}: indexed ({files} files) by job {current.public_id}")


@cli.command()
@click.argument("location", required=False)
@click.option("--query", default="where are search results ranked", show_default=True)
@handle_errors
def up(location: str | None, query: str) -> None:
    """Index a repository (default: the current directory), run a sample search and ask a sample question."""
    target = location or str(Path.cwd())
    ctx = click.get_current_context()
    ctx.invoke(index, location=target, name=None, branch=None, no_vectors=False, quiet=False, as_json=False)
    click.echo(click.style(f"\n$ repolens search {query!r}", bold=True))
    ctx.invoke(search, query=query, sources=(), paths=(), exts=(), limit=5, mode="auto", content=False, as_json=False)
    click.echo(click.style(f"\n$ repolens ask {query!r}", bold=True))
    ctx.invoke(ask, question=query, sources=(), conversation_id=None, forget=True, as_json=False)
