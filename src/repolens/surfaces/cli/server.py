"""Running repolens: ``serve``, ``worker``, ``mcp`` (stdio), ``migrate`` and ``migrate-data``."""

from __future__ import annotations

import errno
import socket
from pathlib import Path
from typing import TYPE_CHECKING

import click

from repolens.errors import InvalidInput, RepolensError, StorageError
from repolens.surfaces.cli.base import (
    cli,
    handle_errors,
    json_option,
    open_services,
)

if TYPE_CHECKING:
    pass


# -- server and keys --------------------------------------------------------------------------


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind (0.0.0.0 exposes the server).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--log-level", default="info", show_default=True, type=click.Choice(["debug", "info", "warning", "error"]))
@click.option("--no-jobs", is_flag=True, help="Do not run indexing jobs in this process.")
@handle_errors
def serve(host: str, port: int, log_level: str, no_jobs: bool) -> None:
    """Start the HTTP server: CodeAlive REST API, Dify retrieval, tool API, admin routes."""
    import uvicorn

    from repolens import logs
    from repolens.access.keys import bootstrap_admin
    from repolens.settings import load_settings
    from repolens.surfaces.http.app import create_app
    from repolens.surfaces.http.protocol import ProblemHttpToolsProtocol

    settings = load_settings()
    logs.configure(log_level)
    listener = _listen(host, port)  # before anything else, so a taken port is the first thing said
    with open_services() as services:
        minted = bootstrap_admin(services.store)
    if minted is not None:
        click.echo("Created the admin API key (shown once; store it now):", err=True)
        click.echo(minted.token)
    app = create_app(settings, run_jobs=not no_jobs)
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        server_header=False,
        http=ProblemHttpToolsProtocol,
    )
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
            raise RepolensError(
                f"port {port} on {host} is taken (another repolens serve?): "
                f"stop that process or choose another port with --port"
            ) from None
        raise InvalidInput(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(LISTEN_BACKLOG)
    sock.set_inheritable(True)
    return sock


@cli.command()
@handle_errors
def migrate() -> None:
    """Create or upgrade the database schema (SQLite file or REPOLENS_DATABASE_URL); also done at startup."""
    from repolens.storage.migrations import HEAD
    from repolens.storage.relational import SqlIndexStore

    with open_services() as services:
        store = services.store  # opening a store brings its schema up to date
        where = "PostgreSQL" if services.settings.uses_postgres else str(services.settings.db_path)
        done = store.schema_migration if isinstance(store, SqlIndexStore) else None
        change = f"upgraded from {done.before or 'nothing'} to" if done else "already at"
        click.echo(
            f"schema {change} revision {done.after if done else HEAD} in {where} ({len(store.list_sources())} data sources)"
        )


@cli.command("migrate-data")
@click.option("--from", "source_url", help="sqlite:///path/to/repolens.db (default: the one in REPOLENS_HOME).")
@click.option("--to", "target_url", help="postgresql://... (default: REPOLENS_DATABASE_URL).")
@json_option
@handle_errors
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
        click.echo(
            f"moved {report.sources} data sources ({report.files} files, {report.artifacts} artifacts, "
            f"{report.vectors} vectors), {report.keys} keys, {report.workspaces} workspaces, "
            f"{report.conversations} conversations"
        )


@cli.command()
@click.option("--name", "worker_name", help="Name shown on the jobs it runs (default: host-pid).")
@click.option("--log-level", default="info", show_default=True, type=click.Choice(["debug", "info", "warning", "error"]))
@handle_errors
def worker(worker_name: str | None, log_level: str) -> None:
    """Run indexing jobs from the shared PostgreSQL queue until stopped (SIGTERM or Ctrl-C).

    Start any number, on any hosts that reach the database: each job runs on exactly one
    worker, and the job of a worker that dies is picked up by another after the lease
    (REPOLENS_JOB_LEASE seconds).
    """
    import signal
    import threading

    from repolens import logs
    from repolens.batches import dispatcher as batch_webhooks
    from repolens.indexing.jobs import JobRunner

    logs.configure(log_level)
    with open_services() as services:
        if not services.settings.uses_postgres:
            raise InvalidInput(
                "repolens worker needs a shared database: set REPOLENS_DATABASE_URL=postgresql://... "
                "(with the SQLite file, `repolens serve` runs the jobs itself)"
            )
        runner = JobRunner(services.store, services.settings, worker_name=worker_name)
        stopping = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stopping.set())
        webhooks = batch_webhooks(services)  # batch webhooks are delivered by every worker too
        runner.start()
        webhooks.start()
        click.echo(f"repolens worker {runner.worker_name} waiting for jobs", err=True)
        while not stopping.wait(1.0):
            if not runner.alive():
                raise StorageError("the job loop stopped unexpectedly")
        webhooks.stop()
        runner.stop()
        click.echo(f"repolens worker {runner.worker_name} stopped", err=True)


@cli.command("mcp")
@click.option("--log-level", default="warning", show_default=True, type=click.Choice(["debug", "info", "warning", "error"]))
@handle_errors
def mcp_stdio(log_level: str) -> None:
    """Serve the MCP tools over stdio for a local agent (reads the local data dir; no server needed)."""
    from repolens import __version__, logs
    from repolens.surfaces.mcp.server import build_server

    logs.configure(log_level, access_log=False)  # a StreamHandler writes to stderr: stdout is the protocol
    with open_services(resident=True) as services:
        _ = services.searcher  # open the index and the embedder before the agent's first call
        build_server(lambda: services, max_tokens=services.settings.mcp_max_tokens, version=__version__).run("stdio")
