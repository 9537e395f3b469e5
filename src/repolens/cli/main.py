"""The ``repolens`` command line. Each command parses its options, calls the core, prints.

Imports of the heavy parts (tree-sitter, numpy, onnxruntime, rich) happen inside the
commands that need them: scripts call ``repolens search`` once per query.
"""

from __future__ import annotations

import errno
import json
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from repolens.domain import MAX_RELATIONS_PER_TYPE, MAX_RESULTS, short_commit
from repolens.errors import Conflict, InvalidInput, NotFound, RepolensError, StorageError

if TYPE_CHECKING:
    from repolens.domain import SearchFilters
    from repolens.services import Services

F = TypeVar("F", bound=Callable[..., Any])
EXIT_ERROR = 1
EXIT_USAGE = 2


@contextmanager
def _services() -> Iterator[Services]:
    from repolens.services import build_services
    from repolens.settings import load_settings

    services = build_services(load_settings())
    try:
        yield services
    finally:
        services.close()


def _fail(exc: RepolensError) -> None:
    message = str(exc)
    if isinstance(exc, Conflict) and exc.candidates:
        message += "\n  candidates:\n    " + "\n    ".join(exc.candidates)
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_USAGE if isinstance(exc, InvalidInput) else EXIT_ERROR)


def _handle_errors(func: F) -> F:
    import functools

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except RepolensError as exc:
            _fail(exc)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]  # functools.wraps loses the ParamSpec


def _filters(sources: tuple[str, ...], paths: tuple[str, ...], exts: tuple[str, ...]) -> SearchFilters:
    from repolens.domain import SearchFilters

    return SearchFilters(
        sources=tuple(sources),
        paths=tuple(p.strip("/") for p in paths),
        extensions=tuple(e.lower().lstrip(".") for e in exts),
    )


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


source_option = click.option("--source", "-s", "sources", multiple=True, help="Limit to this source (repeatable).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print CodeAlive-shaped JSON.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="repolens")
def cli() -> None:
    """repolens: index repositories and search them, offline."""


# -- index ------------------------------------------------------------------------------------


@cli.command()
@click.argument("location")
@click.option("--name", help="Source name (default: owner/repo from the remote, or the directory name).")
@click.option("--branch", help="Branch to clone (git URLs only).")
@click.option("--no-vectors", is_flag=True, help="Return once the lexical index is ready; embed later.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@click.option("--wait", is_flag=True, help="Shared database: follow the queued job to its end; fail if it fails.")
@json_option
@_handle_errors
def index(location: str, name: str | None, branch: str | None, no_vectors: bool, quiet: bool, wait: bool,
          as_json: bool) -> None:  # fmt: skip
    """Index a local directory or a git URL (https), incrementally.

    With the SQLite file, indexing runs here. With a shared PostgreSQL database
    (REPOLENS_DATABASE_URL), the job is queued for `repolens worker` processes and its id
    printed; --wait follows it.

    Put `--` before a URL that starts with a dash: it will be refused, but as a URL.
    """
    from repolens.cli.progress import RichProgress, print_summary
    from repolens.indexing.pipeline import index_source
    from repolens.indexing.vectors import backfill

    with _services() as services:
        if services.settings.uses_postgres:
            _queue_index(services, location, name=name, branch=branch, wait=wait, quiet=quiet, as_json=as_json)
            return
        progress = None if (quiet or as_json) else RichProgress()
        try:
            source, report = index_source(
                services.store, services.settings, location, name=name, branch=branch, progress=progress
            )
            embedder = services.embedder
            if embedder is not None and not no_vectors:
                on_progress = progress.vectors if progress is not None else None
                report.vectors_embedded = backfill(services.store, source.id, embedder, on_progress=on_progress)
            services.store.compact()
            if embedder is not None:
                report.vectors_ready, report.vectors_total = services.store.vector_counts(source.id, embedder.name)
        finally:
            if progress is not None:
                progress.close()
        if as_json:
            _emit_json(
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


def _queue_index(services: Services, location: str, *, name: str | None, branch: str | None, wait: bool,
                 quiet: bool, as_json: bool) -> None:  # fmt: skip
    from repolens import catalog
    from repolens.indexing.jobs import phase_counts

    source, job = catalog.queue_location(services.store, services.settings, location, name=name, branch=branch)
    if not wait:
        if as_json:
            _emit_json({"source": source.name, "id": source.public_id, "job": job.public_id, "state": job.state})
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
        _emit_json({"source": source.name, "id": source.public_id, "job": current.public_id, "state": current.state,
                    "reason": current.reason})  # fmt: skip
    if current.state == "Failed":
        raise RepolensError(f"indexing {source.name} failed: {current.reason}")
    if not as_json:
        refreshed = services.store.get_source(source.public_id)
        files = refreshed.file_count if refreshed else 0
        click.echo(f"{source.name}: indexed ({files} files) by job {current.public_id}")


# -- search -----------------------------------------------------------------------------------


@cli.command()
@click.argument("query")
@source_option
@click.option("--path", "paths", multiple=True, help="Only paths under this prefix (repeatable).")
@click.option("--ext", "exts", multiple=True, help="Only files with this extension, e.g. py (repeatable).")
@click.option("--limit", "-k", default=10, show_default=True, type=click.IntRange(1, MAX_RESULTS))
@click.option("--mode", type=click.Choice(["auto", "lexical", "semantic", "hybrid"]), default="auto", show_default=True)
@click.option("--content", is_flag=True, help="Include full content in --json output.")
@json_option
@_handle_errors
def search(query: str, sources: tuple[str, ...], paths: tuple[str, ...], exts: tuple[str, ...], limit: int,
           mode: str, content: bool, as_json: bool) -> None:  # fmt: skip
    """Hybrid code search: symbols, chunks and files ranked for QUERY."""
    from repolens import operations, views
    from repolens.retrieval.search import Mode

    with _services() as services:
        mode_value: Mode = mode  # type: ignore[assignment]  # click.Choice guarantees the literal
        request = operations.SearchRequest(query, names=sources, paths=paths, extensions=exts, limit=limit,
                                           mode=mode_value, include_content=content)  # fmt: skip
        outcome, contents = operations.search_with_contents(services, None, request)
        if as_json:
            _emit_json(views.search_response(outcome, contents, include_content=content))
            return
        if not outcome.hits:
            click.echo("no results")
        for i, hit in enumerate(outcome.hits, start=1):
            row = hit.artifact
            label = row.qualified_name if row.kind == "Symbol" else row.name or row.kind.lower()
            click.echo(
                click.style(f"{i:>2}. {row.path}:{row.start_line}-{row.end_line}", bold=True)
                + f"  {row.kind}{' ' + row.symbol_kind if row.kind == 'Symbol' else ''} {label}"
                + click.style(f"  [{hit.source.name}]", dim=True)
            )
            desc = views.description(row).split("\n")
            for line in desc[:2]:
                click.echo(f"      {line[:160]}")
        note = f"{outcome.mode} search, {outcome.elapsed_ms:.0f} ms"
        if outcome.vectors_total and outcome.vectors_ready < outcome.vectors_total:
            note += f"; vectors {outcome.vectors_ready}/{outcome.vectors_total} ready (lexical fills in the rest)"
        elif services.embedder is None:
            note += "; no embedder configured"
        click.echo(click.style(note, dim=True), err=True)


# -- grep -------------------------------------------------------------------------------------


@cli.command()
@click.argument("pattern")
@click.option("--regex", "-e", is_flag=True, help="PATTERN is a regular expression (default: literal).")
@source_option
@click.option("--path", "paths", multiple=True, help="Only paths under this prefix (repeatable).")
@click.option("--ext", "exts", multiple=True, help="Only files with this extension (repeatable).")
@click.option("--limit", "-k", default=50, show_default=True, type=click.IntRange(1, MAX_RESULTS), help="Maximum files.")
@click.option("--case-sensitive/--ignore-case", default=None, help="Default: smart case.")
@json_option
@_handle_errors
def grep(pattern: str, regex: bool, sources: tuple[str, ...], paths: tuple[str, ...], exts: tuple[str, ...],
         limit: int, case_sensitive: bool | None, as_json: bool) -> None:  # fmt: skip
    """Literal (or regex) search in file contents; literal patterns also match file names."""
    from repolens import catalog, views
    from repolens.retrieval.grep import grep as run_grep

    with _services() as services:
        chosen = catalog.resolve_scope(services.store, None, list(sources))
        hits = run_grep(services.store, chosen, pattern, regex=regex, filters=_filters((), paths, exts), limit=limit,
                        case_sensitive=case_sensitive)  # fmt: skip
        if as_json:
            _emit_json(views.grep_response(hits))
            return
        for h in hits:
            if h.by_name:
                click.echo(f"{h.source.name}::{h.file.path}  (file name)")
            for m in h.matches:
                click.echo(f"{h.file.path}:{m.line}:{m.start_column}: {m.text.strip()[:200]}")
            if h.match_count > len(h.matches):
                click.echo(click.style(f"{h.file.path}: {h.match_count - len(h.matches)} more matches", dim=True))
        if not hits:
            click.echo("no matches")


# -- fetch ------------------------------------------------------------------------------------


@cli.command()
@click.argument("identifiers", nargs=-1, required=True)
@click.option("--source", "data_source", help="Data source name or id to resolve identifiers in.")
@json_option
@_handle_errors
def fetch(identifiers: tuple[str, ...], data_source: str | None, as_json: bool) -> None:
    """Full content of artifacts by identifier (owner/repo::path[::Symbol])."""
    from repolens import operations

    with _services() as services:
        if as_json:
            response = operations.fetch_artifacts(services, None, list(identifiers), data_source=data_source,
                                                  max_identifiers=operations.MAX_IDENTIFIERS_HARD)
            _emit_json(response)
            missing = [a["identifier"] for a in response["artifacts"] if not a.get("found", True)]
        else:
            missing = _print_artifacts(services, list(identifiers), data_source)
        if missing:
            raise NotFound(f"not found: {', '.join(missing)} (identifiers look like owner/repo::path[::Symbol]; "
                           "`repolens search` lists them)")


def _print_artifacts(services: Services, identifiers: list[str], data_source: str | None) -> list[str]:
    """Print each found artifact with line numbers; the identifiers that were not found."""
    from repolens import operations

    missing: list[str] = []
    items = operations.fetch_items(services, None, identifiers, data_source=data_source,
                                   max_identifiers=operations.MAX_IDENTIFIERS_HARD)
    for item in items:
        if not item.found or item.artifact is None or item.content is None:
            missing.append(item.identifier)
            continue
        click.echo(click.style(f"# {item.identifier}  (lines {item.artifact.start_line}-{item.artifact.end_line})",
                               bold=True))  # fmt: skip
        width = len(str(item.artifact.end_line))
        for offset, line in enumerate(item.content.split("\n")):
            click.echo(f"{item.artifact.start_line + offset:>{width}}  {line}")
    return missing


# -- relations --------------------------------------------------------------------------------


@cli.command()
@click.argument("identifier")
@click.option("--profile", type=click.Choice(["calls", "inheritance", "references", "all"]), default="calls",
              show_default=True)  # fmt: skip
@click.option("--max", "max_count", default=50, show_default=True, type=click.IntRange(1, MAX_RELATIONS_PER_TYPE),
              help="Per relation type.")
@click.option("--source", "data_source", help="Data source name or id to resolve the identifier in.")
@json_option
@_handle_errors
def relations(identifier: str, profile: str, max_count: int, data_source: str | None, as_json: bool) -> None:
    """Callers, callees, ancestors, descendants or references of a symbol."""
    from repolens import operations
    from repolens.retrieval import graph
    from repolens.retrieval.artifacts import find_artifact

    with _services() as services:
        if as_json:
            _emit_json(operations.relationships(services, None, identifier, profile=profile, max_count=max_count,
                                                data_source=data_source))  # fmt: skip
            return
        source, artifact = find_artifact(services.store, identifier, data_source=data_source)
        groups = graph.relations(services.store, source, artifact, profile=operations.parse_profile(profile),
                                 max_per_type=max_count)  # fmt: skip
        click.echo(click.style(artifact.identifier(source.name), bold=True))
        for g in groups:
            suffix = f" (showing {len(g.items)})" if g.total > len(g.items) else ""
            click.echo(f"  {g.direction}: {g.total}{suffix}")
            for row, line in g.items:
                click.echo(f"    {row.identifier(source.name)}  ({row.path}:{row.start_line}; edge at line {line})")


# -- sources ----------------------------------------------------------------------------------


@cli.group()
def sources() -> None:
    """List, show and remove indexed sources."""


def _source_json(services: Services, s: Any) -> dict[str, Any]:
    from repolens.views import iso

    data: dict[str, Any] = {
        "id": s.public_id,
        "name": s.name,
        "type": "Repository",
        "state": s.state,
        "stateReason": s.state_reason or None,
        "location": s.location,
        "branch": s.branch,
        "commit": s.commit,
        "files": s.file_count,
        "artifacts": s.artifact_count,
        "createdAt": iso(s.created_at),
        "indexedAt": iso(s.indexed_at),
    }
    embedder = services.embedder
    if embedder is not None:
        data["vectorsReady"], data["vectorsTotal"] = services.store.vector_counts(s.id, embedder.name)
    return data


@sources.command("list")
@json_option
@_handle_errors
def sources_list(as_json: bool) -> None:
    """Every indexed source."""
    with _services() as services:
        rows = services.store.list_sources()
        if as_json:
            _emit_json([_source_json(services, s) for s in rows])
            return
        if not rows:
            click.echo("no sources yet: run `repolens index PATH_OR_URL`")
        for s in rows:
            commit = short_commit(s.commit) or "-"
            click.echo(f"{s.name:<40} {s.state:<10} {s.file_count:>6} files  {commit:<18}  {s.location}")


@sources.command("show")
@click.argument("name")
@json_option
@_handle_errors
def sources_show(name: str, as_json: bool) -> None:
    """Details of one source."""
    with _services() as services:
        s = services.store.get_source(name)
        if s is None:
            raise NotFound(f"unknown source {name!r}")
        data = _source_json(services, s)
        if as_json:
            _emit_json(data)
            return
        for key, value in data.items():
            click.echo(f"{key:>12}: {value}")


@sources.command("remove")
@click.argument("name")
@_handle_errors
def sources_remove(name: str) -> None:
    """Delete a source, everything indexed from it and its clone."""
    from repolens import catalog

    with _services() as services:
        s = catalog.get_repository(services.store, None, name)
        catalog.delete_repository(services.store, services.settings, s)
        click.echo(f"removed {s.name}")


# -- up ---------------------------------------------------------------------------------------


@cli.command()
@click.argument("question")
@click.option("--source", "-s", "sources", multiple=True, help="Answer from this data source (repeatable).")
@click.option("--conversation", "conversation_id", help="Continue this conversation (the id a previous answer printed).")
@click.option("--new", "forget", is_flag=True, help="Do not keep this question in a conversation.")
@json_option
@_handle_errors
def ask(question: str, sources: tuple[str, ...], conversation_id: str | None, forget: bool, as_json: bool) -> None:
    """Ask QUESTION about the indexed code: a streamed answer that cites what it used.

    Uses the model configured by REPOLENS_LLM_* settings; without one, a labelled retrieval-only
    answer lists the most relevant code instead.
    """
    import asyncio

    from repolens.chat.engine import ChatRequest, Delta, Finished, Started

    request = ChatRequest(question=question, names=sources, conversation_id=conversation_id, remember=not forget)

    async def run(services: Services) -> None:
        started: Started | None = None
        async for event in services.answers.answer(None, request):
            if isinstance(event, Started):
                started = event
            elif isinstance(event, Delta) and not as_json:
                click.echo(event.text, nl=False)
            elif isinstance(event, Finished):
                assert started is not None
                if as_json:
                    _emit_json({"content": event.answer, "conversationId": started.conversation_id,
                                "messageId": started.message_id, "model": started.model, "mode": started.mode,
                                "citations": event.citations, "finishReason": event.finish_reason,
                                "usage": {"promptTokens": event.prompt_tokens,
                                          "completionTokens": event.completion_tokens}})  # fmt: skip
                    return
                if not event.answer.endswith("\n"):
                    click.echo()
                for c in event.citations:
                    click.echo(click.style(f"[{c['n']}] {c['identifier']}  ({c['path']}:{c['startLine']}-{c['endLine']})",
                                           dim=True))  # fmt: skip
                if started.conversation_id:
                    click.echo(click.style(f"conversation {started.conversation_id} ({started.model}); "
                                           f"follow up with --conversation {started.conversation_id}", dim=True),
                               err=True)  # fmt: skip

    with _services() as services:
        asyncio.run(run(services))


@cli.command()
@click.argument("location", required=False)
@click.option("--query", default="where are search results ranked", show_default=True)
@_handle_errors
def up(location: str | None, query: str) -> None:
    """Index a repository (default: the current directory), run a sample search and ask a sample question."""
    target = location or str(Path.cwd())
    ctx = click.get_current_context()
    ctx.invoke(index, location=target, name=None, branch=None, no_vectors=False, quiet=False, as_json=False)
    click.echo(click.style(f"\n$ repolens search {query!r}", bold=True))
    ctx.invoke(search, query=query, sources=(), paths=(), exts=(), limit=5, mode="auto", content=False, as_json=False)
    click.echo(click.style(f"\n$ repolens ask {query!r}", bold=True))
    ctx.invoke(ask, question=query, sources=(), conversation_id=None, forget=True, as_json=False)


# -- server and keys --------------------------------------------------------------------------


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind (0.0.0.0 exposes the server).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--log-level", default="info", show_default=True, type=click.Choice(["debug", "info", "warning", "error"]))
@click.option("--no-jobs", is_flag=True, help="Do not run indexing jobs in this process.")
@_handle_errors
def serve(host: str, port: int, log_level: str, no_jobs: bool) -> None:
    """Start the HTTP server: CodeAlive REST API, Dify retrieval, tool API, admin routes."""
    import uvicorn

    from repolens import logs
    from repolens.access.keys import bootstrap_admin
    from repolens.api.app import create_app
    from repolens.api.protocol import ProblemHttpToolsProtocol
    from repolens.settings import load_settings

    settings = load_settings()
    logs.configure(log_level)
    listener = _listen(host, port)  # before anything else, so a taken port is the first thing said
    with _services() as services:
        minted = bootstrap_admin(services.store)
    if minted is not None:
        click.echo("Created the admin API key (shown once; store it now):", err=True)
        click.echo(minted.token)
    app = create_app(settings, run_jobs=not no_jobs)
    config = uvicorn.Config(app, log_config=None, access_log=False, timeout_graceful_shutdown=10,
                            server_header=False, http=ProblemHttpToolsProtocol)
    click.echo(f"repolens serving on http://{host}:{port} (OpenAPI at /openapi.json)", err=True)
    uvicorn.Server(config).run(sockets=[listener])


LISTEN_BACKLOG = 2048  # uvicorn's own default


def _listen(host: str, port: int) -> socket.socket:
    """The server's listening socket, bound as uvicorn binds it; a taken port is an error that
    says how to pick another."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise RepolensError(f"port {port} on {host} is taken (another repolens serve?): "
                                f"stop that process or choose another port with --port") from None
        raise InvalidInput(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(LISTEN_BACKLOG)
    sock.set_inheritable(True)
    return sock


@cli.command()
@_handle_errors
def migrate() -> None:
    """Create or upgrade the database schema (SQLite file or REPOLENS_DATABASE_URL); also done at startup."""
    from repolens.storage.migrations import HEAD
    from repolens.storage.relational import SqlStore

    with _services() as services:
        store = services.store  # opening a store brings its schema up to date
        where = "PostgreSQL" if services.settings.uses_postgres else str(services.settings.db_path)
        done = store.schema_migration if isinstance(store, SqlStore) else None
        change = f"upgraded from {done.before or 'nothing'} to" if done else "already at"
        click.echo(f"schema {change} revision {done.after if done else HEAD} in {where} "
                   f"({len(store.list_sources())} data sources)")  # fmt: skip


@cli.command("migrate-data")
@click.option("--from", "source_url", help="sqlite:///path/to/repolens.db (default: the one in REPOLENS_HOME).")
@click.option("--to", "target_url", help="postgresql://... (default: REPOLENS_DATABASE_URL).")
@json_option
@_handle_errors
def migrate_data_command(source_url: str | None, target_url: str | None, as_json: bool) -> None:
    """Move an embedded install (SQLite) into an empty PostgreSQL: sources, index, vectors, keys,
    workspaces, conversations; ids and keys stay valid, nothing is re-parsed or re-embedded."""
    from repolens.indexing.transfer import migrate_data, report_json
    from repolens.settings import POSTGRES_SCHEMES, load_settings
    from repolens.storage.postgres.store import PostgresStore

    settings = load_settings()
    if source_url and not source_url.startswith("sqlite:///"):
        raise InvalidInput(f"--from must be a sqlite:/// URL, got {source_url!r}")
    sqlite_path = Path(source_url.removeprefix("sqlite:///")) if source_url else settings.db_path
    if source_url and not sqlite_path.is_absolute():
        sqlite_path = Path.cwd() / sqlite_path
    target = target_url or settings.database_url
    if not target.startswith(POSTGRES_SCHEMES):
        raise InvalidInput("--to must be a postgresql:// URL (or set REPOLENS_DATABASE_URL)")
    store = PostgresStore(target)
    try:
        report = migrate_data(sqlite_path, store, on_progress=lambda line: None if as_json else click.echo(line, err=True))
    finally:
        store.close()
    if as_json:
        click.echo(report_json(report))
    else:
        click.echo(f"moved {report.sources} data sources ({report.files} files, {report.artifacts} artifacts, "
                   f"{report.vectors} vectors), {report.keys} keys, {report.workspaces} workspaces, "
                   f"{report.conversations} conversations")  # fmt: skip


@cli.command()
@click.option("--name", "worker_name", help="Name shown on the jobs it runs (default: host-pid).")
@click.option("--log-level", default="info", show_default=True, type=click.Choice(["debug", "info", "warning", "error"]))
@_handle_errors
def worker(worker_name: str | None, log_level: str) -> None:
    """Run indexing jobs from the shared PostgreSQL queue until stopped (SIGTERM or Ctrl-C).

    Start any number, on any hosts that reach the database: each job runs on exactly one
    worker, and the job of a worker that dies is picked up by another after the lease
    (REPOLENS_JOB_LEASE seconds).
    """
    import signal
    import threading

    from repolens import logs
    from repolens.indexing.jobs import JobRunner

    logs.configure(log_level)
    with _services() as services:
        if not services.settings.uses_postgres:
            raise InvalidInput(
                "repolens worker needs a shared database: set REPOLENS_DATABASE_URL=postgresql://... "
                "(with the SQLite file, `repolens serve` runs the jobs itself)"
            )
        runner = JobRunner(services.store, services.settings, worker_name=worker_name)
        stopping = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stopping.set())
        runner.start()
        click.echo(f"repolens worker {runner.worker_name} waiting for jobs", err=True)
        while not stopping.wait(1.0):
            if not runner.alive():
                raise StorageError("the job loop stopped unexpectedly")
        runner.stop()
        click.echo(f"repolens worker {runner.worker_name} stopped", err=True)


@cli.command("mcp")
@click.option("--log-level", default="warning", show_default=True, type=click.Choice(["debug", "info", "warning", "error"]))
@_handle_errors
def mcp_stdio(log_level: str) -> None:
    """Serve the MCP tools over stdio for a local agent (reads the local data dir; no server needed)."""
    from repolens import logs
    from repolens.api.routes.health import _version
    from repolens.mcpserver.server import build_server

    logs.configure(log_level, access_log=False)  # a StreamHandler writes to stderr: stdout is the protocol
    with _services() as services:
        _ = services.searcher  # open the index and the embedder before the agent's first call
        build_server(lambda: services, max_tokens=services.settings.mcp_max_tokens, version=_version()).run("stdio")


@cli.group()
def keys() -> None:
    """Create, list and revoke API keys."""


@keys.command("create")
@click.option("--name", required=True, help="What the key is for.")
@click.option("--scope", "scopes", multiple=True, help="Limit the key to this repository or workspace (repeatable).")
@click.option("--plan", default="free", show_default=True, type=click.Choice(["free", "pro", "team", "custom"]))
@click.option("--requests-per-hour", type=click.IntRange(1), help="For --plan custom (or to override a plan).")
@click.option("--concurrency", type=click.IntRange(1), help="For --plan custom (or to override a plan).")
@click.option("--expires-days", type=click.FloatRange(min=0, min_open=True), help="Expire after this many days.")
@click.option("--admin", is_flag=True, help="May manage keys and data sources.")
@_handle_errors
def keys_create(name: str, scopes: tuple[str, ...], plan: str, requests_per_hour: int | None, concurrency: int | None,
                expires_days: float | None, admin: bool) -> None:  # fmt: skip
    """Create a key and print it once, on its own line."""
    import time

    from repolens.access.keys import create_key, plan_for

    with _services() as services:
        chosen = plan_for(plan, requests_per_hour=requests_per_hour, concurrency=concurrency)
        expires = time.time() + expires_days * 86400 if expires_days else None
        minted = create_key(services.store, name=name, plan=chosen, role="admin" if admin else "member",
                            scopes=scopes, expires_at=expires)  # fmt: skip
        row = minted.row
        click.echo(f"key {row.key_id} ({row.name}, plan {row.plan}: {row.requests_per_hour}/h, "
                   f"{row.concurrency} concurrent; shown once):", err=True)  # fmt: skip
        click.echo(minted.token)


@keys.command("list")
@json_option
@_handle_errors
def keys_list(as_json: bool) -> None:
    """Every key (never the secret)."""
    from repolens import views

    with _services() as services:
        rows = services.store.list_keys()
        if as_json:
            _emit_json([views.key_json(k) for k in rows])
            return
        for k in rows:
            status = "revoked" if k.revoked_at else ("expired" if k.expires_at and k.expires_at < __import__("time").time()
                                                      else "active")  # fmt: skip
            scope = ",".join(k.scopes) or "all"
            click.echo(f"{k.key_id}  {k.name:<24} {k.role:<6} {k.plan:<6} {k.requests_per_hour:>7}/h "
                       f"{k.concurrency:>4} conc  {status:<8} scope={scope}")  # fmt: skip


@keys.command("revoke")
@click.argument("key_id")
@_handle_errors
def keys_revoke(key_id: str) -> None:
    """Revoke a key by its id (the digits shown by `keys list`)."""
    with _services() as services:
        if not services.store.revoke_key(key_id):
            raise NotFound(f"unknown key {key_id!r}")
        click.echo(f"revoked {key_id}")


def main() -> None:
    """Console-script entry point."""
    cli()


if __name__ == "__main__":
    main()
